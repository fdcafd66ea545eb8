package zarr

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math"
	"strings"
	"unsafe"

	"github.com/lsio-loader/lsio-loader/internal/bufpool"
)

// bytesDecoder is what a bytes→bytes codec from package codecs offers:
// size >= 0 is the exact decoded size, size < 0 bounds it by -size.
type bytesDecoder interface {
	Decode(dst, src []byte, size int) ([]byte, error)
}

// rangeDecoder decodes only the blocks of src that overlap the decoded
// byte runs [lo, hi) (sorted, disjoint), into dst at their natural offsets
// (blosc), and returns how many bytes it decoded.
type rangeDecoder interface {
	DecodeRuns(dst, src []byte, runs [][2]int64) (int, error)
}

// b2bCodec is one bytes→bytes step of a chain.
type b2bCodec struct {
	desc string
	dec  bytesDecoder // nil for crc32c
	rng  rangeDecoder // non-nil when partial decode is possible
	crc  bool
}

// a2aCodec is one array→array step: a transpose (v3 transpose, v2 order
// "F") or a numcodecs filter (v2 filters).
type a2aCodec struct {
	desc   string
	perm   []int    // transpose: encoded axis i is decoded axis perm[i]
	filter v2Filter // otherwise
}

// v2Filter decodes n elements of its encoded type into the array's type.
type v2Filter interface {
	encodedSize() int
	decode(dst, src []byte, n int) error
}

// codecChain decodes the chunks of one chunk shape: outer chunks of an
// array, or the inner chunks of a shard.
type codecChain struct {
	a2a       []a2aCodec // in encode order
	bigEndian bool
	shard     *shardCodec // array→bytes is sharding_indexed
	b2b       []b2bCodec  // in encode order

	dtype  DType
	shape  []int64 // the chunk shape this chain encodes
	nbytes int64   // decoded chunk size
	// encodedBytes is the size the b2b codecs decode to: nbytes unless a v2
	// filter changes the element size.
	encodedBytes int64
}

// maxChunkBytes bounds one decoded chunk so that hostile metadata cannot
// demand a giant allocation.
const maxChunkBytes = 1 << 30

// linear reports whether the chunk bytes as stored are its elements in C
// order (only byte order may differ), so that any byte range of the stored
// chunk can be read and used directly.
func (c *codecChain) linear() bool {
	return len(c.a2a) == 0 && len(c.b2b) == 0 && c.shard == nil
}

// rangeCodec returns the blosc decoder when the chain is blosc over plain C
// order elements, which allows decoding only the blocks a read needs.
func (c *codecChain) rangeCodec() rangeDecoder {
	if len(c.a2a) != 0 || len(c.b2b) != 1 || c.shard != nil {
		return nil
	}
	return c.b2b[0].rng
}

func (c *codecChain) describe() []string {
	var d []string
	for _, a := range c.a2a {
		d = append(d, a.desc)
	}
	if c.shard != nil {
		d = append(d, c.shard.describe())
	} else if c.dtype.Size > 1 {
		if c.bigEndian {
			d = append(d, "bytes(big)")
		} else {
			d = append(d, "bytes(little)")
		}
	}
	for _, b := range c.b2b {
		d = append(d, b.desc)
	}
	return d
}

