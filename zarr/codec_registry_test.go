package zarr

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// TestCodecRegistry checks every name's kinds and that each
// "numcodecs.<id>" alias is the codec of that id.
func TestCodecRegistry(t *testing.T) {
	names := 0
	for _, tc := range []struct {
		name             string
		a2a, a2b, b2b    bool
		numcodecsAliased bool
	}{
		{name: "transpose", a2a: true},
		{name: "delta", a2a: true, numcodecsAliased: true},
		{name: "fixedscaleoffset", a2a: true, numcodecsAliased: true},
		{name: "astype", a2a: true, numcodecsAliased: true},
		{name: "quantize", a2a: true, numcodecsAliased: true},
		{name: "bitround", a2a: true, numcodecsAliased: true},
		{name: "shuffle", a2a: true, b2b: true, numcodecsAliased: true},
		{name: "bytes", a2b: true},
		{name: "endian", a2b: true},
		{name: "sharding_indexed", a2b: true},
		{name: "crc32c", b2b: true},
		{name: "blosc", b2b: true, numcodecsAliased: true},
		{name: "zstd", b2b: true, numcodecsAliased: true},
		{name: "gzip", b2b: true, numcodecsAliased: true},
		{name: "zlib", b2b: true, numcodecsAliased: true},
		{name: "bz2", b2b: true, numcodecsAliased: true},
		{name: "lz4", b2b: true, numcodecsAliased: true},
	} {
		names++
		if tc.numcodecsAliased {
			names++
		}
		e, ok := codecRegistry[tc.name]
		if !ok {
			t.Errorf("%s: not registered", tc.name)
			continue
		}
		if (e.arrayToArray != nil) != tc.a2a || (e.arrayToBytes != nil) != tc.a2b || (e.bytesToBytes != nil) != tc.b2b {
			t.Errorf("%s: kinds a2a=%v a2b=%v b2b=%v, want %v %v %v", tc.name,
				e.arrayToArray != nil, e.arrayToBytes != nil, e.bytesToBytes != nil, tc.a2a, tc.a2b, tc.b2b)
		}
		if _, aliased := codecRegistry["numcodecs."+tc.name]; aliased != tc.numcodecsAliased {
			t.Errorf("numcodecs.%s registered: %v, want %v", tc.name, aliased, tc.numcodecsAliased)
		}
	}
	if len(codecRegistry) != names {
		t.Errorf("%d names registered: a codec without a row in this table", len(codecRegistry))
	}
}

// TestCodecPositions checks that a codec in a position its kind cannot take
// is refused with its name, in v2 and v3 metadata alike.
func TestCodecPositions(t *testing.T) {
	i2 := DType{Kind: KindInt, Size: 2}
	shape := []int64{4, 4}
	for _, tc := range []struct {
		v3   []namedConfig
		v2f  []map[string]any
		v2c  map[string]any
		want string
	}{
		{v3: []namedConfig{{Name: "zstd"}, {Name: "bytes"}}, want: `codec "zstd" before the array→bytes codec`},
		{v3: []namedConfig{{Name: "bytes"}, {Name: "delta"}}, want: `codec "delta" after the array→bytes codec`},
		{v3: []namedConfig{{Name: "bytes"}, {Name: "bytes"}}, want: `a second array→bytes codec`},
		{v3: []namedConfig{{Name: "bytes"}, {Name: "lzma"}}, want: `unsupported codec "lzma"`},
		{v2f: []map[string]any{{"id": "zstd"}}, want: `filters[0]: unsupported filter "zstd"`},
		{v2c: map[string]any{"id": "delta"}, want: `compressor: unsupported codec "delta"`},
		{v2c: map[string]any{"id": "lzma"}, want: `compressor: unsupported codec "lzma"`},
	} {
		var err error
		if tc.v3 != nil {
			_, err = buildV3Chain(tc.v3, i2, shape)
		} else {
			_, err = buildV2Chain("C", tc.v2f, tc.v2c, i2, shape)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v%v%v: got %v, want an error containing %q", tc.v3, tc.v2f, tc.v2c, err, tc.want)
		}
	}
}

// TestNumcodecsFiltersBigEndianV3 reads v3 arrays whose numcodecs filters
// sit before a big-endian bytes codec, against the values zarr-python
// wrote. zarr-python 3's own reads of these arrays are wrong (it applies
// the filter to the still byte-swapped elements), so the values written
// are the reference, and the little-endian twins are checked against
// zarr-python's reads as well.
func TestNumcodecsFiltersBigEndianV3(t *testing.T) {
	dir := t.TempDir()
	testenv.RunPython(t, `
import sys, warnings
import numpy as np, zarr, numcodecs.zarr3 as nz
from zarr.codecs import BytesCodec
warnings.filterwarnings("ignore")
d = sys.argv[1]
rng = np.random.default_rng(7)
for endian in ["little", "big"]:
    for name, dt, filters in [("delta", "int16", [nz.Delta(dtype="<i2")]),
                              ("astype", "float64", [nz.AsType(encode_dtype="<f4", decode_dtype="<f8")])]:
        a = zarr.create_array(f"{d}/{name}_{endian}.zarr", shape=(19, 23), chunks=(8, 8), dtype=dt, filters=filters,
                              serializer=BytesCodec(endian=endian), compressors=nz.Zstd())
        v = (rng.integers(-3000, 3000, a.shape) if dt == "int16" else rng.uniform(-1, 1, a.shape).astype("f4")).astype(dt)
        a[...] = v
        np.save(f"{d}/{name}_{endian}.npy", v)
        if endian == "little":
            assert (a[...] == v).all()
`, dir)
	ctx := context.Background()
	for _, name := range []string{"delta_little", "delta_big", "astype_little", "astype_big"} {
		a, err := OpenArray(ctx, dirstore.New(filepath.Join(dir, name+".zarr")), "")
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.ReadAll(ctx)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := coreLoadNPY(t, filepath.Join(dir, name+".npy"))
		sameBytes(t, name, got, want.data, a.DType.Size)
	}
}
