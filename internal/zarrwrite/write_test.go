package zarrwrite

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// writeCase is one array for the writer tests; data is C order,
// little-endian, the whole array.
type writeCase struct {
	name string
	meta ArrayMeta
	data []byte
}

func elements(shape []int64) int64 {
	n := int64(1)
	for _, s := range shape {
		n *= s
	}
	return n
}

// patterned returns count elements of dtype that differ from each other and
// from their neighbours, with a NaN every 97th float.
func patterned(dtype string, count int64) []byte {
	dt, err := zarr.ParseDType(dtype)
	if err != nil {
		panic(err)
	}
	out := make([]byte, count*int64(dt.Size))
	for i := range count {
		b := out[i*int64(dt.Size):]
		v := i*7919 + 13
		switch {
		case dt.Kind == zarr.KindFloat && dt.Size == 4:
			f := float32(math.Sin(float64(i))*1000 + float64(i))
			if i%97 == 5 {
				f = float32(math.NaN())
			}
			binary.LittleEndian.PutUint32(b, math.Float32bits(f))
		case dt.Kind == zarr.KindFloat && dt.Size == 8:
			binary.LittleEndian.PutUint64(b, math.Float64bits(float64(i)*2000.5-1e5))
		case dt.Kind == zarr.KindUnicode:
			for j, r := range []rune("ch_é" + string(rune('A'+i%26))) {
				if 4*j < dt.Size {
					binary.LittleEndian.PutUint32(b[4*j:], uint32(r))
				}
			}
		case dt.Kind == zarr.KindDatetime || dt.Kind == zarr.KindTimedelta:
			binary.LittleEndian.PutUint64(b, uint64(1585699200000000000+i*300_000_000_000))
		case dt.Kind == zarr.KindBool:
			b[0] = byte(i % 3 % 2)
		default:
			for j := range dt.Size {
				b[j] = byte(v >> (8 * j))
			}
		}
	}
	return out
}

func writerCases(version int) []writeCase {
	cases := []struct {
		name, dtype           string
		shape, chunks, shards []int64
		fill                  any
		comp                  Compressor
	}{
		{"f4_zstd_edges", "<f4", []int64{5, 13, 17}, []int64{2, 5, 8}, nil, math.NaN(), Compressor{Name: "zstd"}},
		{"f4_blosc_zstd_shuffle", "<f4", []int64{3, 40, 37}, []int64{1, 16, 16}, nil, 0.0, Compressor{Name: "blosc", Cname: "zstd", Shuffle: true}},
		{"i2_blosc_lz4", "<i2", []int64{30, 31}, []int64{8, 8}, nil, -1, Compressor{Name: "blosc", Cname: "lz4", Shuffle: true}},
		{"i8_none", "<i8", []int64{9}, []int64{4}, nil, nil, Compressor{}},
		{"u1", "|u1", []int64{10, 10}, []int64{3, 3}, nil, 7, Compressor{Name: "zstd", Level: 1}},
		{"bool", "|b1", []int64{11}, []int64{4}, nil, nil, Compressor{}},
		{"f8_coord", "<f8", []int64{274}, []int64{274}, nil, math.NaN(), Compressor{Name: "zstd"}},
		{"time_ns", "<M8[ns]", []int64{8}, []int64{8}, nil, int64(math.MinInt64), Compressor{}},
		{"step_ns", "<m8[ns]", []int64{7}, []int64{7}, nil, int64(math.MinInt64), Compressor{Name: "zstd"}},
		{"labels", "<U6", []int64{6}, []int64{6}, nil, "", Compressor{}},
		{"scalar", "<f8", []int64{}, []int64{}, nil, 1.5, Compressor{}},
	}
	if version == 3 {
		cases = append(cases, []struct {
			name, dtype           string
			shape, chunks, shards []int64
			fill                  any
			comp                  Compressor
		}{
			{"sharded_edges", "<f4", []int64{5, 3, 70, 45}, []int64{1, 3, 16, 16}, []int64{2, 3, 32, 32}, math.NaN(), Compressor{Name: "zstd"}},
			{"sharded_i2", "<i2", []int64{4, 11, 20, 20}, []int64{1, 11, 8, 8}, []int64{1, 11, 16, 16}, 0, Compressor{Name: "zstd"}},
			{"sharded_blosc", "<f4", []int64{30, 30}, []int64{10, 10}, []int64{20, 20}, 0, Compressor{Name: "blosc", Cname: "lz4", Shuffle: true}},
		}...)
	}
	var out []writeCase
	for i, c := range cases {
		dims := make([]string, len(c.shape))
		for d := range dims {
			dims[d] = c.name + "_" + string(rune('a'+d))
		}
		out = append(out, writeCase{c.name, ArrayMeta{DType: c.dtype, Shape: c.shape, ChunkShape: c.chunks,
			ShardShape: c.shards, Fill: c.fill, Dims: dims, Compressor: c.comp,
			Attrs: map[string]any{"long_name": c.name, "index": i}},
			patterned(c.dtype, elements(c.shape))})
	}
	return out
}

