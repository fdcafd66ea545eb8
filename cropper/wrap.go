package cropper

import (
	"github.com/lsio-loader/lsio-loader/sampler"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// wrapRead is a region that crosses the seam of a periodic dim (a global
// longitude): it is read as the piece up to the array's end and the piece
// from its start, then stitched, so that the crop holds data from both
// sides rather than padding.
type wrapRead struct {
	pieces [2]zarr.Region
	data   [2][]byte
	dst    []byte // the region's data, C order, as if the dim continued
	dim    int
	shape  []int64
	item   int64
}

// seamDim returns the periodic dim that region r runs past the end of.
func seamDim(src *sampler.Source, arr *zarr.Array, r zarr.Region) (int, bool) {
	for d, p := range src.Periodic {
		if p && r.Start[d]+r.Shape[d] > arr.Shape[d] {
			return d, true
		}
	}
	return 0, false
}

// splitAtSeam splits r along dim d (of length n) into its two pieces,
// with dst (r's size) holding the stitched result and the pieces' data
// allocated beside it.
func splitAtSeam(r zarr.Region, d int, n int64, dst []byte, item int64) wrapRead {
	wr := wrapRead{dst: dst, dim: d, shape: r.Shape, item: item}
	first := n - r.Start[d]
	for k, lo := range [2]int64{r.Start[d], 0} {
		start, shape := append([]int64(nil), r.Start...), append([]int64(nil), r.Shape...)
		start[d] = lo
		if k == 0 {
			shape[d] = first
		} else {
			shape[d] = r.Shape[d] - first
		}
		wr.pieces[k] = zarr.Region{Start: start, Shape: shape}
		wr.data[k] = make([]byte, prod(shape)*item)
	}
	return wr
}

// stitch places the two pieces side by side along the seam dim.
func (wr wrapRead) stitch() {
	d := wr.dim
	outer := prod(wr.shape[:d])
	inner := prod(wr.shape[d+1:]) * wr.item
	row := wr.shape[d] * inner
	a, b := wr.pieces[0].Shape[d]*inner, wr.pieces[1].Shape[d]*inner
	for o := range outer {
		copy(wr.dst[o*row:], wr.data[0][o*a:(o+1)*a])
		copy(wr.dst[o*row+a:], wr.data[1][o*b:(o+1)*b])
	}
}