// decode decodes a whole stored chunk into its C order little-endian
// elements. The result is raw itself (modified in place) or lies in held, a
// buffer from pool that the caller puts back once done with out. held is
// the buffer as pool handed it out, not out: codecs may reslice what they
// are given (zstd caps it just past the decoded size), and a buffer put
// back with a smaller capacity would land in a smaller size class and
// leave the chunk-sized class empty.
func (c *codecChain) decode(raw []byte, pool *bufpool.Sized) (out, held []byte, decoded int64, err error) {
	b := raw
	for i := len(c.b2b) - 1; i >= 0; i-- {
		cd := c.b2b[i]
		if cd.crc {
			if b, err = checkCRC32C(b); err != nil {
				pool.Put(held)
				return nil, nil, decoded, err
			}
			continue
		}
		size := -int(2*c.encodedBytes + 1<<16)
		if i == 0 {
			size = int(c.encodedBytes)
		}
		dst := pool.Get(absInt(size))
		nb, derr := cd.dec.Decode(dst[:0], b, size)
		if derr != nil {
			pool.Put(dst)
			pool.Put(held)
			return nil, nil, decoded, fmt.Errorf("%s: %w", cd.desc, derr)
		}
		pool.Put(held)
		held = dst
		if !sameStorage(nb, dst) {
			// The codec allocated its own output: dst is free again, and
			// nb is kept if its capacity fits a size class.
			pool.Put(dst)
			held = nb
		}
		b = nb
		decoded += int64(len(nb))
	}
	if int64(len(b)) != c.encodedBytes {
		pool.Put(held)
		return nil, nil, decoded, fmt.Errorf("decoded %d bytes, want %d", len(b), c.encodedBytes)
	}
	for i := len(c.a2a) - 1; i >= 0; i-- {
		a := c.a2a[i]
		var dst []byte
		if a.perm != nil {
			dst = pool.Get(int(c.nbytes))
			transposeDecode(dst[:c.nbytes], b, c.shape, a.perm, c.dtype.Size)
			b = dst[:c.nbytes]
		} else {
			// Filters sit between the compressor and the array type; the
			// last one decoded yields the array's elements.
			n := int(c.nbytes) / c.dtype.Size
			outSize := c.dtype.Size
			if i > 0 && c.a2a[i-1].filter != nil {
				outSize = c.a2a[i-1].filter.encodedSize()
			}
			dst = pool.Get(n * outSize)
			if err := a.filter.decode(dst[:n*outSize], b, n); err != nil {
				pool.Put(dst)
				pool.Put(held)
				return nil, nil, decoded, fmt.Errorf("%s: %w", a.desc, err)
			}
			b = dst[:n*outSize]
		}
		pool.Put(held)
		held = dst
	}
	c.dtype.ToLittleEndian(b)
	return b, held, decoded, nil
}

// sameStorage reports whether b lies in the storage of buf.
func sameStorage(b, buf []byte) bool {
	if cap(b) == 0 || cap(buf) == 0 {
		return false
	}
	// Plain integers: a pointer one past the allocation would trip checkptr.
	start := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return p >= start && p-start < uintptr(cap(buf))
}

func absInt(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checkCRC32C verifies and strips the little-endian CRC-32C trailer.
func checkCRC32C(b []byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("crc32c: %d bytes, too short for a checksum", len(b))
	}
	n := len(b) - 4
	want := binary.LittleEndian.Uint32(b[n:])
	if got := crc32.Checksum(b[:n], castagnoli); got != want {
		return nil, fmt.Errorf("crc32c: checksum mismatch: stored %08x, computed %08x", want, got)
	}
	return b[:n], nil
}

// transposeDecode writes into dst (C order, shape) the elements of src,
// which holds the chunk transposed by perm: src axis i is dst axis perm[i].
func transposeDecode(dst, src []byte, shape []int64, perm []int, size int) {
	nd := len(shape)
	srcStride := make([]int64, nd) // stride in src of each dst axis
	s := int64(size)
	for i := nd - 1; i >= 0; i-- {
		srcStride[perm[i]] = s
		s *= shape[perm[i]]
	}
	idx := make([]int64, nd)
	var off int64
	inner := shape[nd-1]
	innerStride := srcStride[nd-1]
	for o := 0; o < len(dst); {
		so := off
		for k := int64(0); k < inner; k++ {
			copy(dst[o:o+size], src[so:so+int64(size)])
			o += size
			so += innerStride
		}
		// advance the odometer over all but the last axis
		d := nd - 2
		for ; d >= 0; d-- {
			idx[d]++
			off += srcStride[d]
			if idx[d] < shape[d] {
				break
			}
			off -= srcStride[d] * shape[d]
			idx[d] = 0
		}
		if d < 0 {
			break
		}
	}
}