// writeGroup writes the cases into dir and the raw data beside it, and
// returns the manifest the Python check reads.
func writeGroup(t *testing.T, dir string, version int, cases []writeCase) string {
	t.Helper()
	g, err := CreateGroup(filepath.Join(dir, "g.zarr"), version)
	if err != nil {
		t.Fatal(err)
	}
	g.Attrs["title"] = "writer test"
	type entry struct {
		Name  string   `json:"name"`
		DType string   `json:"dtype"`
		Shape []int64  `json:"shape"`
		Dims  []string `json:"dims"`
	}
	var manifest []entry
	for _, c := range cases {
		w, err := g.CreateArray(c.name, c.meta)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := w.WriteArray(context.Background(), c.data); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, c.name+".raw"), c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		manifest = append(manifest, entry{c.name, c.meta.DType, c.meta.Shape, c.meta.Dims})
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	return string(js)
}

// TestWriterReadByZarrPython writes every case with the Go writer, then
// has zarr-python (consolidated open) and xarray read it back exactly.
func TestWriterReadByZarrPython(t *testing.T) {
	for _, version := range []int{2, 3} {
		t.Run("v"+string(rune('0'+version)), func(t *testing.T) {
			dir := t.TempDir()
			cases := writerCases(version)
			manifest := writeGroup(t, dir, version, cases)
			out := testenv.RunPython(t, `
import json, sys, warnings
import numpy as np, zarr, xarray as xr
warnings.filterwarnings("ignore")
d, version = sys.argv[1], int(sys.argv[3])
g = zarr.open_consolidated(d + "/g.zarr", zarr_format=version)
assert g.attrs["title"] == "writer test"
for m in json.loads(sys.argv[2]):
    a = g[m["name"]]
    want = np.frombuffer(open(f"{d}/{m['name']}.raw", "rb").read(), dtype=m["dtype"]).reshape(m["shape"])
    got = a[...]
    assert got.dtype == want.dtype, (m, got.dtype)
    assert got.shape == want.shape, (m, got.shape)
    assert np.ascontiguousarray(got).tobytes() == want.tobytes(), m["name"]
    assert a.attrs["long_name"] == m["name"]
    print(m["name"])
ds = xr.open_zarr(d + "/g.zarr", consolidated=True, zarr_format=version, decode_cf=False)
for m in json.loads(sys.argv[2]):
    assert list(ds[m["name"]].dims) == m["dims"], (m, ds[m["name"]].dims)
`, dir, manifest, string(rune('0'+version)))
			if got := strings.Fields(string(out)); len(got) != len(cases) {
				t.Fatalf("python checked %d arrays, want %d: %s", len(got), len(cases), out)
			}
			// And our own reader, through the consolidated metadata.
			g, err := zarr.OpenGroup(context.Background(), dirstore.New(filepath.Join(dir, "g.zarr")), "")
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cases {
				a, err := g.Array(c.name)
				if err != nil {
					t.Fatal(err)
				}
				got, err := a.ReadAll(context.Background())
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if !bytes.Equal(got, c.data) || a.DType.String() != c.meta.DType {
					t.Errorf("%s: Go reader reads back different data or dtype %s", c.name, a.DType)
				}
			}
		})
	}
}

// TestWriterPartialChunks checks FillChunks/WriteChunk: chunks never
// written read as the fill value, and bad chunk writes are refused.
func TestWriterPartialChunks(t *testing.T) {
	dir := t.TempDir()
	g, err := CreateGroup(dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	w, err := g.CreateArray("p", ArrayMeta{DType: "<i2", Shape: []int64{5, 6}, ChunkShape: []int64{2, 3},
		ShardShape: []int64{4, 3}, Fill: -5, Compressor: Compressor{Name: "zstd"}})
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, w.ChunkBytes())
	for i := range chunk {
		chunk[i] = byte(i)
	}
	if err := w.WriteChunk([]int64{1, 1}, chunk); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		idx  []int64
		data []byte
	}{{[]int64{2, 0}, chunk}, {[]int64{0}, chunk}, {[]int64{0, 0}, chunk[:4]}, {[]int64{-1, 0}, chunk}} {
		if err := w.WriteChunk(bad.idx, bad.data); err == nil {
			t.Errorf("WriteChunk(%v, %d bytes) accepted", bad.idx, len(bad.data))
		}
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	out := testenv.RunPython(t, `
import sys, numpy as np, zarr
a = zarr.open_array(sys.argv[1], path="p", mode="r")
want = np.full((5, 6), -5, dtype="<i2")
want[4:5, 3:6] = np.frombuffer(bytes(range(24)), dtype="<i2").reshape(4, 3)[:1]
assert (a[...] == want).all(), a[...]
print("ok")
`, dir)
	if strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("python: %s", out)
	}
}

