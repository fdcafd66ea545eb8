package codecs

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// crossCase is one buffer compressed by the reference C libraries through
// numcodecs, with its decoded bytes.
type crossCase struct {
	Name  string `json:"name"`
	Codec string `json:"codec"`
	Enc   string `json:"enc"`
	Raw   string `json:"raw"`
}

// numcodecsMatrix compresses a matrix of inputs with numcodecs. Blosc runs
// single-threaded so that its output does not depend on the machine.
const numcodecsMatrix = `
import json, os, sys
import numpy as np
import numcodecs
from numcodecs import blosc
blosc.set_nthreads(1)
blosc.use_threads = False
out = sys.argv[1]
rng = np.random.default_rng(42)

def field(nbytes):
    n = (nbytes + 3) // 4
    e = np.arange(n)
    x, y = e % 548, e // 548
    v = 280 + 10*np.sin(x/40)*np.cos(y/25) + rng.normal(0, 0.3, n)
    return v.astype('<f4').tobytes()[:nbytes]

cases = []
def add(name, codec, enc, raw):
    i = len(cases)
    ep, rp = os.path.join(out, f'{i}.enc'), os.path.join(out, f'{i}.raw')
    open(ep, 'wb').write(bytes(enc)); open(rp, 'wb').write(raw)
    cases.append(dict(name=name, codec=codec, enc=ep, raw=rp))

dtypes = {1: 'u1', 2: '<i2', 3: 'V3', 4: '<f4', 8: '<f8', 16: 'V16'}
for cname in blosc.list_compressors():
    for shuffle in (0, 1, 2):
        for ts, dt in dtypes.items():
            for bs in (0, 256, 1000):
                for nel in (1, 333, 20011):
                    raw = field(nel * ts)
                    arr = np.frombuffer(raw, dtype=dt)
                    enc = numcodecs.Blosc(cname, 5, shuffle, bs).encode(arr)
                    add(f'blosc/{cname}/shuffle{shuffle}/ts{ts}/bs{bs}/n{nel}', 'blosc', enc, raw)
# Default block sizes on realistic chunk sizes, every level, plain copies.
for cname in blosc.list_compressors():
    for clevel in (0, 1, 5, 9):
        raw = field(1 << 20)
        enc = numcodecs.Blosc(cname, clevel, 1, 0).encode(np.frombuffer(raw, '<f4'))
        add(f'blosc/{cname}/clevel{clevel}/1MiB', 'blosc', enc, raw)
raw = bytes(rng.integers(0, 256, 70000, dtype=np.uint8))
add('blosc/lz4/incompressible', 'blosc', numcodecs.Blosc('lz4', 5, 1, 0).encode(np.frombuffer(raw, 'u1')), raw)
add('blosc/empty', 'blosc', numcodecs.Blosc('lz4', 5, 1, 0).encode(b''), b'')

others = {
    'zstd': [numcodecs.Zstd(level=l) for l in (-1, 1, 3, 19)],
    'gzip': [numcodecs.GZip(level=l) for l in (1, 9)],
    'zlib': [numcodecs.Zlib(level=l) for l in (1, 9)],
    'bz2': [numcodecs.BZ2(level=l) for l in (1, 9)],
    'lz4': [numcodecs.LZ4(acceleration=a) for a in (1, 10)],
}
for codec, variants in others.items():
    for i, c in enumerate(variants):
        for n in (0, 1, 1001, 200003):
            raw = field(n)
            add(f'{codec}/{i}/n{n}', codec, c.encode(raw), raw)
json.dump(cases, sys.stdout)
`

// decoders holds one of each Go decoder, shared across cases as the
// loader shares them across chunks.
type decoders struct {
	blosc *Blosc
	zstd  *Zstd
	gzip  *Gzip
	zlib  *Zlib
	bz2   *Bz2
}

func newDecoders() decoders {
	return decoders{NewBlosc(), NewZstd(), NewGzip(), NewZlib(), NewBz2()}
}

// decodeByName decodes with the codec numcodecs calls name.
func decodeByName(t testing.TB, d decoders, name string, dst, src []byte, size int) ([]byte, error) {
	t.Helper()
	switch name {
	case "blosc":
		return d.blosc.Decode(dst, src, size)
	case "zstd":
		return d.zstd.Decode(dst, src, size)
	case "gzip":
		return d.gzip.Decode(dst, src, size)
	case "zlib":
		return d.zlib.Decode(dst, src, size)
	case "bz2":
		return d.bz2.Decode(dst, src, size)
	case "lz4":
		return LZ4{}.Decode(dst, src, size)
	}
	t.Fatalf("no Go decoder for numcodecs codec %q", name)
	return nil, nil
}

