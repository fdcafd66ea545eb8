package zarr

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"unsafe"

	"github.com/lsio-loader/lsio-loader/internal/bufpool"
)

// arrayToBytesCodec is the one array→bytes step of a chain: bytes (the
// element byte order) or sharding_indexed.
type arrayToBytesCodec interface {
	describe() string
}

// endianCodec is the v3 bytes codec (formerly endian).
type endianCodec struct{ big bool }

func newEndianCodec(_ json.RawMessage, conf map[string]any, _ DType, _ []int64) (arrayToBytesCodec, error) {
	switch e, _ := conf["endian"].(string); e {
	case "big":
		return endianCodec{big: true}, nil
	case "little", "":
		return endianCodec{}, nil
	default:
		return nil, fmt.Errorf("unknown endian %q", e)
	}
}

func (e endianCodec) describe() string {
	if e.big {
		return "bytes(big)"
	}
	return "bytes(little)"
}

func newShardingCodec(raw json.RawMessage, _ map[string]any, dtype DType, shape []int64) (arrayToBytesCodec, error) {
	return newShardCodec(raw, dtype, shape)
}

// codecChain decodes the chunks of one chunk shape: outer chunks of an
// array, or the inner chunks of a shard.
type codecChain struct {
	a2a []arrayToArrayCodec // in encode order
	// a2aTypes[i] is the element type a2a[i] decodes to.
	a2aTypes  []DType
	bigEndian bool
	// swapEncoded is the big-endian type of the elements the array→array
	// codecs read, when the bytes codec stored them big-endian (v3): they
	// are swapped before those codecs run.
	swapEncoded *DType
	shard       *shardCodec         // array→bytes is sharding_indexed
	b2b         []bytesToBytesCodec // in encode order

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
	r, _ := c.b2b[0].(rangeDecoder)
	return r
}