func TestWriterRejectsBadMeta(t *testing.T) {
	for _, c := range []struct {
		version int
		meta    ArrayMeta
	}{
		{2, ArrayMeta{DType: "<f4", Shape: []int64{4}, ChunkShape: []int64{2}, ShardShape: []int64{4}}},
		{3, ArrayMeta{DType: "<f4", Shape: []int64{4}, ChunkShape: []int64{2}, ShardShape: []int64{3}}},
		{3, ArrayMeta{DType: ">f4", Shape: []int64{4}, ChunkShape: []int64{2}}},
		{3, ArrayMeta{DType: "<f4", Shape: []int64{4}, ChunkShape: []int64{0}}},
		{3, ArrayMeta{DType: "<f4", Shape: []int64{4, 4}, ChunkShape: []int64{2}}},
		{3, ArrayMeta{DType: "<f4", Shape: []int64{4}, ChunkShape: []int64{2}, Dims: []string{"a", "b"}}},
		{3, ArrayMeta{DType: "<i2", Shape: []int64{4}, ChunkShape: []int64{2}, Fill: 0.5}},
		{3, ArrayMeta{DType: "<U2", Shape: []int64{4}, ChunkShape: []int64{2}, Fill: "abc"}},
		{2, ArrayMeta{DType: "<f4", Shape: []int64{4}, ChunkShape: []int64{2}, Compressor: Compressor{Name: "lzma"}}},
		{2, ArrayMeta{DType: "<f8", Shape: []int64{1 << 40, 1 << 40}, ChunkShape: []int64{1 << 20, 1 << 20}}},
		{2, ArrayMeta{DType: "<f4", Shape: []int64{4}, ChunkShape: []int64{2}, Compressor: Compressor{Name: "blosc", Cname: "snappy"}}},
	} {
		g, err := CreateGroup(t.TempDir(), c.version)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.CreateArray("x", c.meta); err == nil {
			t.Errorf("v%d %+v accepted", c.version, c.meta)
		}
	}
	if _, err := CreateGroup(t.TempDir(), 4); err == nil {
		t.Error("zarr format 4 accepted")
	}
}

func BenchmarkWriterFillChunks(b *testing.B) {
	for _, comp := range []Compressor{{Name: "zstd", Level: 1}, {Name: "blosc", Cname: "zstd", Shuffle: true, Level: 1}} {
		b.Run(comp.Name, func(b *testing.B) {
			g, err := CreateGroup(b.TempDir(), 2)
			if err != nil {
				b.Fatal(err)
			}
			w, err := g.CreateArray("x", ArrayMeta{DType: "<f4", Shape: []int64{16, 352, 274}, ChunkShape: []int64{1, 176, 137}, Compressor: comp})
			if err != nil {
				b.Fatal(err)
			}
			// The same smooth field zarr-python is timed on: sin(i*1e-3).
			full := make([]byte, 16*352*274*4)
			for i := 0; i < len(full); i += 4 {
				binary.LittleEndian.PutUint32(full[i:], math.Float32bits(float32(math.Sin(float64(i/4)*1e-3))))
			}
			b.SetBytes(int64(len(full)))
			for b.Loop() {
				if err := w.WriteArray(context.Background(), full); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriterFillChunksCompute is BenchmarkWriterFillChunks with the
// values computed in the fill callback, as the demo generator does.
func BenchmarkWriterFillChunksCompute(b *testing.B) {
	for _, comp := range []Compressor{{Name: "zstd", Level: 1}} {
		b.Run(comp.Name, func(b *testing.B) {
			g, err := CreateGroup(b.TempDir(), 2)
			if err != nil {
				b.Fatal(err)
			}
			w, err := g.CreateArray("x", ArrayMeta{DType: "<f4", Shape: []int64{16, 352, 274}, ChunkShape: []int64{1, 176, 137}, Compressor: comp})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(16 * 352 * 274 * 4)
			for b.Loop() {
				err := w.FillChunks(context.Background(), func(idx []int64, chunk []byte) error {
					for i := 0; i < len(chunk); i += 4 {
						binary.LittleEndian.PutUint32(chunk[i:], math.Float32bits(float32(math.Sin(float64(i)*1e-3))+float32(idx[0])))
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
