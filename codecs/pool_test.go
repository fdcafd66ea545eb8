package codecs

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// TestPooledDecodersShareSafely decodes a mix of sizes and corrupt inputs
// from several goroutines through one codec each, as the loader does, and
// checks every result against a decode by a fresh codec: reused decoder
// state must neither leak between calls nor be poisoned by a failure.
func TestPooledDecodersShareSafely(t *testing.T) {
	realBz2, err := os.ReadFile(filepath.Join(testenv.RealData(t), "ocf-nowcasting-2023", "seviri_nonhrv.zarr", "data", "0.0.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := func(b []byte, at int) []byte {
		c := bytes.Clone(b)
		c[at] ^= 0x40
		return c
	}
	type decodeFunc = func(dst, src []byte, size int) ([]byte, error)
	flateInputs := func(enc func(dst, src []byte, level int) ([]byte, error)) [][]byte {
		var ins [][]byte
		for _, n := range []int{0, 17, 70000, 1 << 20} {
			b, err := enc(nil, weatherField(n, uint64(n)), 1+n%9)
			if err != nil {
				t.Fatal(err)
			}
			ins = append(ins, b)
			if len(b) > 40 {
				ins = append(ins, corrupt(b, len(b)/2), b[:len(b)-5])
			}
		}
		return ins
	}
	gz, zl, bz := NewGzip(), NewZlib(), NewBz2()
	for _, tc := range []struct {
		name   string
		shared decodeFunc
		fresh  func() decodeFunc
		inputs [][]byte
	}{
		{"gzip", gz.Decode, func() decodeFunc { return NewGzip().Decode }, flateInputs(gz.Encode)},
		{"zlib", zl.Decode, func() decodeFunc { return NewZlib().Decode }, flateInputs(zl.Encode)},
		{"bz2", bz.Decode, func() decodeFunc { return NewBz2().Decode }, [][]byte{
			realBz2, []byte(bz2Hello), corrupt(realBz2, len(realBz2)/2), realBz2[:len(realBz2)-9], []byte(bz2Hello + bz2Hello),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				out []byte
				err error
			}
			want := make([]result, len(tc.inputs))
			failures := 0
			for i, in := range tc.inputs {
				out, err := tc.fresh()(nil, in, -8<<20)
				want[i] = result{out, err}
				if err != nil {
					failures++
				}
			}
			if failures == 0 || failures == len(tc.inputs) {
				t.Fatalf("%d of %d inputs fail: the mix must hold both kinds", failures, len(tc.inputs))
			}
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					// Each goroutine walks the inputs from its own offset,
					// so that the pooled states see them in varied orders.
					for k := range 2 * len(tc.inputs) {
						i := (g + k) % len(tc.inputs)
						out, err := tc.shared(make([]byte, 0, 16), tc.inputs[i], -8<<20)
						if (err != nil) != (want[i].err != nil) || !bytes.Equal(out, want[i].out) {
							t.Errorf("input %d in goroutine %d: got %d bytes, %v; a fresh decoder gives %d bytes, %v",
								i, g, len(out), err, len(want[i].out), want[i].err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}
