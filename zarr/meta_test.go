package zarr

import (
	"context"
	"errors"
	"io/fs"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

func TestOpenGroupRealStores(t *testing.T) {
	ctx := context.Background()
	root := testenv.RealData(t)
	g, err := OpenGroup(ctx, dirstore.New(filepath.Join(root, "ocf-nowcasting-2023", "ukv_nwp.zarr")), "/")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(g.ArrayNames(), ","); got != "UKV,init_time,step,variable,x,y" {
		t.Errorf("arrays %s", got)
	}
	a, _ := g.Array("UKV")
	if got := strings.Join(a.Dims, ","); got != "variable,init_time,step,y,x" {
		t.Errorf("UKV dims %s", got)
	}
	if _, ok := a.Attrs["_ARRAY_DIMENSIONS"]; ok {
		t.Errorf("_ARRAY_DIMENSIONS left in the attributes")
	}
	if a.DType.String() != "<f4" || !math.IsNaN(float64(math.Float32frombits(uint32(a.Fill[0])|uint32(a.Fill[1])<<8|uint32(a.Fill[2])<<16|uint32(a.Fill[3])<<24))) {
		t.Errorf("UKV dtype %s fill %x, want <f4 NaN", a.DType, a.Fill)
	}
	// Bare NaN in JSON and typesize null.
	g, err = OpenGroup(ctx, dirstore.New(filepath.Join(root, "ecmwf-earthkit", "ecmwf_pl_analysis.zarr")), "")
	if err != nil {
		t.Fatal(err)
	}
	if g.Attrs["Conventions"] != "CF-1.6" {
		t.Errorf("group attrs %v", g.Attrs)
	}
}

// TestOpenGroupLayouts opens the v3 consolidated and the v2 listed groups
// that zarr-python writes, with a nested group.
func TestOpenGroupLayouts(t *testing.T) {
	ctx := context.Background()
	dir, _ := writeCoreStores(t)
	for _, name := range []string{"group_v3", "group_v2"} {
		g, err := OpenGroup(ctx, dirstore.New(dir), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := strings.Join(g.ArrayNames(), ","); got != "sub/temp,top" {
			t.Errorf("%s: arrays %s", name, got)
		}
		if g.Attrs["title"] != "core" || g.Groups["sub"] == nil || g.Groups["sub"].Attrs["level"] != 1.0 {
			t.Errorf("%s: attrs %v, sub %+v", name, g.Attrs, g.Groups["sub"])
		}
		a, err := g.Array("sub/temp")
		if err != nil {
			t.Fatal(err)
		}
		if a.Path != name+"/sub/temp" || a.Name != "temp" {
			t.Errorf("%s: path %q name %q", name, a.Path, a.Name)
		}
		if name == "group_v3" && strings.Join(a.Dims, ",") != "y,x" {
			t.Errorf("%s: dims %v", name, a.Dims)
		}
		if _, err := a.ReadAll(ctx); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A v3 group without consolidated metadata is walked.
	sub, err := OpenGroup(ctx, dirstore.New(dir), "group_v3/sub")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sub.ArrayNames(), ","); got != "temp" || sub.Attrs["level"] != 1.0 {
		t.Errorf("group_v3/sub walked: arrays %s attrs %v", got, sub.Attrs)
	}
	if _, err := OpenGroup(ctx, dirstore.New(dir), "nothing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing group: %v, want fs.ErrNotExist", err)
	}
	if _, err := OpenArray(ctx, dirstore.New(dir), "nothing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing array: %v, want fs.ErrNotExist", err)
	}
}

