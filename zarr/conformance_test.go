package zarr

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// matrixEntry is one array of the conformance matrix, as
// testdata/make_matrix.py lists it in manifest.json.
type matrixEntry struct {
	Store   string  `json:"store"`
	Array   string  `json:"array"`
	DType   string  `json:"dtype"`
	Shape   []int64 `json:"shape"`
	Regions []struct {
		Start []int64 `json:"start"`
		Shape []int64 `json:"shape"`
		File  string  `json:"file"`
	} `json:"regions"`
}

// TestConformanceMatrix has zarr-python 3 and numcodecs write a few hundred
// small arrays (dtypes x codecs x orders x edge and missing chunks x key
// encodings), then reads each whole and at seeded random regions, one at a
// time and batched, and compares with zarr-python's reads.
func TestConformanceMatrix(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(testenv.ModuleRoot(t), "zarr", "testdata", "make_matrix.py")
	out := testenv.RunPython(t, `
import runpy, sys
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
`, script, dir, "20260401")
	var entries []matrixEntry
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &entries); err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(out)); strconv.Itoa(len(entries)) != want || len(entries) < 200 {
		t.Fatalf("manifest lists %d arrays, the generator reported %s", len(entries), want)
	}
	ctx := context.Background()
	groups := map[string]*Group{}
	for _, e := range entries {
		if groups[e.Store] != nil {
			continue
		}
		g, err := OpenGroup(ctx, dirstore.New(filepath.Join(dir, e.Store)), "")
		if err != nil {
			t.Fatalf("open consolidated %s: %v", e.Store, err)
		}
		groups[e.Store] = g
	}
	for _, e := range entries {
		t.Run(strings.TrimSuffix(e.Store, ".zarr")+"/"+e.Array, func(t *testing.T) {
			// Opened both ways: from the consolidated group and from the
			// array's own metadata.
			fromGroup, err := groups[e.Store].Array(e.Array)
			if err != nil {
				t.Fatalf("consolidated: %v", err)
			}
			direct, err := OpenArray(ctx, dirstore.New(filepath.Join(dir, e.Store)), e.Array)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			for _, a := range []*Array{fromGroup, direct} {
				if got := a.DType.LittleEndian().String(); got != e.DType {
					t.Fatalf("dtype %s, zarr-python reads %s", got, e.DType)
				}
				if fmt.Sprint(a.Shape) != fmt.Sprint(e.Shape) {
					t.Fatalf("shape %v, zarr-python reads %v", a.Shape, e.Shape)
				}
			}
			regions := make([]Region, len(e.Regions))
			dsts := make([][]byte, len(e.Regions))
			wants := make([][]byte, len(e.Regions))
			for i, r := range e.Regions {
				wantDType, wantShape, want := readTestNPY(t, filepath.Join(dir, r.File))
				if wantDType != e.DType || fmt.Sprint(wantShape) != fmt.Sprint(r.Shape) {
					t.Fatalf("%s holds %s %v, want %s %v", r.File, wantDType, wantShape, e.DType, r.Shape)
				}
				got := make([]byte, len(want))
				if err := direct.Read(ctx, r.Start, r.Shape, got); err != nil {
					t.Fatalf("read %v+%v: %v", r.Start, r.Shape, err)
				}
				if msg := compareElements(fromGroup.DType, got, want); msg != "" {
					t.Errorf("read %v+%v: %s", r.Start, r.Shape, msg)
				}
				regions[i] = Region{Start: r.Start, Shape: r.Shape}
				dsts[i] = make([]byte, len(want))
				wants[i] = want
			}
			if _, err := fromGroup.ReadRegions(ctx, regions, dsts); err != nil {
				t.Fatalf("batched read: %v", err)
			}
			for i := range dsts {
				if msg := compareElements(fromGroup.DType, dsts[i], wants[i]); msg != "" {
					t.Errorf("batched read %v+%v: %s", regions[i].Start, regions[i].Shape, msg)
				}
			}
		})
	}
}

// compareElements compares little-endian elements of dt exactly, except
// that any NaN equals any NaN for floats (NaN payloads are not data).
func compareElements(dt DType, got, want []byte) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d bytes, want %d", len(got), len(want))
	}
	if bytes.Equal(got, want) {
		return ""
	}
	size := dt.Size
	bad, first := 0, -1
	for i := 0; i+size <= len(got); i += size {
		g, w := got[i:i+size], want[i:i+size]
		if bytes.Equal(g, w) || dt.Kind == KindFloat && isNaNBits(g) && isNaNBits(w) {
			continue
		}
		if first < 0 {
			first = i / size
		}
		bad++
	}
	if bad == 0 {
		return ""
	}
	return fmt.Sprintf("%d of %d elements differ; first at %d: got % x, want % x", bad, len(got)/size, first,
		got[first*size:(first+1)*size], want[first*size:(first+1)*size])
}

func isNaNBits(b []byte) bool {
	switch len(b) {
	case 2:
		h := binary.LittleEndian.Uint16(b)
		return h&0x7c00 == 0x7c00 && h&0x03ff != 0
	case 4:
		return math.IsNaN(float64(math.Float32frombits(binary.LittleEndian.Uint32(b))))
	case 8:
		return math.IsNaN(math.Float64frombits(binary.LittleEndian.Uint64(b)))
	}
	return false
}

var npyHeaderRE = regexp.MustCompile(`'descr': '([^']+)', 'fortran_order': False, 'shape': \(([0-9, ]*)\)`)

// readTestNPY reads an .npy that numpy.save wrote: version 1 header, C
// order. It is a test helper for files we generate, not a general parser.
func readTestNPY(t testing.TB, path string) (string, []int64, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" || b[6] != 1 {
		t.Fatalf("%s: not an NPY 1.0 file", path)
	}
	end := 10 + int(binary.LittleEndian.Uint16(b[8:]))
	m := npyHeaderRE.FindStringSubmatch(string(b[10:min(end, len(b))]))
	if m == nil {
		t.Fatalf("%s: unexpected header %q", path, b[10:min(end, len(b))])
	}
	var shape []int64
	for _, f := range strings.Split(m[2], ",") {
		if f = strings.TrimSpace(f); f != "" {
			n, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				t.Fatalf("%s: shape %q", path, m[2])
			}
			shape = append(shape, n)
		}
	}
	return m[1], shape, b[end:]
}

func TestCompareElements(t *testing.T) {
	f4 := DType{Kind: KindFloat, Size: 4}
	nanA, nanB := []byte{0, 0, 0xc0, 0x7f}, []byte{1, 0, 0xc0, 0xff}
	one := []byte{0, 0, 0x80, 0x3f}
	i4 := DType{Kind: KindInt, Size: 4}
	for _, c := range []struct {
		dt        DType
		got, want []byte
		same      bool
	}{
		{f4, one, one, true},
		{f4, nanA, nanB, true},
		{f4, append(one, nanA...), append(one, one...), false},
		{i4, nanA, nanB, false},
		{f4, one, append(one, one...), false},
	} {
		if msg := compareElements(c.dt, c.got, c.want); (msg == "") != c.same {
			t.Errorf("compareElements(%s, % x, % x) = %q, want same=%v", c.dt, c.got, c.want, msg, c.same)
		}
	}
}
