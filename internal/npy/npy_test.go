package npy

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

type npyCase struct {
	name  string
	dtype string
	shape []int64
	data  []byte
}

func npyCases() []npyCase {
	f32 := make([]byte, 0, 4*12)
	for i := range 12 {
		f32 = binary.LittleEndian.AppendUint32(f32, math.Float32bits(float32(i)*1.5-3))
	}
	f32 = binary.LittleEndian.AppendUint32(f32[:44], math.Float32bits(float32(math.NaN())))
	times := make([]byte, 0, 3*8)
	for _, ns := range []int64{1585699200000000000, 1585710000000000000, math.MinInt64} {
		times = binary.LittleEndian.AppendUint64(times, uint64(ns))
	}
	var labels []byte
	for _, s := range []string{"IR_016", "WV_073", "t2m"} {
		for i := range 6 {
			r := rune(0)
			if i < len(s) {
				r = rune(s[i])
			}
			labels = binary.LittleEndian.AppendUint32(labels, uint32(r))
		}
	}
	long := make([]byte, 2*70000)
	for i := range long {
		long[i] = byte(i * 7)
	}
	shape40 := make([]int64, 32)
	for i := range shape40 {
		shape40[i] = 1
	}
	shape40[0] = 12345
	bigDims := make([]byte, 4*12345)
	return []npyCase{
		{"f4_3x4", "<f4", []int64{3, 4}, f32},
		{"f4_1d", "<f4", []int64{12}, f32},
		{"f4_scalar", "<f4", []int64{}, f32[:4]},
		{"empty", "<f8", []int64{0, 5}, nil},
		{"bool", "|b1", []int64{2, 2}, []byte{1, 0, 0, 1}},
		{"i1", "|i1", []int64{4}, []byte{0x80, 0xff, 0, 0x7f}},
		{"u2_big_endian", ">u2", []int64{2}, []byte{1, 2, 3, 4}},
		{"datetime_ns", "<M8[ns]", []int64{3}, times},
		{"timedelta_ns", "<m8[ns]", []int64{3}, times},
		{"unicode", "<U6", []int64{3}, labels},
		{"i2_long_1d", "<i2", []int64{70000}, long},
		{"many_dims", "<f4", shape40, bigDims},
	}
}

// TestWriteMatchesNumpy checks that our files are byte-identical to
// numpy.save's and load back to the same values.
func TestWriteMatchesNumpy(t *testing.T) {
	dir := t.TempDir()
	type manifest struct {
		Name  string  `json:"name"`
		DType string  `json:"dtype"`
		Shape []int64 `json:"shape"`
	}
	var ms []manifest
	for _, c := range npyCases() {
		var buf bytes.Buffer
		if err := Write(&buf, c.dtype, c.shape, c.data); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, c.name+".npy"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, c.name+".raw"), c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, manifest{c.name, c.dtype, c.shape})
	}
	js, _ := json.Marshal(ms)
	out := testenv.RunPython(t, `
import io, json, sys, numpy as np
d = sys.argv[1]
for m in json.loads(sys.argv[2]):
    p = f"{d}/{m['name']}"
    raw = open(p + ".raw", "rb").read()
    want = np.frombuffer(raw, dtype=m["dtype"]).reshape(m["shape"])
    got = np.load(p + ".npy")
    assert got.dtype == want.dtype, (m, got.dtype)
    assert got.shape == want.shape, (m, got.shape)
    assert got.tobytes() == raw, m
    ref = io.BytesIO(); np.save(ref, want)
    assert ref.getvalue() == open(p + ".npy", "rb").read(), ("bytes differ from numpy.save", m)
    print(m["name"])
`, dir, string(js))
	if n := strings.Count(string(out), "\n"); n != len(ms) {
		t.Fatalf("python checked %d arrays, want %d:\n%s", n, len(ms), out)
	}
}

func TestNPZLoadsInNumpy(t *testing.T) {
	var buf bytes.Buffer
	z := NewNPZ(&buf)
	for _, c := range npyCases() {
		if err := z.Add(c.name, c.dtype, c.shape, c.data); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	if err := z.Add("bool", "|b1", []int64{1}, []byte{1}); err == nil {
		t.Fatal("duplicate member name accepted")
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "x.npz")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range npyCases() {
		names = append(names, c.name)
		if err := os.WriteFile(filepath.Join(dir, c.name+".raw"), c.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := testenv.RunPython(t, `
import sys, numpy as np
d, names = sys.argv[1], sys.argv[2].split(",")
z = np.load(d + "/x.npz")
assert sorted(z.files) == sorted(names), z.files
for n in names:
    assert z[n].tobytes() == open(f"{d}/{n}.raw", "rb").read(), n
print(len(names))
`, dir, strings.Join(names, ","))
	if strings.TrimSpace(string(out)) != "12" {
		t.Fatalf("python checked %s members", out)
	}
}

func TestWriteRejectsBadInput(t *testing.T) {
	for _, c := range []npyCase{
		{"short data", "<f4", []int64{3}, make([]byte, 8)},
		{"negative dim", "<f4", []int64{-1}, nil},
		{"unknown dtype", "<q9", []int64{1}, make([]byte, 9)},
		{"no byte order", "f4", []int64{1}, make([]byte, 4)},
		{"bad datetime", "<M8ns", []int64{1}, make([]byte, 8)},
		{"quote in unit", "<M8[n's]", []int64{1}, make([]byte, 8)},
		{"overflow", "<f8", []int64{1 << 40, 1 << 40}, nil},
	} {
		if err := Write(&bytes.Buffer{}, c.dtype, c.shape, c.data); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

// FuzzNPYHeader checks that any dtype string and shape give either an
// error or a well-formed, 64-byte-aligned header that names them.
func FuzzNPYHeader(f *testing.F) {
	for _, c := range npyCases() {
		d0, d1 := int64(-1), int64(-1)
		if len(c.shape) > 0 {
			d0 = c.shape[0]
		}
		if len(c.shape) > 1 {
			d1 = c.shape[1]
		}
		f.Add(c.dtype, d0, d1, int64(len(c.data)))
	}
	f.Add("<U1000000000000", int64(1), int64(-1), int64(4))
	f.Add("|V0", int64(0), int64(-1), int64(0))
	f.Fuzz(func(t *testing.T, dtype string, d0, d1, dataLen int64) {
		var shape []int64
		for _, d := range []int64{d0, d1} {
			if d >= 0 {
				shape = append(shape, d)
			}
		}
		h, err := npyHeader(dtype, shape, dataLen)
		if err != nil {
			return
		}
		if len(h)%npyAlign != 0 || !bytes.HasPrefix(h, []byte("\x93NUMPY")) || h[len(h)-1] != '\n' {
			t.Fatalf("malformed header %q", h)
		}
		if !bytes.Contains(h, []byte("'descr': '"+dtype+"'")) || strings.ContainsAny(dtype, "'\\\n") {
			t.Fatalf("header %q does not name dtype %q safely", h, dtype)
		}
	})
}
