// Package zarrwrite writes Zarr v2 and v3 groups (chunked, compressed,
// sharded, with consolidated metadata) that zarr-python and xarray read: the
// demo and benchmark data and the fixtures of tests.
package zarrwrite

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/lsio-loader/lsio-loader/codecs"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// Compressor selects how a writer compresses chunks (inner chunks when
// sharded).
type Compressor struct {
	// Name is "" (uncompressed), "zstd" or "blosc".
	Name string
	// Level is the zstd level, or blosc's clevel (0 gives 5 for blosc and 3
	// for zstd).
	Level int
	// Cname is blosc's inner compressor: "zstd" or "lz4".
	Cname string
	// Shuffle asks blosc for a byte shuffle.
	Shuffle bool
}

// ArrayMeta describes an array to create.
type ArrayMeta struct {
	// DType is a little-endian numpy type string: "<f4", "|i1", "|b1",
	// "<M8[ns]", "<m8[ns]", "<U6".
	DType             string
	Shape, ChunkShape []int64
	// ShardShape, Zarr v3 only, stores ChunkShape inner chunks in shards of
	// this shape (a multiple of ChunkShape) with the index at the end.
	ShardShape []int64
	// Fill is the fill value: a number, math.NaN(), a string for "<U"
	// types, or nil for zero.
	Fill       any
	Dims       []string
	Attrs      map[string]any
	Compressor Compressor
}

// maxWriteChunkBytes bounds the buffer of one chunk (shard when sharded):
// blosc cannot hold more, and each writer goroutine holds one.
const maxWriteChunkBytes = 1<<31 - 1 - 16

// GroupWriter writes a Zarr v2 or v3 group of arrays into a directory;
// Close writes the consolidated metadata.
type GroupWriter struct {
	dir     string
	version int
	// Attrs are the group's attributes, written by Close.
	Attrs map[string]any

	mu     sync.Mutex
	arrays map[string]arrayDocs // by name, for the consolidated metadata
}

// CreateGroup creates (or overwrites the metadata of) a group of Zarr format
// version 2 or 3 at dir.
func CreateGroup(dir string, version int) (*GroupWriter, error) {
	if version != 2 && version != 3 {
		return nil, fmt.Errorf("create group %s: zarr format %d, want 2 or 3", dir, version)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create group %s: %w", dir, err)
	}
	return &GroupWriter{dir: dir, version: version, Attrs: map[string]any{}, arrays: map[string]arrayDocs{}}, nil
}

// ArrayWriter writes the chunks of one array. Its methods may be called
// from several goroutines at once.
type ArrayWriter struct {
	dir, name  string
	version    int
	meta       ArrayMeta
	dtype      zarr.DType
	grid       []int64 // stored objects per dim
	gridShape  []int64 // shape of one stored object: the shard when sharded
	fill       []byte  // one element
	compressor Compressor
	zenc       *zstd.Encoder
	bloscs     chan *codecs.Blosc // GOMAXPROCS encoders, one per concurrent compress
}

// arrayDocs is an array's metadata documents: zarr.json (v3), or .zarray
// and .zattrs (v2).
type arrayDocs struct{ meta, attrs map[string]any }

// CreateArray creates the array name (no "/") in the group and writes its
// metadata; chunks follow with WriteChunk, FillChunks or WriteArray.
func (g *GroupWriter) CreateArray(name string, meta ArrayMeta) (*ArrayWriter, error) {
	w, docs, err := g.newArray(name, meta)
	if err != nil {
		return nil, fmt.Errorf("create array %q in %s: %w", name, g.dir, err)
	}
	if err := os.MkdirAll(filepath.Join(g.dir, name), 0o755); err != nil {
		return nil, fmt.Errorf("create array %q in %s: %w", name, g.dir, err)
	}
	if g.version == 2 {
		if err := writeJSONFile(filepath.Join(g.dir, name, ".zarray"), docs.meta); err != nil {
			return nil, err
		}
		if err := writeJSONFile(filepath.Join(g.dir, name, ".zattrs"), docs.attrs); err != nil {
			return nil, err
		}
	} else if err := writeJSONFile(filepath.Join(g.dir, name, "zarr.json"), docs.meta); err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.arrays[name] = docs
	g.mu.Unlock()
	return w, nil
}