// TestHostileMetadata: bad metadata gives an error naming the store and
// array and the offending thing, never a panic or a giant allocation.
func TestHostileMetadata(t *testing.T) {
	base := `"zarr_format":2,"order":"C","filters":null,"fill_value":0,`
	for _, tc := range []struct{ name, zarray, want string }{
		{"huge shape", `{` + base + `"shape":[9223372036854775807,9223372036854775807],"chunks":[1,1],"dtype":"<f4","compressor":null}`, "overflows"},
		{"zero chunk", `{` + base + `"shape":[10],"chunks":[0],"dtype":"<f4","compressor":null}`, "positive"},
		{"negative chunk", `{` + base + `"shape":[10],"chunks":[-2],"dtype":"<f4","compressor":null}`, "positive"},
		{"negative shape", `{` + base + `"shape":[-10],"chunks":[2],"dtype":"<f4","compressor":null}`, "negative"},
		{"giant chunk", `{` + base + `"shape":[10],"chunks":[4611686018427387904],"dtype":"<f8","compressor":null}`, "limit"},
		{"rank mismatch", `{` + base + `"shape":[10,10],"chunks":[2],"dtype":"<f4","compressor":null}`, "does not match"},
		{"unknown codec", `{` + base + `"shape":[10],"chunks":[2],"dtype":"<f4","compressor":{"id":"lzma"}}`, `"lzma"`},
		{"unknown dtype", `{` + base + `"shape":[10],"chunks":[2],"dtype":"<q4","compressor":null}`, `"<q4"`},
		{"unknown filter", `{` + base + `"shape":[10],"chunks":[2],"dtype":"<f4","compressor":null,"filters":[{"id":"pcodec"}]}`, `"pcodec"`},
		{"bad fill", `{"zarr_format":2,"order":"C","filters":null,"fill_value":"abc","shape":[10],"chunks":[2],"dtype":"<f4","compressor":null}`, "fill_value"},
		{"fill out of range", `{"zarr_format":2,"order":"C","filters":null,"fill_value":300,"shape":[10],"chunks":[2],"dtype":"|u1","compressor":null}`, "range"},
		{"not json", `{"zarr_format":2,`, ".zarray"},
	} {
		_, err := OpenArray(context.Background(), memStore(map[string][]byte{"grp/arr/.zarray": []byte(tc.zarray)}), "grp/arr")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "mem://") || !strings.Contains(err.Error(), "/grp/arr") {
			t.Errorf("%s: error %v, want one naming the store, the array and %q", tc.name, err, tc.want)
		}
	}
}

// TestChunkErrorsNameTheChunk: a corrupt chunk or shard index is an error
// naming store, array and key, not wrong data.
func TestChunkErrorsNameTheChunk(t *testing.T) {
	ctx := context.Background()
	v2 := `{"zarr_format":2,"order":"C","filters":null,"fill_value":0,"shape":[4],"chunks":[4],"dtype":"<i4","compressor":{"id":"zstd","level":1}}`
	v3 := v3Seeds[3]
	for _, tc := range []struct {
		name  string
		store Store
		want  string
	}{
		{"corrupt zstd", memStore(map[string][]byte{"a/.zarray": []byte(v2), "a/0": []byte("not zstd at all")}), `chunk "a/0"`},
		{"short raw chunk", memStore(map[string][]byte{"a/.zarray": []byte(strings.Replace(v2, `{"id":"zstd","level":1}`, "null", 1)), "a/0": []byte{1, 2, 3}}), `chunk "a/0"`},
		{"bad crc", memStore(map[string][]byte{"a/zarr.json": []byte(strings.Replace(v3Seeds[4], `{"name":"blosc","configuration":{"cname":"lz4","clevel":5,"shuffle":"shuffle","typesize":4,"blocksize":0}}`, `{"name":"crc32c"}`, 1)),
			"a/c/0": make([]byte, 28)}), "checksum mismatch"},
		{"short shard index", memStore(map[string][]byte{"a/zarr.json": []byte(v3), "a/c/0": []byte{1, 2}}), `shard "a/c/0"`},
	} {
		a, err := OpenArray(ctx, tc.store, "a")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		dst := make([]byte, a.NumElements()*int64(a.DType.Size))
		err = a.Read(ctx, make([]int64, len(a.Shape)), a.Shape, dst)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "mem://") {
			t.Errorf("%s: error %v, want one naming the store and %s", tc.name, err, tc.want)
		}
	}
}

