package store

import (
	"bytes"

	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/cloud"
	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/store/mem"
	"github.com/lsio-loader/lsio-loader/store/storetest"
	"github.com/lsio-loader/lsio-loader/uring"
	"github.com/lsio-loader/lsio-loader/zarr"
)

func TestOpen(t *testing.T) {
	root := filepath.Join(testenv.RealData(t), "ecmwf-earthkit", "ecmwf_pl_forecast.zarr")
	want, err := os.ReadFile(filepath.Join(root, ".zmetadata"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(root)))
	defer srv.Close()
	m := testenv.StartMinIO(t)
	m.Upload(t, "forecast", root, "a/b")
	t.Setenv("AWS_ENDPOINT_URL", m.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", m.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", m.SecretKey)
	t.Setenv("AWS_REGION", m.Region)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))

	for _, tc := range []struct {
		url     string
		check   func(Store) bool
		wantErr string
	}{
		{url: root, check: isType[*uring.Store]},
		{url: "file://" + root, check: isType[*uring.Store]},
		{url: "s3://forecast/a/b", check: isType[*cloud.S3Store]},
		{url: "S3://forecast/a/b/", check: isType[*cloud.S3Store]},
		{url: srv.URL, check: isType[*cloud.HTTPStore]},
		{url: "gs://bucket/x", wantErr: "unknown scheme"},
		{url: "file://host/x", wantErr: "not host"},
		{url: filepath.Join(root, "missing"), wantErr: "no such file"},
		{url: "", wantErr: "empty path"},
		{url: "s3://", wantErr: "no bucket"},
	} {
		s, err := Open(t.Context(), tc.url, Options{})
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Open(%q): got %v, want an error containing %q", tc.url, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Open(%q): %v", tc.url, err)
		}
		if !tc.check(s) {
			t.Errorf("Open(%q) gave a %T", tc.url, s)
		}
		var got []byte
		s.ReadBatch(t.Context(), []zarr.ByteRange{{Key: ".zmetadata", Length: -1}}, func(_ int, data []byte, err error) {
			if err != nil {
				t.Errorf("Open(%q): read .zmetadata: %v", tc.url, err)
			}
			got = bytes.Clone(data)
			s.Release(data)
		})
		if !bytes.Equal(got, want) {
			t.Errorf("Open(%q): .zmetadata differs from the local file", tc.url)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Open(%q): Close: %v", tc.url, err)
		}
	}
}

func isType[T zarr.Store](s Store) bool {
	_, ok := s.(T)
	return ok
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"/data/ukv.zarr", "file:///data/ukv.zarr", "file://localhost/x", "file://host/x",
		"s3://bucket/a/b", "S3://bucket", "s3://", "https://example.com/x.zarr", "http://h",
		"gs://b/x", "", "://", "file://%zz", "mem://name/p",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := parse(raw)
		if err != nil {
			return
		}
		if u.Scheme != strings.ToLower(u.Scheme) {
			t.Fatalf("parse(%q): scheme %q not lower case", raw, u.Scheme)
		}
		if !strings.Contains(raw, "://") && (u.Scheme != "file" || u.Path != raw) {
			t.Fatalf("parse(%q): a plain path gave %+v", raw, u)
		}
		if u.Scheme == "s3" && strings.Contains(u.Host, "/") {
			t.Fatalf("parse(%q): bucket %q", raw, u.Host)
		}
	})
}

// TestConformance runs the one store suite over every store: the local
// directory on io_uring and on pread, S3 (MinIO), HTTP (a loopback file
// server), memory and the tests' pread directory store.
func TestConformance(t *testing.T) {
	dir := t.TempDir()
	for k, v := range storetest.Objects() {
		p := filepath.Join(dir, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, v, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := testenv.StartMinIO(t)
	m.Upload(t, "conformance", dir, "p/q")
	t.Setenv("AWS_ENDPOINT_URL", m.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", m.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", m.SecretKey)
	t.Setenv("AWS_REGION", m.Region)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()

	memStores := mem.Stores{"conf": mem.New("conf", storetest.Objects())}
	for _, tc := range []struct {
		name string
		url  string
		opts Options
		st   storetest.Options
	}{
		{name: "file", url: dir},
		{name: "file-pread", url: "file://" + dir, opts: Options{Local: uring.Options{Pread: true}}},
		{name: "file-around-cold-cache", url: dir, opts: Options{Local: uring.Options{AroundColdCache: true}}},
		{name: "s3", url: "s3://conformance/p/q"},
		{name: "https", url: srv.URL, st: storetest.Options{NoList: true}},
		{name: "mem", url: "mem://conf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Defaults(tc.opts).With("mem", memStores.Open).Open(t.Context(), tc.url)
			if err != nil {
				t.Fatal(err)
			}
			storetest.Run(t, s, tc.st)
		})
	}
	t.Run("dirstore", func(t *testing.T) { storetest.Run(t, dirstore.New(dir), storetest.Options{}) })
}

func TestMemPrefix(t *testing.T) {
	objects := map[string][]byte{"g/a/.zarray": []byte("{}"), "g/b": []byte("b"), "h": []byte("h")}
	stores := mem.Stores{"x": mem.New("x", objects)}
	reg := Registry{}.With("MEM", stores.Open)
	s, err := reg.Open(t.Context(), "mem://x/g")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := s.List(t.Context(), "")
	if err != nil || strings.Join(keys, ",") != "a/.zarray,b" {
		t.Errorf("mem://x/g lists %q, %v", keys, err)
	}
	if _, err := reg.Open(t.Context(), "mem://y"); err == nil || !strings.Contains(err.Error(), `no store named "y"`) {
		t.Errorf("mem://y: %v", err)
	}
	if _, err := reg.Open(t.Context(), "/a/path"); err == nil || !strings.Contains(err.Error(), "unknown scheme \"file\" (want a path or one of mem://)") {
		t.Errorf("a path in a registry without file: %v", err)
	}
}