func (g *GroupWriter) newArray(name string, meta ArrayMeta) (*ArrayWriter, arrayDocs, error) {
	if name == "" || strings.ContainsAny(name, "/\\") || name[0] == '.' || name == "zarr.json" {
		return nil, arrayDocs{}, errors.New("bad array name")
	}
	dt, err := zarr.ParseDType(meta.DType)
	if err != nil {
		return nil, arrayDocs{}, err
	}
	if dt.BigEndian {
		return nil, arrayDocs{}, fmt.Errorf("dtype %s: the writer writes little-endian only", meta.DType)
	}
	n := len(meta.Shape)
	if len(meta.ChunkShape) != n || len(meta.Dims) != 0 && len(meta.Dims) != n {
		return nil, arrayDocs{}, fmt.Errorf("shape %v, chunks %v and dims %v differ in rank", meta.Shape, meta.ChunkShape, meta.Dims)
	}
	for i := range n {
		if meta.Shape[i] < 0 || meta.ChunkShape[i] < 1 {
			return nil, arrayDocs{}, fmt.Errorf("shape %v or chunks %v out of range", meta.Shape, meta.ChunkShape)
		}
	}
	gridShape := meta.ChunkShape
	if meta.ShardShape != nil {
		if g.version != 3 {
			return nil, arrayDocs{}, errors.New("sharding needs zarr format 3")
		}
		if len(meta.ShardShape) != n {
			return nil, arrayDocs{}, fmt.Errorf("shard shape %v and shape %v differ in rank", meta.ShardShape, meta.Shape)
		}
		for i := range n {
			if meta.ShardShape[i] < 1 || meta.ShardShape[i]%meta.ChunkShape[i] != 0 {
				return nil, arrayDocs{}, fmt.Errorf("shard shape %v is not a multiple of chunks %v", meta.ShardShape, meta.ChunkShape)
			}
		}
		gridShape = meta.ShardShape
	}
	chunkBytes := int64(dt.Size)
	for _, c := range gridShape {
		if chunkBytes > maxWriteChunkBytes/c {
			return nil, arrayDocs{}, fmt.Errorf("chunk shape %v of %s exceeds %d bytes", gridShape, dt, int64(maxWriteChunkBytes))
		}
		chunkBytes *= c
	}
	fill, fillJSON, err := writerFillValue(dt, meta.Fill, g.version)
	if err != nil {
		return nil, arrayDocs{}, err
	}
	comp := meta.Compressor
	w := &ArrayWriter{dir: filepath.Join(g.dir, name), name: name, version: g.version, meta: meta, dtype: dt,
		gridShape: gridShape, fill: fill, compressor: comp}
	for i := range n {
		w.grid = append(w.grid, (meta.Shape[i]+gridShape[i]-1)/gridShape[i])
	}
	var compJSON map[string]any
	switch comp.Name {
	case "":
	case "zstd":
		if comp.Level == 0 {
			comp.Level = 3
		}
		w.zenc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(comp.Level)),
			zstd.WithEncoderCRC(false), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
		if err != nil {
			return nil, arrayDocs{}, err
		}
		if g.version == 2 {
			compJSON = map[string]any{"id": "zstd", "level": comp.Level}
		} else {
			compJSON = map[string]any{"name": "zstd", "configuration": map[string]any{"level": comp.Level, "checksum": false}}
		}
	case "blosc":
		if comp.Level == 0 {
			comp.Level = 5
		}
		if comp.Cname != "zstd" && comp.Cname != "lz4" {
			return nil, arrayDocs{}, fmt.Errorf("blosc cname %q, want zstd or lz4", comp.Cname)
		}
		w.bloscs = make(chan *codecs.Blosc, runtime.GOMAXPROCS(0))
		for range cap(w.bloscs) {
			w.bloscs <- codecs.NewBlosc()
		}
		shuffle := 0
		if comp.Shuffle {
			shuffle = 1
		}
		if g.version == 2 {
			compJSON = map[string]any{"id": "blosc", "cname": comp.Cname, "clevel": comp.Level, "shuffle": shuffle, "blocksize": 0}
		} else {
			compJSON = map[string]any{"name": "blosc", "configuration": map[string]any{"typesize": dt.Size,
				"cname": comp.Cname, "clevel": comp.Level, "shuffle": []string{"noshuffle", "shuffle"}[shuffle], "blocksize": 0}}
		}
	default:
		return nil, arrayDocs{}, fmt.Errorf("compressor %q, want zstd, blosc or none", comp.Name)
	}
	w.compressor = comp
	attrs := map[string]any{}
	for k, v := range meta.Attrs {
		attrs[k] = v
	}
	dims := meta.Dims
	if dims == nil {
		dims = []string{}
	}
	if g.version == 2 {
		if meta.Dims != nil {
			attrs["_ARRAY_DIMENSIONS"] = dims
		}
		doc := map[string]any{"zarr_format": 2, "shape": meta.Shape, "chunks": meta.ChunkShape, "dtype": dt.String(),
			"fill_value": fillJSON, "order": "C", "filters": nil, "dimension_separator": ".", "compressor": compJSON}
		if compJSON == nil {
			doc["compressor"] = nil
		}
		return w, arrayDocs{doc, attrs}, nil
	}
	codecs := []any{map[string]any{"name": "bytes", "configuration": map[string]any{"endian": "little"}}}
	if compJSON != nil {
		codecs = append(codecs, compJSON)
	}
	if meta.ShardShape != nil {
		codecs = []any{map[string]any{"name": "sharding_indexed", "configuration": map[string]any{
			"chunk_shape": meta.ChunkShape,
			"codecs":      codecs,
			"index_codecs": []any{map[string]any{"name": "bytes", "configuration": map[string]any{"endian": "little"}},
				map[string]any{"name": "crc32c"}},
			"index_location": "end",
		}}}
	}
	doc := map[string]any{"zarr_format": 3, "node_type": "array", "shape": meta.Shape, "data_type": v3DataTypeJSON(dt),
		"chunk_grid":         map[string]any{"name": "regular", "configuration": map[string]any{"chunk_shape": gridShape}},
		"chunk_key_encoding": map[string]any{"name": "default", "configuration": map[string]any{"separator": "/"}},
		"fill_value":         fillJSON, "codecs": codecs, "attributes": attrs, "storage_transformers": []any{}}
	if meta.Dims != nil {
		doc["dimension_names"] = dims
	}
	return w, arrayDocs{meta: doc}, nil
}

