package zarr

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// coreNPY is an .npy file as numpy wrote it.
type coreNPY struct {
	descr string
	shape []int64
	data  []byte
}

var npyDescrRE = regexp.MustCompile(`'descr':\s*'([^']*)'`)
var npyShapeRE = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)

func coreLoadNPY(t testing.TB, path string) coreNPY {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x93NUMPY")) {
		t.Fatalf("%s: not an npy file", path)
	}
	var hlen, start int
	if b[6] == 1 {
		hlen, start = int(binary.LittleEndian.Uint16(b[8:])), 10
	} else {
		hlen, start = int(binary.LittleEndian.Uint32(b[8:])), 12
	}
	header := string(b[start : start+hlen])
	if strings.Contains(header, "'fortran_order': True") {
		t.Fatalf("%s: fortran order", path)
	}
	m := npyDescrRE.FindStringSubmatch(header)
	s := npyShapeRE.FindStringSubmatch(header)
	if m == nil || s == nil {
		t.Fatalf("%s: bad header %q", path, header)
	}
	var shape []int64
	for _, f := range strings.Split(s[1], ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatalf("%s: shape %q", path, s[1])
		}
		shape = append(shape, n)
	}
	return coreNPY{descr: m[1], shape: shape, data: b[start+hlen:]}
}

// pyReadScript reads, with zarr-python, each job of the JSON list in
// argv[1]: {"store", "array", "out", "region": [[start, stop], ...] or
// null} into a little-endian .npy.
const pyReadScript = `
import json, sys, numpy as np, zarr
jobs = json.load(open(sys.argv[1]))
for j in jobs:
    a = zarr.open_array(store=j["store"], path=j["array"], mode="r")
    sel = tuple(slice(s, e) for s, e in j["region"]) if j["region"] is not None else Ellipsis
    v = np.asarray(a[sel])
    if v.dtype.byteorder == ">":
        v = v.astype(v.dtype.newbyteorder("<"))
    np.save(j["out"], np.ascontiguousarray(v))
`

type pyJob struct {
	Store  string     `json:"store"`
	Array  string     `json:"array"`
	Out    string     `json:"out"`
	Region [][2]int64 `json:"region"`
}

// pyRead runs the jobs through zarr-python and returns the arrays read.
func pyRead(t testing.TB, jobs []pyJob) []coreNPY {
	t.Helper()
	dir := t.TempDir()
	for i := range jobs {
		jobs[i].Out = filepath.Join(dir, fmt.Sprintf("%d.npy", i))
	}
	spec, _ := json.Marshal(jobs)
	specPath := filepath.Join(dir, "jobs.json")
	if err := os.WriteFile(specPath, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.RunPython(t, pyReadScript, specPath)
	out := make([]coreNPY, len(jobs))
	for i, j := range jobs {
		out[i] = coreLoadNPY(t, j.Out)
	}
	return out
}

// realStores returns the directories of the real stores.
func realStores(t testing.TB) []string {
	t.Helper()
	root := testenv.RealData(t)
	var stores []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasSuffix(p, ".zarr") {
			stores = append(stores, p)
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return stores
}

// sameBytes compares element bytes, reporting the first differing element.
func sameBytes(t testing.TB, what string, got, want []byte, size int) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d bytes, want %d", what, len(got), len(want))
		return
	}
	if !bytes.Equal(got, want) {
		for i := 0; i < len(got); i += size {
			if !bytes.Equal(got[i:i+size], want[i:i+size]) {
				t.Errorf("%s: element %d is %x, want %x", what, i/size, got[i:i+size], want[i:i+size])
				return
			}
		}
	}
}

func appendUint64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }
func appendUint32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func crc32c(b []byte) uint32                 { return crc32.Checksum(b, castagnoli) }