func loadCases(t *testing.T, manifest []byte) []crossCase {
	t.Helper()
	var cases []crossCase
	if err := json.Unmarshal(manifest, &cases); err != nil {
		t.Fatalf("reading the Python manifest: %v", err)
	}
	if len(cases) == 0 {
		t.Fatal("the Python script produced no cases")
	}
	return cases
}

func readCase(t *testing.T, c crossCase) (enc, raw []byte) {
	t.Helper()
	enc, err := os.ReadFile(c.Enc)
	if err != nil {
		t.Fatal(err)
	}
	raw, err = os.ReadFile(c.Raw)
	if err != nil {
		t.Fatal(err)
	}
	return enc, raw
}

func TestDecodeMatchesNumcodecs(t *testing.T) {
	dir := t.TempDir()
	cases := loadCases(t, testenv.RunPython(t, numcodecsMatrix, dir))
	dec := newDecoders()
	rng := rand.New(rand.NewPCG(1, 2))
	var dst []byte
	for _, c := range cases {
		enc, raw := readCase(t, c)
		got, err := decodeByName(t, dec, c.Codec, dst, enc, len(raw))
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		if !bytes.Equal(got, raw) {
			t.Errorf("%s: decoded bytes differ from numcodecs' input", c.Name)
			continue
		}
		dst = got
		got, err = decodeByName(t, dec, c.Codec, nil, enc, -len(raw)-1)
		if err != nil || !bytes.Equal(got, raw) {
			t.Errorf("%s: decode under a limit: %v", c.Name, err)
		}
		if c.Codec == "blosc" && len(raw) > 0 {
			checkRanges(t, dec.blosc, c.Name, enc, raw, rng)
		}
	}
}

// checkRanges checks DecodeRange against the full decode on random ranges.
func checkRanges(t *testing.T, b *Blosc, name string, enc, raw []byte, rng *rand.Rand) {
	t.Helper()
	_, _, blocksize, err := BloscInfo(enc)
	if err != nil {
		t.Fatalf("%s: BloscInfo: %v", name, err)
	}
	dst := make([]byte, len(raw))
	for range 4 {
		off := rng.IntN(len(raw))
		n := rng.IntN(len(raw) - off + 1)
		clear(dst)
		decoded, err := b.DecodeRange(dst, enc, off, n)
		if err != nil {
			t.Fatalf("%s: DecodeRange(%d, %d): %v", name, off, n, err)
		}
		if !bytes.Equal(dst[off:off+n], raw[off:off+n]) {
			t.Fatalf("%s: DecodeRange(%d, %d) differs from the full decode", name, off, n)
		}
		if decoded < n || decoded > n+2*blocksize {
			t.Fatalf("%s: DecodeRange(%d, %d) decoded %d bytes with blocksize %d", name, off, n, decoded, blocksize)
		}
	}
}

// realChunks lists chunk files of the real stores with their numcodecs
// compressor, and decodes each with numcodecs.
const realChunks = `
import json, os, sys
import numcodecs
root, out = sys.argv[1], sys.argv[2]
cases = []
for dirpath, dirnames, filenames in sorted(os.walk(root)):
    dirnames.sort()
    if '.zarray' not in filenames:
        continue
    meta = json.load(open(os.path.join(dirpath, '.zarray')))
    comp = meta.get('compressor')
    if not comp:
        continue
    chunks = sorted(f for f in filenames if not f.startswith('.'))
    for f in chunks[:3]:
        enc = open(os.path.join(dirpath, f), 'rb').read()
        raw = bytes(numcodecs.get_codec(comp).decode(enc))
        rp = os.path.join(out, f'{len(cases)}.raw')
        open(rp, 'wb').write(raw)
        cases.append(dict(name=os.path.relpath(os.path.join(dirpath, f), root),
                          codec=comp['id'], enc=os.path.join(dirpath, f), raw=rp))
json.dump(cases, sys.stdout)
`

func TestDecodeRealChunks(t *testing.T) {
	root := testenv.RealData(t)
	cases := loadCases(t, testenv.RunPython(t, realChunks, root, t.TempDir()))
	dec := newDecoders()
	seen := map[string]int{}
	for _, c := range cases {
		enc, raw := readCase(t, c)
		got, err := decodeByName(t, dec, c.Codec, nil, enc, len(raw))
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		if !bytes.Equal(got, raw) {
			t.Errorf("%s: differs from numcodecs' decode", c.Name)
		}
		seen[c.Codec]++
	}
	for _, codec := range []string{"blosc", "bz2"} {
		if seen[codec] == 0 {
			t.Errorf("no real %s chunk was checked", codec)
		}
	}
	t.Logf("real chunks checked per codec: %v", seen)
}