// v3DataTypeJSON names dt the way zarr-python 3 writes it.
func v3DataTypeJSON(dt zarr.DType) any {
	switch dt.Kind {
	case zarr.KindBool:
		return "bool"
	case zarr.KindInt:
		return "int" + strconv.Itoa(8*dt.Size)
	case zarr.KindUint:
		return "uint" + strconv.Itoa(8*dt.Size)
	case zarr.KindFloat:
		return "float" + strconv.Itoa(8*dt.Size)
	case zarr.KindDatetime, zarr.KindTimedelta:
		name := "numpy.datetime64"
		if dt.Kind == zarr.KindTimedelta {
			name = "numpy.timedelta64"
		}
		return map[string]any{"name": name, "configuration": map[string]any{"unit": dt.Unit, "scale_factor": dt.UnitScale}}
	case zarr.KindUnicode:
		return map[string]any{"name": "fixed_length_utf32", "configuration": map[string]any{"length_bytes": dt.Size}}
	}
	return dt.String()
}

// writerFillValue returns the fill value as one little-endian element and as
// zarr metadata JSON.
func writerFillValue(dt zarr.DType, v any, zarrFormat int) ([]byte, any, error) {
	out := make([]byte, dt.Size)
	if dt.Kind == zarr.KindUnicode {
		s, _ := v.(string)
		if v != nil && !writerIsString(v) {
			return nil, arrayDocs{}, fmt.Errorf("fill value %v for %s: want a string", v, dt)
		}
		r := []rune(s)
		if len(r)*4 > dt.Size {
			return nil, arrayDocs{}, fmt.Errorf("fill value %q longer than %s", s, dt)
		}
		for i, c := range r {
			binary.LittleEndian.PutUint32(out[4*i:], uint32(c))
		}
		if v == nil && zarrFormat == 2 {
			// null, as xarray writes: "" would make xarray mask labels and
			// turn them into objects.
			return out, nil, nil
		}
		return out, s, nil
	}
	var f float64
	switch x := v.(type) {
	case nil:
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case bool:
		if x {
			f = 1
		}
	default:
		return nil, arrayDocs{}, fmt.Errorf("fill value %v (%T) for %s: want a number", v, v, dt)
	}
	switch dt.Kind {
	case zarr.KindBool:
		if f != 0 {
			out[0] = 1
		}
		return out, f != 0, nil
	case zarr.KindFloat:
		switch dt.Size {
		case 4:
			binary.LittleEndian.PutUint32(out, math.Float32bits(float32(f)))
		case 8:
			binary.LittleEndian.PutUint64(out, math.Float64bits(f))
		default:
			return nil, arrayDocs{}, fmt.Errorf("writer does not write %s", dt)
		}
		switch {
		case math.IsNaN(f):
			return out, "NaN", nil
		case math.IsInf(f, 1):
			return out, "Infinity", nil
		case math.IsInf(f, -1):
			return out, "-Infinity", nil
		}
		return out, f, nil
	case zarr.KindInt, zarr.KindUint, zarr.KindDatetime, zarr.KindTimedelta:
		if f != math.Trunc(f) {
			return nil, arrayDocs{}, fmt.Errorf("fill value %v for %s is not an integer", f, dt)
		}
		i := int64(f)
		if x, ok := v.(int64); ok {
			i = x
		}
		switch dt.Size {
		case 1:
			out[0] = byte(i)
		case 2:
			binary.LittleEndian.PutUint16(out, uint16(i))
		case 4:
			binary.LittleEndian.PutUint32(out, uint32(i))
		case 8:
			binary.LittleEndian.PutUint64(out, uint64(i))
		}
		return out, i, nil
	}
	return nil, arrayDocs{}, fmt.Errorf("writer does not write %s", dt)
}

