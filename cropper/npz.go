package cropper

import (
	"encoding/binary"
	"io"
	"math"
	"strconv"

	"github.com/lsio-loader/lsio-loader/internal/npy"
	"github.com/lsio-loader/lsio-loader/sampler"
)

// WriteNPZ writes batch b of plan to w as an .npz file: each source's
// tensor with its provenance (store, array, dims, isel windows, axes, time
// labels and available_t), the samples' t0, x, y, lat and lon, and the
// batch's read amplification amp.
func WriteNPZ(w io.Writer, plan *sampler.Plan, b *Batch, amp float64) error {
	z := npy.NewNPZ(w)
	n := int64(len(b.Samples))
	i64 := func(v []int64) []byte {
		out := make([]byte, 8*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint64(out[8*i:], uint64(x))
		}
		return out
	}
	f64 := func(get func(s *sampler.Sample) float64) []byte {
		out := make([]byte, 8*n)
		for i := range b.Samples {
			binary.LittleEndian.PutUint64(out[8*i:], math.Float64bits(get(&b.Samples[i])))
		}
		return out
	}
	t0 := make([]int64, n)
	for i, s := range b.Samples {
		t0[i] = s.T0
	}
	if err := z.Add("t0", "<M8[ns]", []int64{n}, i64(t0)); err != nil {
		return err
	}
	for k, src := range plan.Sources {
		nd := int64(len(src.Dims))
		name := src.Name
		if err := z.Add(name, npyDType(b.DTypes[k]), append([]int64{n}, src.OutShape...), b.Data[k]); err != nil {
			return err
		}
		if err := addStrings(z, name+".store", nil, []string{src.StoreURL}); err != nil {
			return err
		}
		if err := addStrings(z, name+".array", nil, []string{src.ArrayPath}); err != nil {
			return err
		}
		if err := addStrings(z, name+".dims", []int64{nd}, src.Dims); err != nil {
			return err
		}
		isel := make([]int64, 0, n*nd*2)
		var times []int64
		avail := make([]int64, n)
		for i := range b.Samples {
			win := b.Samples[i].Windows[k]
			avail[i] = win.AvailableT
			for d := range nd {
				isel = append(isel, win.Start[d], win.Start[d]+src.Size[d])
			}
			times = append(times, plan.TimeLabels(k, win)...)
		}
		if err := z.Add(name+".isel", "<i8", []int64{n, nd, 2}, i64(isel)); err != nil {
			return err
		}
		if src.Axes != nil {
			axes := make([]string, 4)
			for a, d := range src.Axes {
				if d >= 0 {
					axes[a] = src.Dims[d]
				}
			}
			if err := addStrings(z, name+".axes", []int64{4}, axes); err != nil {
				return err
			}
		}
		if len(times) > 0 {
			// Steps from available_t on were dropped out and hold the fill.
			if err := z.Add(name+".available_t", "<i8", []int64{n}, i64(avail)); err != nil {
				return err
			}
			if err := z.Add(name+".time", "<M8[ns]", []int64{n, int64(len(times)) / n}, i64(times)); err != nil {
				return err
			}
		}
	}
	for _, c := range []struct {
		name string
		get  func(s *sampler.Sample) float64
	}{
		{"x", func(s *sampler.Sample) float64 { return s.X }},
		{"y", func(s *sampler.Sample) float64 { return s.Y }},
		{"lat", func(s *sampler.Sample) float64 { return s.Lat }},
		{"lon", func(s *sampler.Sample) float64 { return s.Lon }},
	} {
		if err := z.Add(c.name, "<f8", []int64{n}, f64(c.get)); err != nil {
			return err
		}
	}
	ampBytes := make([]byte, 8)
	binary.LittleEndian.PutUint64(ampBytes, math.Float64bits(amp))
	if err := z.Add("read_amplification", "<f8", []int64{}, ampBytes); err != nil {
		return err
	}
	return z.Close()
}

// npyDType maps a Batch dtype onto NumPy's: bfloat16 has no NumPy dtype,
// so its raw 16-bit patterns go out as <u2.
func npyDType(d string) string {
	switch d {
	case "float32":
		return "<f4"
	case "float16":
		return "<f2"
	case "bfloat16":
		return "<u2"
	}
	return d
}

// addStrings adds fixed-width unicode strings (shape nil: a 0-d array).
func addStrings(z *npy.NPZ, name string, shape []int64, vals []string) error {
	width := 1
	for _, v := range vals {
		width = max(width, len([]rune(v)))
	}
	data := make([]byte, 0, 4*width*len(vals))
	for _, v := range vals {
		r := []rune(v)
		for i := range width {
			var c rune
			if i < len(r) {
				c = r[i]
			}
			data = binary.LittleEndian.AppendUint32(data, uint32(c))
		}
	}
	if shape == nil {
		shape = []int64{}
	}
	return z.Add(name, "<U"+strconv.Itoa(width), shape, data)
}