func (c *codecChain) describe() []string {
	var d []string
	for _, a := range c.a2a {
		d = append(d, a.describe())
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
		d = append(d, b.describe())
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
		if ip, ok := cd.(inPlaceDecoder); ok {
			if b, err = ip.decodeInPlace(b); err != nil {
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
		nb, derr := cd.Decode(dst[:0], b, size)
		if derr != nil {
			pool.Put(dst)
			pool.Put(held)
			return nil, nil, decoded, fmt.Errorf("%s: %w", cd.describe(), derr)
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
	if c.swapEncoded != nil {
		c.swapEncoded.ToLittleEndian(b)
	}
	n := int(c.nbytes) / c.dtype.Size
	for i := len(c.a2a) - 1; i >= 0; i-- {
		size := c.a2aTypes[i].Size
		dst := pool.Get(n * size)
		if err := c.a2a[i].decode(dst[:n*size], b, c.shape, size); err != nil {
			pool.Put(dst)
			pool.Put(held)
			return nil, nil, decoded, fmt.Errorf("%s: %w", c.a2a[i].describe(), err)
		}
		b = dst[:n*size]
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

// addArrayToArray appends an array→array codec (nil: identity on read).
func (c *codecChain) addArrayToArray(a arrayToArrayCodec) {
	if a == nil {
		return
	}
	decoded := c.encodedType()
	c.a2a = append(c.a2a, a)
	c.a2aTypes = append(c.a2aTypes, decoded)
	c.encodedBytes = c.nbytes / int64(c.dtype.Size) * int64(a.encodedType(decoded).Size)
}

// buildV3Chain builds the chain of v3 codecs for chunks of shape.
func buildV3Chain(codecList []namedConfig, dtype DType, shape []int64) (*codecChain, error) {
	c, err := newChain(dtype, shape)
	if err != nil {
		return nil, err
	}
	var a2b arrayToBytesCodec
	for _, cd := range codecList {
		var conf map[string]any
		if len(cd.Configuration) > 0 {
			if err := unmarshalJSON(cd.Configuration, &conf); err != nil {
				return nil, fmt.Errorf("codec %q: configuration: %w", cd.Name, err)
			}
		}
		e, found := codecRegistry[cd.Name]
		switch {
		case !found:
			return nil, fmt.Errorf("unsupported codec %q", cd.Name)
		case a2b == nil && e.arrayToArray != nil:
			if _, afterFilter := c.lastArrayToArray().(filterCodec); afterFilter && cd.Name == "transpose" {
				return nil, fmt.Errorf("codec transpose after a numcodecs filter: unsupported")
			}
			a, err := e.arrayToArray(conf, dtype, shape)
			if err != nil {
				return nil, fmt.Errorf("codec %q before the array→bytes codec: %w", cd.Name, err)
			}
			c.addArrayToArray(a)
		case e.arrayToBytes != nil:
			if a2b != nil {
				return nil, fmt.Errorf("codec %q: a second array→bytes codec", cd.Name)
			}
			a, err := e.arrayToBytes(cd.Configuration, conf, dtype, shape)
			if err != nil {
				return nil, fmt.Errorf("codec %s: %w", cd.Name, err)
			}
			a2b = a
		case a2b != nil && e.bytesToBytes != nil:
			b, err := e.bytesToBytes(conf, dtype.Size)
			if err != nil {
				return nil, fmt.Errorf("codec %q: %w", cd.Name, err)
			}
			c.b2b = append(c.b2b, b)
		case a2b == nil:
			return nil, fmt.Errorf("codec %q before the array→bytes codec: it is a bytes→bytes codec", cd.Name)
		default:
			return nil, fmt.Errorf("codec %q after the array→bytes codec: it is an array→array codec", cd.Name)
		}
	}
	switch a := a2b.(type) {
	case nil:
		if dtype.Size > 1 {
			return nil, fmt.Errorf("codecs: no array→bytes codec (bytes or sharding_indexed)")
		}
	case endianCodec:
		c.bigEndian = a.big
	case *shardCodec:
		if len(c.a2a) != 0 {
			return nil, fmt.Errorf("codec sharding_indexed after array→array codecs: unsupported")
		}
		c.shard = a
	}
	if c.shard != nil && len(c.b2b) > 0 {
		// The index would address bytes of the decoded shard, which would
		// then have to be fetched whole.
		return nil, fmt.Errorf("codecs after sharding_indexed: unsupported")
	}
	if c.bigEndian && len(c.a2a) > 0 {
		// The bytes codec serialises what the array→array codecs encoded:
		// its byte order is undone first, and they then decode to little
		// endian elements.
		enc := c.encodedType()
		enc.BigEndian = enc.Size > 1
		c.swapEncoded = &enc
		return c, nil
	}
	c.dtype.BigEndian = c.bigEndian && dtype.Size > 1
	return c, nil
}

// encodedType is the type of the elements the array→array codecs added so
// far encode to.
func (c *codecChain) encodedType() DType {
	d := c.dtype
	for _, a := range c.a2a {
		d = a.encodedType(d)
	}
	return d
}

// lastArrayToArray is the array→array codec applied last on encode, or nil.
func (c *codecChain) lastArrayToArray() arrayToArrayCodec {
	if len(c.a2a) == 0 {
		return nil
	}
	return c.a2a[len(c.a2a)-1]
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
			c.addArrayToArray(transposeCodec{perm: perm, desc: "order(F)"})
		}
	default:
		return nil, fmt.Errorf("order %q: want C or F", order)
	}
	for i, f := range filters {
		id, _ := f["id"].(string)
		e, found := codecRegistry[id]
		if !found || e.arrayToArray == nil {
			return nil, fmt.Errorf("filters[%d]: unsupported filter %q", i, id)
		}
		a, err := e.arrayToArray(f, dtype, shape)
		if err != nil {
			return nil, fmt.Errorf("filters[%d]: %w", i, err)
		}
		c.addArrayToArray(a)
	}
	if compressor != nil {
		id, _ := compressor["id"].(string)
		e, found := codecRegistry[id]
		if !found || e.bytesToBytes == nil {
			return nil, fmt.Errorf("compressor: unsupported codec %q", id)
		}
		b, err := e.bytesToBytes(compressor, dtype.Size)
		if err != nil {
			return nil, fmt.Errorf("compressor %q: %w", id, err)
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