func writerIsString(v any) bool { _, ok := v.(string); return ok }

// ChunkBytes is the size of the buffer WriteChunk takes: one chunk, or one
// shard when sharded, edge chunks included.
func (w *ArrayWriter) ChunkBytes() int {
	n := w.dtype.Size
	for _, s := range w.gridShape {
		n *= int(s)
	}
	return n
}

// Grid returns the number of chunks (shards when sharded) along each dim.
func (w *ArrayWriter) Grid() []int64 { return append([]int64(nil), w.grid...) }

// ChunkShape returns the shape of the buffers WriteChunk takes.
func (w *ArrayWriter) ChunkShape() []int64 { return append([]int64(nil), w.gridShape...) }

// WriteChunk encodes and writes the chunk (the shard when sharded) at grid
// index idx from data, which holds the whole chunk shape in C order, edge
// chunks included: the part beyond the array is ignored by readers.
func (w *ArrayWriter) WriteChunk(idx []int64, data []byte) error {
	if len(idx) != len(w.grid) {
		return fmt.Errorf("write %s chunk %v: rank %d, want %d", w.name, idx, len(idx), len(w.grid))
	}
	for i, v := range idx {
		if v < 0 || v >= w.grid[i] {
			return fmt.Errorf("write %s chunk %v: outside the grid %v", w.name, idx, w.grid)
		}
	}
	if len(data) != w.ChunkBytes() {
		return fmt.Errorf("write %s chunk %v: %d bytes, want %d", w.name, idx, len(data), w.ChunkBytes())
	}
	var enc []byte
	var err error
	if w.meta.ShardShape != nil {
		enc, err = w.encodeShard(idx, data)
	} else {
		enc, err = w.compress(data)
	}
	if err != nil {
		return fmt.Errorf("write %s chunk %v: %w", w.name, idx, err)
	}
	path := filepath.Join(w.dir, w.chunkKey(idx))
	if w.version == 3 {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("write %s chunk %v: %w", w.name, idx, err)
		}
	}
	if err := os.WriteFile(path, enc, 0o644); err != nil {
		return fmt.Errorf("write %s chunk %v: %w", w.name, idx, err)
	}
	return nil
}

