package zarr

import (
	"fmt"

	"github.com/lsio-loader/lsio-loader/codecs"
)

// bloscCodec decodes blosc chunks whole or by blocks.
type bloscCodec struct{ *codecs.Blosc }

// DecodeRange checks that the chunk decodes to exactly len(dst) bytes
// before decoding the blocks that [off, off+n) needs.
func (b bloscCodec) DecodeRange(dst, src []byte, off, n int) (int, error) {
	nbytes, _, _, err := codecs.BloscInfo(src)
	if err != nil {
		return 0, err
	}
	if nbytes != len(dst) {
		return 0, fmt.Errorf("blosc header claims %d decoded bytes, want %d", nbytes, len(dst))
	}
	return b.Blosc.DecodeRange(dst, src, off, n)
}

func newBloscCodec(conf map[string]any) (b2bCodec, error) {
	b := bloscCodec{codecs.NewBlosc()}
	desc := describeConf("blosc", conf, "cname", "clevel", "shuffle", "typesize", "blocksize")
	return b2bCodec{desc: desc, dec: b, rng: b}, nil
}
