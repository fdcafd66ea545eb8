package zarr

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
)

// shardCodec is sharding_indexed: a shard holds a grid of inner chunks,
// each encoded with the inner chain, and an index of (offset, nbytes) per
// inner chunk at its start or end.
type shardCodec struct {
	inner        *codecChain
	perShard     []int64 // inner chunks per shard along each dim
	n            int64   // inner chunks per shard
	indexBig     bool
	indexCRC     bool
	indexBytes   int64 // encoded index size
	indexAtStart bool
}

// maxInnerChunks bounds the index of one shard (16 bytes per inner chunk).
const maxInnerChunks = 1 << 24

// emptyEntry marks an inner chunk that was never written.
const emptyEntry = math.MaxUint64

// shardIndex is one shard's decoded index: offset and nbytes per inner
// chunk in C order of the inner grid. A missing shard has missing set.
type shardIndex struct {
	missing bool
	entries []uint64
}

func newShardCodec(raw json.RawMessage, dtype DType, shardShape []int64) (*shardCodec, error) {
	var conf struct {
		ChunkShape    []int64       `json:"chunk_shape"`
		Codecs        []namedConfig `json:"codecs"`
		IndexCodecs   []namedConfig `json:"index_codecs"`
		IndexLocation string        `json:"index_location"`
	}
	if err := unmarshalJSON(raw, &conf); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	if len(conf.ChunkShape) != len(shardShape) {
		return nil, fmt.Errorf("chunk_shape %v: want %d dims like the shard %v", conf.ChunkShape, len(shardShape), shardShape)
	}
	s := &shardCodec{perShard: make([]int64, len(shardShape)), n: 1}
	for i, c := range conf.ChunkShape {
		if c <= 0 || shardShape[i]%c != 0 {
			return nil, fmt.Errorf("chunk_shape %v does not divide the shard shape %v", conf.ChunkShape, shardShape)
		}
		s.perShard[i] = shardShape[i] / c
		s.n *= s.perShard[i]
		if s.n > maxInnerChunks {
			return nil, fmt.Errorf("chunk_shape %v: more than %d inner chunks per shard %v", conf.ChunkShape, maxInnerChunks, shardShape)
		}
	}
	switch conf.IndexLocation {
	case "end", "":
	case "start":
		s.indexAtStart = true
	default:
		return nil, fmt.Errorf("index_location %q: want start or end", conf.IndexLocation)
	}
	inner, err := buildV3Chain(conf.Codecs, dtype, conf.ChunkShape)
	if err != nil {
		return nil, fmt.Errorf("codecs: %w", err)
	}
	s.inner = inner
	s.indexBytes = 16 * s.n
	for i, ic := range conf.IndexCodecs {
		// The index is bytes, then optionally crc32c: found through the
		// registry like every codec, then checked by kind.
		var icConf map[string]any
		if len(ic.Configuration) > 0 {
			if err := unmarshalJSON(ic.Configuration, &icConf); err != nil {
				return nil, fmt.Errorf("index_codecs: %s: %w", ic.Name, err)
			}
		}
		e := codecRegistry[ic.Name]
		var codec any
		var err error
		switch {
		case i == 0 && e.arrayToBytes != nil:
			codec, err = e.arrayToBytes(ic.Configuration, icConf, DType{Kind: KindUint, Size: 8}, []int64{s.n, 2})
		case i > 0 && e.bytesToBytes != nil:
			codec, err = e.bytesToBytes(icConf, 8)
		}
		if err != nil {
			return nil, fmt.Errorf("index_codecs: %s: %w", ic.Name, err)
		}
		switch c := codec.(type) {
		case endianCodec:
			s.indexBig = c.big
		case crc32cCodec:
			if s.indexCRC {
				return nil, fmt.Errorf("index_codecs: a second crc32c")
			}
			s.indexCRC = true
			s.indexBytes += 4
		default:
			return nil, fmt.Errorf("index_codecs: %q at position %d: unsupported (want bytes, then optionally crc32c)", ic.Name, i)
		}
	}
	if len(conf.IndexCodecs) == 0 {
		return nil, fmt.Errorf("index_codecs: empty")
	}
	return s, nil
}

func (s *shardCodec) describe() string {
	loc := "end"
	if s.indexAtStart {
		loc = "start"
	}
	return fmt.Sprintf("sharding_indexed(chunk_shape=%v,index=%s,codecs=%v)", s.inner.shape, loc, s.inner.describe())
}

// indexRange is the byte range of a shard's index.
func (s *shardCodec) indexRange(key string) ByteRange {
	if s.indexAtStart {
		return ByteRange{Key: key, Offset: 0, Length: s.indexBytes}
	}
	return ByteRange{Key: key, Offset: -s.indexBytes, Length: -1}
}

// parseIndex decodes and checks an encoded shard index.
func (s *shardCodec) parseIndex(b []byte) (shardIndex, error) {
	if int64(len(b)) != s.indexBytes {
		return shardIndex{}, fmt.Errorf("shard index: %d bytes, want %d", len(b), s.indexBytes)
	}
	if s.indexCRC {
		var err error
		if b, err = checkCRC32C(b); err != nil {
			return shardIndex{}, fmt.Errorf("shard index: %w", err)
		}
	}
	entries := make([]uint64, 2*s.n)
	for i := range entries {
		if s.indexBig {
			entries[i] = binary.BigEndian.Uint64(b[8*i:])
		} else {
			entries[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
	}
	for i := int64(0); i < s.n; i++ {
		off, n := entries[2*i], entries[2*i+1]
		if off == emptyEntry && n == emptyEntry {
			continue
		}
		if off > math.MaxInt64 || n > math.MaxInt64 || off+n < off || off+n > math.MaxInt64 {
			return shardIndex{}, fmt.Errorf("shard index: inner chunk %d: bad range offset %d nbytes %d", i, off, n)
		}
	}
	return shardIndex{entries: entries}, nil
}

// entry returns the byte range of inner chunk i (C order in the shard's
// inner grid); ok false means the inner chunk is empty.
func (x shardIndex) entry(i int64) (off, n int64, ok bool) {
	if x.missing {
		return 0, 0, false
	}
	o, l := x.entries[2*i], x.entries[2*i+1]
	if o == emptyEntry && l == emptyEntry {
		return 0, 0, false
	}
	return int64(o), int64(l), true
}