// namedConfig is one v3 codec: {"name": ..., "configuration": {...}}.
type namedConfig struct {
	Name          string          `json:"name"`
	Configuration json.RawMessage `json:"configuration"`
}

func (n *namedConfig) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		n.Name = s
		return nil
	}
	type plain namedConfig
	return json.Unmarshal(b, (*plain)(n))
}

// newChain validates the chunk shape and sets the sizes of a chain.
func newChain(dtype DType, shape []int64) (*codecChain, error) {
	n, err := checkedProduct(shape)
	if err != nil {
		return nil, fmt.Errorf("chunk shape %v: %w", shape, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("chunk shape %v: zero-sized chunks", shape)
	}
	if n > maxChunkBytes/int64(dtype.Size) {
		return nil, fmt.Errorf("chunk shape %v: %d elements of %d bytes exceed the %d byte limit per chunk", shape, n, dtype.Size, maxChunkBytes)
	}
	c := &codecChain{dtype: dtype, shape: shape, nbytes: n * int64(dtype.Size)}
	c.encodedBytes = c.nbytes
	return c, nil
}

// checkedProduct multiplies dims, rejecting negatives and overflow.
func checkedProduct(dims []int64) (int64, error) {
	n := int64(1)
	for _, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("negative size %d", d)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("size overflows")
		}
		n *= d
	}
	return n, nil
}

// buildV3Chain builds the chain of v3 codecs for chunks of shape.
func buildV3Chain(codecs []namedConfig, dtype DType, shape []int64) (*codecChain, error) {
	c, err := newChain(dtype, shape)
	if err != nil {
		return nil, err
	}
	stage := 0 // 0: array→array, 1: after array→bytes
	for _, cd := range codecs {
		var conf map[string]any
		if len(cd.Configuration) > 0 {
			if err := unmarshalJSON(cd.Configuration, &conf); err != nil {
				return nil, fmt.Errorf("codec %q: configuration: %w", cd.Name, err)
			}
		}
		switch cd.Name {
		case "transpose":
			if stage != 0 {
				return nil, fmt.Errorf("codec transpose after the array→bytes codec")
			}
			if len(c.a2a) > 0 && c.a2a[len(c.a2a)-1].filter != nil {
				return nil, fmt.Errorf("codec transpose after a numcodecs filter: unsupported")
			}
			perm, err := parsePerm(conf["order"], len(shape))
			if err != nil {
				return nil, fmt.Errorf("codec transpose: %w", err)
			}
			c.a2a = append(c.a2a, a2aCodec{desc: fmt.Sprintf("transpose%v", perm), perm: perm})
		case "bytes", "endian":
			if stage != 0 {
				return nil, fmt.Errorf("codec %q: a second array→bytes codec", cd.Name)
			}
			stage = 1
			switch e, _ := conf["endian"].(string); e {
			case "big":
				c.bigEndian = true
			case "little", "":
			default:
				return nil, fmt.Errorf("codec bytes: unknown endian %q", e)
			}
		case "sharding_indexed":
			if stage != 0 {
				return nil, fmt.Errorf("codec sharding_indexed: a second array→bytes codec")
			}
			if len(c.a2a) != 0 {
				return nil, fmt.Errorf("codec sharding_indexed after array→array codecs: unsupported")
			}
			stage = 1
			sc, err := newShardCodec(cd.Configuration, dtype, shape)
			if err != nil {
				return nil, fmt.Errorf("codec sharding_indexed: %w", err)
			}
			c.shard = sc
		default:
			if stage == 0 {
				// numcodecs filters as zarr-python 3 writes them for v3.
				flt, desc, err := newV2Filter(strings.TrimPrefix(cd.Name, "numcodecs."), conf, dtype)
				if err != nil {
					return nil, fmt.Errorf("codec %q before the array→bytes codec: %w", cd.Name, err)
				}
				if flt == nil {
					continue // lossy on write, identity on read
				}
				c.a2a = append(c.a2a, a2aCodec{desc: desc, filter: flt})
				c.encodedBytes = c.nbytes / int64(dtype.Size) * int64(flt.encodedSize())
				continue
			}
			b, err := newBytesCodec(cd.Name, conf, dtype.Size)
			if err != nil {
				return nil, err
			}
			c.b2b = append(c.b2b, b)
		}
	}
	if stage == 0 {
		if dtype.Size > 1 {
			return nil, fmt.Errorf("codecs: no array→bytes codec (bytes or sharding_indexed)")
		}
	}
	if c.shard != nil && len(c.b2b) > 0 {
		// The index would address bytes of the decoded shard, which would
		// then have to be fetched whole.
		return nil, fmt.Errorf("codecs after sharding_indexed: unsupported")
	}
	c.dtype.BigEndian = c.bigEndian && dtype.Size > 1
	if c.bigEndian && c.encodedBytes != c.nbytes {
		return nil, fmt.Errorf("codec bytes(big) after a numcodecs filter that changes the type: unsupported")
	}
	return c, nil
}

