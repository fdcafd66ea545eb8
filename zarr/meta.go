package zarr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/lsio-loader/lsio-loader/internal/bufpool"
)

// keyEncoding turns chunk grid indices into store keys.
type keyEncoding struct {
	prefix string // the array's path plus "/", or ""
	sep    byte
	v2     bool // "0.1" style, no "c" prefix
}

func (k keyEncoding) key(idx []int64) string {
	var b strings.Builder
	b.Grow(len(k.prefix) + 2 + 4*len(idx))
	b.WriteString(k.prefix)
	if !k.v2 {
		b.WriteByte('c')
		for _, i := range idx {
			b.WriteByte(k.sep)
			b.WriteString(strconv.FormatInt(i, 10))
		}
		return b.String()
	}
	if len(idx) == 0 {
		b.WriteByte('0')
	}
	for j, i := range idx {
		if j > 0 {
			b.WriteByte(k.sep)
		}
		b.WriteString(strconv.FormatInt(i, 10))
	}
	return b.String()
}

// maxDims bounds the rank of arrays this package reads.
const maxDims = 32

type v2ArrayMeta struct {
	ZarrFormat         int              `json:"zarr_format"`
	Shape              []int64          `json:"shape"`
	Chunks             []int64          `json:"chunks"`
	DType              json.RawMessage  `json:"dtype"`
	Compressor         map[string]any   `json:"compressor"`
	FillValue          json.RawMessage  `json:"fill_value"`
	Order              string           `json:"order"`
	Filters            []map[string]any `json:"filters"`
	DimensionSeparator string           `json:"dimension_separator"`
}

type v3Meta struct {
	ZarrFormat int             `json:"zarr_format"`
	NodeType   string          `json:"node_type"`
	Shape      []int64         `json:"shape"`
	DataType   json.RawMessage `json:"data_type"`
	ChunkGrid  struct {
		Name          string `json:"name"`
		Configuration struct {
			ChunkShape []int64 `json:"chunk_shape"`
		} `json:"configuration"`
	} `json:"chunk_grid"`
	ChunkKeyEncoding struct {
		Name          string `json:"name"`
		Configuration struct {
			Separator string `json:"separator"`
		} `json:"configuration"`
	} `json:"chunk_key_encoding"`
	FillValue            json.RawMessage   `json:"fill_value"`
	Codecs               []namedConfig     `json:"codecs"`
	Attributes           map[string]any    `json:"attributes"`
	DimensionNames       []*string         `json:"dimension_names"`
	StorageTransformers  []json.RawMessage `json:"storage_transformers"`
	ConsolidatedMetadata *struct {
		Metadata map[string]json.RawMessage `json:"metadata"`
	} `json:"consolidated_metadata"`
}

func joinKey(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func cleanPath(p string) string {
	p = strings.Trim(p, "/")
	if p == "." {
		return ""
	}
	return p
}

// readKeys fetches whole objects; a missing one comes back nil without error.
func readKeys(ctx context.Context, s Store, keys ...string) ([][]byte, error) {
	reqs := make([]ByteRange, len(keys))
	for i, k := range keys {
		reqs[i] = ByteRange{Key: k, Length: -1}
	}
	out := make([][]byte, len(keys))
	errs := make([]error, len(keys))
	s.ReadBatch(ctx, reqs, func(i int, data []byte, err error) {
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs[i] = err
			}
			return
		}
		out[i] = bytes.Clone(data)
		s.Release(data)
	})
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("%s: reading %q: %w", s, keys[i], err)
		}
	}
	return out, nil
}

// OpenArray opens the array at path, v3 (zarr.json) or v2 (.zarray).
func OpenArray(ctx context.Context, s Store, arrayPath string) (*Array, error) {
	p := cleanPath(arrayPath)
	docs, err := readKeys(ctx, s, joinKey(p, "zarr.json"), joinKey(p, ".zarray"), joinKey(p, ".zattrs"))
	if err != nil {
		return nil, err
	}
	switch {
	case docs[0] != nil:
		return arrayFromV3(s, p, docs[0])
	case docs[1] != nil:
		return arrayFromV2(s, p, docs[1], docs[2])
	}
	return nil, fmt.Errorf("%s: no array at %q (neither zarr.json nor .zarray): %w", s, "/"+p, fs.ErrNotExist)
}

func newArray(s Store, p string) *Array {
	name := ""
	if p != "" {
		name = path.Base(p)
	}
	return &Array{Store: s, Path: p, Name: name, shards: map[string]shardIndex{}, pool: new(bufpool.Sized)}
}

func (a *Array) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: %w", a, fmt.Errorf(format, args...))
}

func checkGrid(shape, chunks []int64) error {
	if len(shape) > maxDims {
		return fmt.Errorf("%d dims: more than %d", len(shape), maxDims)
	}
	if len(chunks) != len(shape) {
		return fmt.Errorf("chunk shape %v does not match shape %v", chunks, shape)
	}
	for i := range shape {
		if shape[i] < 0 {
			return fmt.Errorf("shape %v: negative size", shape)
		}
		if chunks[i] <= 0 {
			return fmt.Errorf("chunk shape %v: sizes must be positive", chunks)
		}
	}
	if _, err := checkedProduct(shape); err != nil {
		return fmt.Errorf("shape %v: %w", shape, err)
	}
	return nil
}

