package zarr

import (
	"fmt"

	"github.com/lsio-loader/lsio-loader/codecs"
)

// newBytesCodec builds a bytes→bytes codec from its v3 name or v2 id and
// configuration; itemSize is the array's element size (blosc's typesize
// fallback).
func newBytesCodec(name string, conf map[string]any, itemSize int) (b2bCodec, error) {
	switch name {
	case "crc32c":
		return b2bCodec{desc: "crc32c", crc: true}, nil
	case "zstd", "numcodecs.zstd":
		return b2bCodec{desc: describeConf("zstd", conf, "level", "checksum"), dec: codecs.NewZstd()}, nil
	case "gzip", "numcodecs.gzip":
		return b2bCodec{desc: describeConf("gzip", conf, "level"), dec: codecs.NewGzip()}, nil
	case "zlib", "numcodecs.zlib":
		return b2bCodec{desc: describeConf("zlib", conf, "level"), dec: codecs.NewZlib()}, nil
	case "bz2", "numcodecs.bz2":
		return b2bCodec{desc: describeConf("bz2", conf, "level"), dec: codecs.NewBz2()}, nil
	case "lz4", "numcodecs.lz4":
		return b2bCodec{desc: describeConf("lz4", conf, "acceleration"), dec: codecs.LZ4{}}, nil
	case "blosc", "numcodecs.blosc":
		return newBloscCodec(conf)
	case "numcodecs.shuffle":
		es, _ := conf["elementsize"].(float64)
		if es < 1 || es > 1<<16 || es != float64(int(es)) {
			return b2bCodec{}, fmt.Errorf("codec %q: bad elementsize %v", name, conf["elementsize"])
		}
		return b2bCodec{desc: describeConf("shuffle", conf, "elementsize"), dec: shuffleBytes{elem: int(es)}}, nil
	}
	return b2bCodec{}, fmt.Errorf("unsupported codec %q", name)
}

// shuffleBytes is numcodecs Shuffle in the bytes→bytes position, as
// zarr-python 3 places it in v3 arrays.
type shuffleBytes struct{ elem int }

func (s shuffleBytes) Decode(dst, src []byte, size int) ([]byte, error) {
	if (size >= 0 && len(src) != size) || (size < 0 && len(src) > -size) {
		return nil, fmt.Errorf("shuffle: %d bytes, want %d", len(src), size)
	}
	if cap(dst) < len(src) {
		dst = make([]byte, len(src))
	}
	dst = dst[:len(src)]
	if err := (shuffleFilter{size: len(src), elem: s.elem}).decode(dst, src, 1); err != nil {
		return nil, err
	}
	return dst, nil
}
