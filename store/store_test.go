package store

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/cloud"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
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
		check   func(zarr.Store) bool
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
		if c, ok := s.(io.Closer); ok {
			c.Close()
		}
	}
}

func isType[T zarr.Store](s zarr.Store) bool {
	_, ok := s.(T)
	return ok
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"/data/ukv.zarr", "file:///data/ukv.zarr", "file://localhost/x", "file://host/x",
		"s3://bucket/a/b", "S3://bucket", "s3://", "https://example.com/x.zarr", "http://h",
		"gs://b/x", "", "://", "file://%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		loc, err := parse(raw)
		if err != nil {
			return
		}
		switch loc.backend {
		case local:
			if loc.path == "" {
				t.Fatalf("parse(%q): empty local path accepted", raw)
			}
		case s3:
			if loc.bucket == "" || strings.Contains(loc.bucket, "/") {
				t.Fatalf("parse(%q): bucket %q", raw, loc.bucket)
			}
		case web:
			if !strings.Contains(strings.ToLower(raw), "http") {
				t.Fatalf("parse(%q): web store from a non-http URL", raw)
			}
		}
	})
}