func arrayFromV2(s Store, p string, zarray, zattrs []byte) (*Array, error) {
	a := newArray(s, p)
	a.ZarrFormat = 2
	var m v2ArrayMeta
	if err := unmarshalJSON(zarray, &m); err != nil {
		return nil, a.errorf(".zarray: %w", err)
	}
	if m.ZarrFormat != 2 {
		return nil, a.errorf(".zarray: zarr_format %d, want 2", m.ZarrFormat)
	}
	var dts string
	if err := json.Unmarshal(m.DType, &dts); err != nil {
		return nil, a.errorf(".zarray: dtype %s: structured dtypes are unsupported", m.DType)
	}
	dt, err := ParseDType(dts)
	if err != nil {
		return nil, a.errorf(".zarray: %w", err)
	}
	if err := checkGrid(m.Shape, m.Chunks); err != nil {
		return nil, a.errorf(".zarray: %w", err)
	}
	a.Shape, a.ChunkShape, a.ReadChunkShape, a.DType = m.Shape, m.Chunks, m.Chunks, dt
	if a.Fill, err = parseFill(m.FillValue, dt, 2); err != nil {
		return nil, a.errorf(".zarray: %w", err)
	}
	a.fillSet = len(m.FillValue) > 0 && string(m.FillValue) != "null"
	sep := byte('.')
	switch m.DimensionSeparator {
	case "", ".":
	case "/":
		sep = '/'
	default:
		return nil, a.errorf(".zarray: dimension_separator %q: want \".\" or \"/\"", m.DimensionSeparator)
	}
	a.keys = keyEncoding{prefix: prefixOf(p), sep: sep, v2: true}
	if a.chain, err = buildV2Chain(m.Order, m.Filters, m.Compressor, dt, m.Chunks); err != nil {
		return nil, a.errorf(".zarray: %w", err)
	}
	a.Codecs = a.chain.describe()
	if len(zattrs) > 0 {
		if err := unmarshalJSON(zattrs, &a.Attrs); err != nil {
			return nil, a.errorf(".zattrs: %w", err)
		}
	}
	if a.Attrs == nil {
		a.Attrs = map[string]any{}
	}
	if dims, ok := a.Attrs["_ARRAY_DIMENSIONS"].([]any); ok {
		if len(dims) != len(a.Shape) {
			return nil, a.errorf(".zattrs: _ARRAY_DIMENSIONS %v does not match shape %v", dims, a.Shape)
		}
		for _, d := range dims {
			name, _ := d.(string)
			a.Dims = append(a.Dims, name)
		}
		delete(a.Attrs, "_ARRAY_DIMENSIONS")
	}
	return a, nil
}

func prefixOf(p string) string {
	if p == "" {
		return ""
	}
	return p + "/"
}

func arrayFromV3(s Store, p string, doc []byte) (*Array, error) {
	a := newArray(s, p)
	a.ZarrFormat = 3
	var m v3Meta
	if err := unmarshalJSON(doc, &m); err != nil {
		return nil, a.errorf("zarr.json: %w", err)
	}
	if m.ZarrFormat != 3 || m.NodeType != "array" {
		return nil, a.errorf("zarr.json: zarr_format %d node_type %q: not a v3 array", m.ZarrFormat, m.NodeType)
	}
	var dt DType
	var err error
	var name string
	if json.Unmarshal(m.DataType, &name) == nil {
		dt, err = parseV3DType(name, nil)
	} else {
		var nc struct {
			Name          string         `json:"name"`
			Configuration map[string]any `json:"configuration"`
		}
		if err = json.Unmarshal(m.DataType, &nc); err == nil {
			dt, err = parseV3DType(nc.Name, nc.Configuration)
		}
	}
	if err != nil {
		return nil, a.errorf("zarr.json: %w", err)
	}
	if m.ChunkGrid.Name != "regular" {
		return nil, a.errorf("zarr.json: chunk_grid %q: only regular grids are supported", m.ChunkGrid.Name)
	}
	if len(m.StorageTransformers) > 0 {
		return nil, a.errorf("zarr.json: storage_transformers are unsupported")
	}
	chunks := m.ChunkGrid.Configuration.ChunkShape
	if err := checkGrid(m.Shape, chunks); err != nil {
		return nil, a.errorf("zarr.json: %w", err)
	}
	a.Shape, a.ChunkShape, a.ReadChunkShape = m.Shape, chunks, chunks
	switch m.ChunkKeyEncoding.Name {
	case "default", "":
		sep := byte('/')
		if m.ChunkKeyEncoding.Configuration.Separator == "." {
			sep = '.'
		}
		a.keys = keyEncoding{prefix: prefixOf(p), sep: sep}
	case "v2":
		sep := byte('.')
		if m.ChunkKeyEncoding.Configuration.Separator == "/" {
			sep = '/'
		}
		a.keys = keyEncoding{prefix: prefixOf(p), sep: sep, v2: true}
	default:
		return nil, a.errorf("zarr.json: chunk_key_encoding %q: unsupported", m.ChunkKeyEncoding.Name)
	}
	if a.chain, err = buildV3Chain(m.Codecs, dt, chunks); err != nil {
		return nil, a.errorf("zarr.json: %w", err)
	}
	a.DType = a.chain.dtype
	for sc := a.chain.shard; sc != nil; sc = sc.inner.shard {
		a.ReadChunkShape = sc.inner.shape
		a.DType = sc.inner.dtype
	}
	if a.Fill, err = parseFill(m.FillValue, dt, 3); err != nil {
		return nil, a.errorf("zarr.json: %w", err)
	}
	a.Codecs = a.chain.describe()
	a.Attrs = m.Attributes
	if a.Attrs == nil {
		a.Attrs = map[string]any{}
	}
	if m.DimensionNames != nil {
		if len(m.DimensionNames) != len(a.Shape) {
			return nil, a.errorf("zarr.json: dimension_names %d for %d dims", len(m.DimensionNames), len(a.Shape))
		}
		for _, d := range m.DimensionNames {
			if d == nil {
				a.Dims = append(a.Dims, "")
			} else {
				a.Dims = append(a.Dims, *d)
			}
		}
	}
	return a, nil
}