func TestParseDType(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kind Kind
		size int
		out  string
	}{
		{"<f4", KindFloat, 4, "<f4"}, {">i2", KindInt, 2, ">i2"}, {"|b1", KindBool, 1, "|b1"}, {"|u1", KindUint, 1, "|u1"},
		{"<M8[ns]", KindDatetime, 8, "<M8[ns]"}, {"<m8[10s]", KindTimedelta, 8, "<m8[10s]"}, {"<M8", KindDatetime, 8, "<M8"},
		{"<U6", KindUnicode, 24, "<U6"}, {"|S10", KindBytes, 10, "|S10"}, {"<c16", KindComplex, 16, "<c16"}, {"<f2", KindFloat, 2, "<f2"},
	} {
		d, err := ParseDType(tc.in)
		if err != nil || d.Kind != tc.kind || d.Size != tc.size || d.String() != tc.out {
			t.Errorf("%s: %+v %v, want kind %s size %d string %s", tc.in, d, err, tc.kind, tc.size, tc.out)
		}
	}
	for _, bad := range []string{"", "f4", "<f3", "<i16", "<M8[eons]", "<U0", "<U99999999", "<x4", "<M4"} {
		if _, err := ParseDType(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	b := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	DType{Kind: KindComplex, Size: 8, BigEndian: true}.ToLittleEndian(b)
	if string(b) != string([]byte{4, 3, 2, 1, 8, 7, 6, 5}) {
		t.Errorf("complex swap: %v", b)
	}
}

func TestSanitizeJSON(t *testing.T) {
	for in, want := range map[string]string{
		`{"a": NaN, "b": -Infinity, "c": [Infinity]}`: `{"a": "NaN", "b": "-Infinity", "c": ["Infinity"]}`,
		`{"s": "NaN inside \" NaN", "x": NaN}`:        `{"s": "NaN inside \" NaN", "x": "NaN"}`,
		`{"a": 1}`:                                    `{"a": 1}`,
	} {
		if got := string(sanitizeJSON([]byte(in))); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

func TestParseFill(t *testing.T) {
	f4 := DType{Kind: KindFloat, Size: 4}
	for _, tc := range []struct {
		raw  string
		dt   DType
		want []byte
	}{
		{`null`, f4, []byte{0, 0, 0, 0}},
		{`"NaN"`, f4, []byte{0, 0, 0xc0, 0x7f}},
		{`NaN`, f4, []byte{0, 0, 0xc0, 0x7f}},
		{`"-Infinity"`, f4, []byte{0, 0, 0x80, 0xff}},
		{`"0x7fc00001"`, f4, []byte{1, 0, 0xc0, 0x7f}},
		{`1.5`, DType{Kind: KindFloat, Size: 2}, []byte{0, 0x3e}},
		{`-32767`, DType{Kind: KindInt, Size: 2}, []byte{1, 0x80}},
		{`18446744073709551615`, DType{Kind: KindUint, Size: 8}, []byte{255, 255, 255, 255, 255, 255, 255, 255}},
		{`-9223372036854775808`, DType{Kind: KindDatetime, Size: 8, Unit: "ns"}, []byte{0, 0, 0, 0, 0, 0, 0, 0x80}},
		{`"NaT"`, DType{Kind: KindDatetime, Size: 8, Unit: "ns"}, []byte{0, 0, 0, 0, 0, 0, 0, 0x80}},
		{`true`, DType{Kind: KindBool, Size: 1}, []byte{1}},
		{`[1.0, "NaN"]`, DType{Kind: KindComplex, Size: 8}, []byte{0, 0, 0x80, 0x3f, 0, 0, 0xc0, 0x7f}},
		{`"ab"`, DType{Kind: KindUnicode, Size: 12}, []byte{'a', 0, 0, 0, 'b', 0, 0, 0, 0, 0, 0, 0}},
		{`"YWI="`, DType{Kind: KindBytes, Size: 3}, []byte{'a', 'b', 0}},
	} {
		got, err := parseFill([]byte(tc.raw), tc.dt, 2)
		if err != nil || string(got) != string(tc.want) {
			t.Errorf("%s as %s: %x (%v), want %x", tc.raw, tc.dt, got, err, tc.want)
		}
	}
}

func TestReadCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	v2 := `{"zarr_format":2,"order":"C","filters":null,"fill_value":0,"shape":[4],"chunks":[2],"dtype":"<i4","compressor":null}`
	a, err := OpenArray(context.Background(), memStore(map[string][]byte{"a/.zarray": []byte(v2), "a/0": make([]byte, 8), "a/1": make([]byte, 8)}), "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Read(ctx, []int64{0}, []int64{4}, make([]byte, 16)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled in-memory read: %v, want context.Canceled", err)
	}
	dir := t.TempDir()
	a.Store = dirstore.New(dir)
	if err := a.Read(ctx, []int64{0}, []int64{4}, make([]byte, 16)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled read: %v, want context.Canceled", err)
	}
}
