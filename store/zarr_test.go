package store

import (
	"bytes"
	"io"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// TestS3MatchesLocal uploads every real store to MinIO and reads every
// array through zarr over S3 (configured by AWS_* variables only) and over
// the local io_uring store: whole arrays and a random region of each must
// be byte-identical.
func TestS3MatchesLocal(t *testing.T) {
	real := testenv.RealData(t)
	m := testenv.StartMinIO(t)
	m.Upload(t, "real", real, "")
	t.Setenv("AWS_ENDPOINT_URL", m.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", m.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", m.SecretKey)
	t.Setenv("AWS_REGION", m.Region)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))

	var roots []string
	filepath.WalkDir(real, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasSuffix(path, ".zarr") {
			rel, _ := filepath.Rel(real, path)
			roots = append(roots, filepath.ToSlash(rel))
			return fs.SkipDir
		}
		return err
	})
	if len(roots) < 7 {
		t.Fatalf("found only %d stores in %s: %v", len(roots), real, roots)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	arrays := 0
	for _, rel := range roots {
		local := openGroup(t, filepath.Join(real, filepath.FromSlash(rel)))
		remote := openGroup(t, "s3://real/"+rel)
		names := local.ArrayNames()
		if strings.Join(names, ",") != strings.Join(remote.ArrayNames(), ",") {
			t.Fatalf("%s: arrays differ: local %v, S3 %v", rel, names, remote.ArrayNames())
		}
		for _, name := range names {
			la, err := local.Array(name)
			if err != nil {
				t.Fatal(err)
			}
			ra, err := remote.Array(name)
			if err != nil {
				t.Fatal(err)
			}
			// The largest arrays (bz2 satellite images) take many seconds
			// to decode whole; random regions of them cover every path,
			// and cloud's tests compare every stored byte already.
			if la.NumElements()*int64(la.DType.Size) <= 16<<20 {
				want, err := la.ReadAll(t.Context())
				if err != nil {
					t.Fatalf("%s/%s local: %v", rel, name, err)
				}
				got, err := ra.ReadAll(t.Context())
				if err != nil {
					t.Fatalf("%s/%s over S3: %v", rel, name, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s/%s: S3 and local reads differ", rel, name)
				}
			}
			for range 2 {
				start, shape := randomRegion(rng, la.Shape)
				n := int64(la.DType.Size)
				for _, s := range shape {
					n *= s
				}
				wantRegion, gotRegion := make([]byte, n), make([]byte, n)
				if err := la.Read(t.Context(), start, shape, wantRegion); err != nil {
					t.Fatalf("%s/%s local region %v+%v: %v", rel, name, start, shape, err)
				}
				if err := ra.Read(t.Context(), start, shape, gotRegion); err != nil {
					t.Fatalf("%s/%s S3 region %v+%v: %v", rel, name, start, shape, err)
				}
				if !bytes.Equal(gotRegion, wantRegion) {
					t.Fatalf("%s/%s region %v+%v: S3 and local reads differ", rel, name, start, shape)
				}
			}
			arrays++
		}
	}
	t.Logf("%d arrays in %d stores read identically", arrays, len(roots))
}

func openGroup(t *testing.T, url string) *zarr.Group {
	t.Helper()
	s, err := Open(t.Context(), url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := s.(io.Closer); ok {
		t.Cleanup(func() { c.Close() })
	}
	g, err := zarr.OpenGroup(t.Context(), s, "")
	if err != nil {
		t.Fatalf("OpenGroup %s: %v", url, err)
	}
	return g
}

func randomRegion(rng *rand.Rand, shape []int64) (start, size []int64) {
	for _, dim := range shape {
		if dim == 0 {
			start, size = append(start, 0), append(size, 0)
			continue
		}
		s := rng.Int64N(dim)
		start = append(start, s)
		size = append(size, 1+rng.Int64N(min(dim-s, 200)))
	}
	return start, size
}