// chunkKey is the file of chunk idx relative to the array directory.
func (w *ArrayWriter) chunkKey(idx []int64) string {
	parts := make([]string, len(idx))
	for i, v := range idx {
		parts[i] = strconv.FormatInt(v, 10)
	}
	if w.version == 2 {
		if len(idx) == 0 {
			return "0"
		}
		return strings.Join(parts, ".")
	}
	return filepath.Join(append([]string{"c"}, parts...)...)
}

func (w *ArrayWriter) compress(data []byte) ([]byte, error) {
	switch w.compressor.Name {
	case "zstd":
		return w.zenc.EncodeAll(data, make([]byte, 0, len(data)/2+64)), nil
	case "blosc":
		return w.writerBlosc(data)
	}
	return append([]byte(nil), data...), nil
}

// encodeShard splits a shard into its inner chunks, compresses those that
// overlap the array and appends the index (offset, length per inner chunk,
// all ones for absent ones) and its CRC32C.
func (w *ArrayWriter) encodeShard(idx []int64, shard []byte) ([]byte, error) {
	inner := w.meta.ChunkShape
	n := len(inner)
	per := make([]int64, n) // inner chunks per shard along each dim
	count := int64(1)
	for i := range n {
		per[i] = w.gridShape[i] / inner[i]
		count *= per[i]
	}
	index := make([]byte, 16*count)
	for i := range index {
		index[i] = 0xff
	}
	chunkBytes := int64(w.dtype.Size)
	for _, s := range inner {
		chunkBytes *= s
	}
	buf := make([]byte, chunkBytes)
	var body []byte
	pos := make([]int64, n)
	for k := int64(0); k < count; k++ {
		rem := k
		inside := true
		for d := n - 1; d >= 0; d-- {
			pos[d] = rem % per[d]
			rem /= per[d]
			if idx[d]*w.gridShape[d]+pos[d]*inner[d] >= w.meta.Shape[d] {
				inside = false
			}
		}
		if !inside {
			continue
		}
		copyInnerChunk(buf, shard, w.gridShape, pos, inner, w.dtype.Size)
		enc, err := w.compress(buf)
		if err != nil {
			return nil, err
		}
		binary.LittleEndian.PutUint64(index[16*k:], uint64(len(body)))
		binary.LittleEndian.PutUint64(index[16*k+8:], uint64(len(enc)))
		body = append(body, enc...)
	}
	body = append(body, index...)
	return binary.LittleEndian.AppendUint32(body, codecs.CRC32C(index)), nil
}

// copyInnerChunk copies block number pos (in units of block) of the C-order
// array src of shape srcShape into dst.
func copyInnerChunk(dst, src []byte, srcShape, pos, block []int64, size int) {
	n := len(srcShape)
	if n == 0 {
		copy(dst, src[:size])
		return
	}
	rowBytes := int(block[n-1]) * size
	rows := len(dst) / max(rowBytes, 1)
	at := make([]int64, n) // position within the block, last dim unused
	for r := 0; r < rows; r++ {
		off := int64(0)
		for d := 0; d < n; d++ {
			c := pos[d] * block[d]
			if d < n-1 {
				c += at[d]
			}
			off = off*srcShape[d] + c
		}
		copy(dst[r*rowBytes:(r+1)*rowBytes], src[off*int64(size):])
		for d := n - 2; d >= 0; d-- {
			at[d]++
			if at[d] < block[d] {
				break
			}
			at[d] = 0
		}
	}
}