func parsePerm(v any, nd int) ([]int, error) {
	list, ok := v.([]any)
	if !ok {
		if s, isStr := v.(string); isStr && (s == "C" || s == "F") {
			perm := make([]int, nd)
			for i := range perm {
				perm[i] = i
				if s == "F" {
					perm[i] = nd - 1 - i
				}
			}
			return perm, nil
		}
		return nil, fmt.Errorf("order %v: want a permutation", v)
	}
	if len(list) != nd {
		return nil, fmt.Errorf("order %v: want %d axes", v, nd)
	}
	perm := make([]int, nd)
	seen := make([]bool, nd)
	for i, x := range list {
		f, ok := x.(float64)
		if !ok || f != math.Trunc(f) || f < 0 || int(f) >= nd || seen[int(f)] {
			return nil, fmt.Errorf("order %v: not a permutation", v)
		}
		perm[i] = int(f)
		seen[int(f)] = true
	}
	return perm, nil
}

// buildV2Chain maps a v2 array's order, filters and compressor onto a chain.
func buildV2Chain(order string, filters []map[string]any, compressor map[string]any, dtype DType, shape []int64) (*codecChain, error) {
	c, err := newChain(dtype, shape)
	if err != nil {
		return nil, err
	}
	c.bigEndian = dtype.BigEndian
	switch order {
	case "C", "":
	case "F":
		if len(shape) > 1 {
			perm := make([]int, len(shape))
			for i := range perm {
				perm[i] = len(shape) - 1 - i
			}
			c.a2a = append(c.a2a, a2aCodec{desc: "order(F)", perm: perm})
		}
	default:
		return nil, fmt.Errorf("order %q: want C or F", order)
	}
	elemSize := dtype.Size
	for i, f := range filters {
		id, _ := f["id"].(string)
		flt, desc, err := newV2Filter(id, f, dtype)
		if err != nil {
			return nil, fmt.Errorf("filters[%d]: %w", i, err)
		}
		if flt == nil {
			continue // identity on read
		}
		if dtype.BigEndian {
			return nil, fmt.Errorf("filters[%d] %q on big-endian dtype %s: unsupported", i, id, dtype)
		}
		c.a2a = append(c.a2a, a2aCodec{desc: desc, filter: flt})
		elemSize = flt.encodedSize()
	}
	n := c.nbytes / int64(dtype.Size)
	c.encodedBytes = n * int64(elemSize)
	if compressor != nil {
		id, _ := compressor["id"].(string)
		b, err := newBytesCodec(id, compressor, dtype.Size)
		if err != nil {
			return nil, fmt.Errorf("compressor: %w", err)
		}
		c.b2b = append(c.b2b, b)
	}
	return c, nil
}

// describeConf renders a codec as name(k=v,...) for humans.
func describeConf(name string, conf map[string]any, keys ...string) string {
	var parts []string
	for _, k := range keys {
		if v, ok := conf[k]; ok && v != nil {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	return name + "(" + strings.Join(parts, ",") + ")"
}
