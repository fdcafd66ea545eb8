package zarr

import (
	"fmt"

	"github.com/lsio-loader/lsio-loader/codecs"
)

// bloscCodec decodes blosc chunks whole or by blocks.
type bloscCodec struct{ *codecs.Blosc }

// DecodeRuns checks that the chunk decodes to exactly len(dst) bytes, then
// decodes each stretch of consecutive blocks that the runs touch.
func (b bloscCodec) DecodeRuns(dst, src []byte, runs [][2]int64) (int, error) {
	nbytes, _, blocksize, err := codecs.BloscInfo(src)
	if err != nil {
		return 0, err
	}
	if nbytes != len(dst) {
		return 0, fmt.Errorf("blosc header claims %d decoded bytes, want %d", nbytes, len(dst))
	}
	bs := int64(max(blocksize, 1))
	decoded := 0
	for i := 0; i < len(runs); {
		if runs[i][0] < 0 || runs[i][1] > int64(nbytes) || runs[i][0] >= runs[i][1] {
			return decoded, fmt.Errorf("blosc: run [%d, %d) outside the %d decoded bytes", runs[i][0], runs[i][1], nbytes)
		}
		first, end := runs[i][0]/bs, (runs[i][1]-1)/bs+1
		// Runs whose blocks meet or overlap decode as one stretch.
		for i++; i < len(runs) && runs[i][0]/bs <= end; i++ {
			end = max(end, (runs[i][1]-1)/bs+1)
		}
		lo, hi := first*bs, min(end*bs, int64(nbytes))
		n, err := b.Blosc.DecodeRange(dst, src, int(lo), int(hi-lo))
		decoded += n
		if err != nil {
			return decoded, err
		}
	}
	return decoded, nil
}

func newBloscCodec(conf map[string]any) (b2bCodec, error) {
	b := bloscCodec{codecs.NewBlosc()}
	desc := describeConf("blosc", conf, "cname", "clevel", "shuffle", "typesize", "blocksize")
	return b2bCodec{desc: desc, dec: b, rng: b}, nil
}