// FillChunks writes every chunk (shard when sharded) of the array, in
// parallel across GOMAXPROCS: fill gets the chunk's grid index and a
// zeroed buffer of ChunkBytes to fill in C order, then the chunk is
// compressed and written. fill is called from several goroutines at once.
func (w *ArrayWriter) FillChunks(ctx context.Context, fill func(idx []int64, chunk []byte) error) error {
	total := int64(1)
	for _, g := range w.grid {
		total *= g
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int64)
	var wg sync.WaitGroup
	for range min(int64(runtime.GOMAXPROCS(0)), max(total, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, w.ChunkBytes())
			for k := range next {
				idx := make([]int64, len(w.grid))
				rem := k
				for d := len(w.grid) - 1; d >= 0; d-- {
					idx[d] = rem % w.grid[d]
					rem /= w.grid[d]
				}
				clear(buf)
				err := fill(idx, buf)
				if err == nil {
					err = w.WriteChunk(idx, buf)
				}
				if err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
feed:
	for k := int64(0); k < total; k++ {
		select {
		case next <- k:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("write %s: %w", w.name, err)
	}
	return nil
}

// WriteArray writes the whole array from data in C order, padding edge
// chunks with the fill value.
func (w *ArrayWriter) WriteArray(ctx context.Context, data []byte) error {
	size := int64(w.dtype.Size)
	if int64(len(data)) != w.numElements()*size {
		return fmt.Errorf("write %s: %d bytes for shape %v of %s", w.name, len(data), w.meta.Shape, w.dtype)
	}
	shape, cs := w.meta.Shape, w.gridShape
	n := len(shape)
	return w.FillChunks(ctx, func(idx []int64, chunk []byte) error {
		if n == 0 {
			copy(chunk, data)
			return nil
		}
		// Copy row by row (last dim) the part of the chunk inside the array;
		// only edge chunks have a part outside, which gets the fill value.
		ext := make([]int64, n)
		edge := false
		for d := range n {
			ext[d] = min(cs[d], shape[d]-idx[d]*cs[d])
			edge = edge || ext[d] < cs[d]
		}
		if edge {
			for i := 0; i < len(chunk); i += len(w.fill) {
				copy(chunk[i:], w.fill)
			}
		}
		at := make([]int64, n)
		for {
			src, dst := int64(0), int64(0)
			for d := range n {
				src = src*shape[d] + idx[d]*cs[d] + at[d]
				dst = dst*cs[d] + at[d]
			}
			copy(chunk[dst*size:(dst+ext[n-1])*size], data[src*size:])
			d := n - 2
			for ; d >= 0; d-- {
				at[d]++
				if at[d] < ext[d] {
					break
				}
				at[d] = 0
			}
			if d < 0 {
				return nil
			}
		}
	})
}

func (w *ArrayWriter) numElements() int64 {
	n := int64(1)
	for _, s := range w.meta.Shape {
		n *= s
	}
	return n
}

// Close writes the group metadata and the consolidated metadata of every
// array created: .zgroup, .zattrs and .zmetadata for v2, zarr.json with
// inline consolidated metadata for v3.
func (g *GroupWriter) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	names := make([]string, 0, len(g.arrays))
	for n := range g.arrays {
		names = append(names, n)
	}
	sort.Strings(names)
	if g.version == 2 {
		meta := map[string]any{".zgroup": map[string]any{"zarr_format": 2}, ".zattrs": g.Attrs}
		for _, n := range names {
			meta[n+"/.zarray"] = g.arrays[n].meta
			meta[n+"/.zattrs"] = g.arrays[n].attrs
		}
		if err := writeJSONFile(filepath.Join(g.dir, ".zgroup"), meta[".zgroup"]); err != nil {
			return err
		}
		if err := writeJSONFile(filepath.Join(g.dir, ".zattrs"), g.Attrs); err != nil {
			return err
		}
		return writeJSONFile(filepath.Join(g.dir, ".zmetadata"), map[string]any{"metadata": meta, "zarr_consolidated_format": 1})
	}
	meta := map[string]any{}
	for _, n := range names {
		meta[n] = g.arrays[n].meta
	}
	return writeJSONFile(filepath.Join(g.dir, "zarr.json"), map[string]any{"zarr_format": 3, "node_type": "group",
		"attributes":            g.Attrs,
		"consolidated_metadata": map[string]any{"kind": "inline", "must_understand": false, "metadata": meta}})
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writerBlosc compresses one chunk as a blosc frame. Each concurrent
// caller takes its own codecs.Blosc from the pool, because a Blosc
// serialises its zstd encodes.
func (w *ArrayWriter) writerBlosc(data []byte) ([]byte, error) {
	b := <-w.bloscs
	defer func() { w.bloscs <- b }()
	shuffle := codecs.NoShuffle
	if w.compressor.Shuffle {
		shuffle = codecs.ByteShuffle
	}
	return b.Encode(make([]byte, 0, len(data)/2+64), data, codecs.BloscOptions{Compressor: w.compressor.Cname,
		Level: w.compressor.Level, Shuffle: shuffle, TypeSize: w.dtype.Size})
}
