package cloud

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/zarr"
)

type result struct {
	data []byte
	err  error
}

type releaser interface {
	zarr.Store
	Outstanding() int
}

func (e *engine) Outstanding() int { return e.pool.Outstanding() }

func readAll(t *testing.T, ctx context.Context, s releaser, reqs []zarr.ByteRange) []result {
	t.Helper()
	res := make([]result, len(reqs))
	seen := make([]bool, len(reqs))
	var mu sync.Mutex
	s.ReadBatch(ctx, reqs, func(i int, data []byte, err error) {
		mu.Lock()
		defer mu.Unlock()
		if seen[i] {
			t.Errorf("request %d completed twice", i)
		}
		seen[i] = true
		res[i] = result{bytes.Clone(data), err}
		s.Release(data)
	})
	for i, ok := range seen {
		if !ok {
			t.Fatalf("request %d never completed", i)
		}
	}
	if n := s.Outstanding(); n != 0 {
		t.Fatalf("%d buffers not back in the pool", n)
	}
	return res
}

// realRequests reads every file below root whole, plus a few random ranges
// (some of them close together, to be merged) and a suffix of each, with the
// bytes each must give.
func realRequests(t *testing.T, root string) ([]zarr.ByteRange, [][]byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	var reqs []zarr.ByteRange
	var want [][]byte
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		key := filepath.ToSlash(rel)
		reqs = append(reqs, zarr.ByteRange{Key: key, Length: -1})
		want = append(want, data)
		if len(data) < 4 {
			return nil
		}
		for range 3 {
			off := rng.IntN(len(data) - 1)
			n := rng.IntN(min(len(data)-off, 4096)) + 1
			reqs = append(reqs, zarr.ByteRange{Key: key, Offset: int64(off), Length: int64(n)})
			want = append(want, data[off:off+n])
		}
		suffix := rng.IntN(len(data)) + 1
		reqs = append(reqs, zarr.ByteRange{Key: key, Offset: -int64(suffix)})
		want = append(want, data[len(data)-suffix:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return reqs, want
}

func checkResults(t *testing.T, reqs []zarr.ByteRange, want [][]byte, got []result) {
	t.Helper()
	for i, r := range got {
		if r.err != nil {
			t.Fatalf("%+v: %v", reqs[i], r.err)
		}
		if !bytes.Equal(r.data, want[i]) {
			t.Fatalf("%+v: got %d bytes, want %d (contents differ)", reqs[i], len(r.data), len(want[i]))
		}
	}
}

// useMinIO points the standard AWS chain at endpoint with m's credentials,
// through environment variables only, as a user would.
func useMinIO(t *testing.T, m *testenv.MinIO, endpoint string) {
	t.Setenv("AWS_ENDPOINT_URL", endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", m.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", m.SecretKey)
	t.Setenv("AWS_REGION", m.Region)
	// Nothing else on the machine may leak in.
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func TestS3ReadsRealData(t *testing.T) {
	real := testenv.RealData(t)
	m := testenv.StartMinIO(t)
	m.Upload(t, "real", real, "data")
	useMinIO(t, m, m.Endpoint)

	s, err := OpenS3(t.Context(), "real", "data", Options{})
	if err != nil {
		t.Fatal(err)
	}
	reqs, want := realRequests(t, real)
	checkResults(t, reqs, want, readAll(t, t.Context(), s, reqs))

	keys, err := s.List(t.Context(), "ocf-nowcasting-2023/seviri_hrv.zarr/")
	if err != nil {
		t.Fatal(err)
	}
	var local []string
	filepath.WalkDir(filepath.Join(real, "ocf-nowcasting-2023", "seviri_hrv.zarr"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(real, path)
			local = append(local, filepath.ToSlash(rel))
		}
		return err
	})
	sort.Strings(keys)
	sort.Strings(local)
	if strings.Join(keys, ",") != strings.Join(local, ",") {
		t.Fatalf("List gave %d keys, the directory has %d:\n%v\n%v", len(keys), len(local), keys, local)
	}

	for _, tc := range []struct {
		req     zarr.ByteRange
		wantErr string
	}{
		{zarr.ByteRange{Key: "missing/.zarray", Length: -1}, "NoSuchKey"},
		{zarr.ByteRange{Key: "SOURCES.md", Offset: 100, Length: 1 << 20}, "past the end"},
		{zarr.ByteRange{Key: "SOURCES.md", Offset: 1 << 30, Length: 10}, "InvalidRange"},
	} {
		r := readAll(t, t.Context(), s, []zarr.ByteRange{tc.req})[0]
		if r.err == nil || !strings.Contains(r.err.Error(), tc.wantErr) || !strings.Contains(r.err.Error(), "s3://real/data/"+tc.req.Key) {
			t.Errorf("%+v: got %v, want an error naming the URL and containing %q", tc.req, r.err, tc.wantErr)
		}
		if tc.wantErr == "NoSuchKey" && !errors.Is(r.err, fs.ErrNotExist) {
			t.Errorf("missing object: %v does not wrap fs.ErrNotExist", r.err)
		}
	}
	// A wrong bucket must not read as missing chunks (fill values).
	wrong, err := OpenS3(t.Context(), "no-such-bucket", "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := readAll(t, t.Context(), wrong, []zarr.ByteRange{{Key: "data/0.0.0", Length: -1}})[0]
	if r.err == nil || errors.Is(r.err, fs.ErrNotExist) || !strings.Contains(r.err.Error(), "NoSuchBucket") {
		t.Errorf("missing bucket: got %v, want a NoSuchBucket error that is not fs.ErrNotExist", r.err)
	}
}

func TestCoalescing(t *testing.T) {
	real := testenv.RealData(t)
	m := testenv.StartMinIO(t)
	store := filepath.Join(real, "ocf-nowcasting-2023", "ukv_nwp.zarr")
	m.Upload(t, "nwp", store, "")
	proxy := newFaultProxy(t, strings.TrimPrefix(m.Endpoint, "http://"), func(int64) string { return pass })
	useMinIO(t, m, proxy.srv.URL)

	data, err := os.ReadFile(filepath.Join(store, "UKV", "0.0.0.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	// Ten ranges with gaps of 1000 bytes, one of them overlapping another.
	var reqs []zarr.ByteRange
	var want [][]byte
	for i := range 10 {
		off := i * 3000
		reqs = append(reqs, zarr.ByteRange{Key: "UKV/0.0.0.0.0", Offset: int64(off), Length: 2000})
		want = append(want, data[off:off+2000])
	}
	reqs = append(reqs, zarr.ByteRange{Key: "UKV/0.0.0.0.0", Offset: 1500, Length: 300})
	want = append(want, data[1500:1800])

	for _, tc := range []struct {
		gap      int64
		wantGets int64
	}{
		{0, 1},    // default gap, 1 MiB
		{999, 10}, // the gaps are 1000 bytes
		{1000, 1}, // exactly the gap
		{-1, 11},  // merging off
	} {
		s, err := OpenS3(t.Context(), "nwp", "", Options{CoalesceGap: tc.gap})
		if err != nil {
			t.Fatal(err)
		}
		before := proxy.gets.Load()
		checkResults(t, reqs, want, readAll(t, t.Context(), s, reqs))
		if got := proxy.gets.Load() - before; got != tc.wantGets {
			t.Errorf("gap %d: %d GETs, want %d", tc.gap, got, tc.wantGets)
		}
	}
}

func TestS3Faults(t *testing.T) {
	real := testenv.RealData(t)
	m := testenv.StartMinIO(t)
	store := filepath.Join(real, "ocf-nowcasting-2023", "seviri_nonhrv.zarr")
	m.Upload(t, "sat", store, "nonhrv")
	reqs, want := realRequests(t, store)

	firstN := func(n int64, fault string) func(int64) string {
		return func(i int64) string {
			if i <= n {
				return fault
			}
			return pass
		}
	}
	always := func(fault string) func(int64) string { return func(int64) string { return fault } }
	// Few GETs in flight, so that MinIO on a small machine answers well
	// within the short timeouts.
	fast := Options{Concurrency: 16, RequestTimeout: 500 * time.Millisecond, RetryTimeout: 1500 * time.Millisecond, ConnectTimeout: 1500 * time.Millisecond}

	for _, tc := range []struct {
		name    string
		fault   func(int64) string
		opts    Options
		wantErr string // a regexp; "" when every read must succeed
		maxTime time.Duration
	}{
		{"503 SlowDown is retried", firstN(20, slowDown), Options{}, "", 10 * time.Second},
		{"500 InternalError is retried", firstN(20, internal), Options{}, "", 10 * time.Second},
		{"reset mid-body is retried", firstN(20, resetMid), Options{}, "", 10 * time.Second},
		{"truncated body is retried", firstN(20, truncate), Options{}, "", 10 * time.Second},
		{"stalled response times out and is retried", firstN(5, stall), fast, "", 5 * time.Second},
		{"always truncated gives an error", always(truncate), fast, "truncated body", 8 * time.Second},
		{"always reset gives an error", always(resetMid), fast, "connection reset", 8 * time.Second},
		{"always SlowDown gives an error", always(slowDown), fast, "SlowDown", 8 * time.Second},
		{"always 500 gives an error", always(internal), fast, "InternalError", 8 * time.Second},
		{"always stalled gives an error", always(stall), fast, "deadline exceeded|timeout awaiting response headers", 8 * time.Second},
		{"short answer is an error, not short data", always(shortLength), fast, "past the end|asked for the last", 8 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := newFaultProxy(t, strings.TrimPrefix(m.Endpoint, "http://"), tc.fault)
			useMinIO(t, m, proxy.srv.URL)
			s, err := OpenS3(t.Context(), "sat", "nonhrv", tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			got := readAll(t, t.Context(), s, reqs)
			elapsed := time.Since(start)
			if elapsed > tc.maxTime {
				t.Errorf("took %v, want at most %v", elapsed, tc.maxTime)
			}
			if tc.wantErr == "" {
				checkResults(t, reqs, want, got)
				return
			}
			failed := 0
			for i, r := range got {
				if r.err == nil {
					if tc.name == "short answer is an error, not short data" && reqs[i].Length >= 2 {
						t.Errorf("%+v: short answer accepted", reqs[i])
					}
					if !bytes.Equal(r.data, want[i]) {
						t.Errorf("%+v: wrong data", reqs[i])
					}
					continue
				}
				failed++
				if !regexp.MustCompile(tc.wantErr).MatchString(r.err.Error()) || !strings.Contains(r.err.Error(), "s3://sat/nonhrv/"+reqs[i].Key) {
					t.Errorf("%+v: error %q does not name the URL and %q", reqs[i], r.err, tc.wantErr)
				}
			}
			if failed == 0 {
				t.Errorf("every read succeeded")
			}
		})
	}
}

func TestS3MinIOKilledMidRead(t *testing.T) {
	real := testenv.RealData(t)
	m := testenv.StartMinIO(t)
	store := filepath.Join(real, "ocf-nowcasting-2023", "seviri_hrv.zarr")
	m.Upload(t, "hrv", store, "")
	proxy := newFaultProxy(t, strings.TrimPrefix(m.Endpoint, "http://"), func(int64) string { return pass })
	proxy.delay = 50 * time.Millisecond
	useMinIO(t, m, proxy.srv.URL)
	s, err := OpenS3(t.Context(), "hrv", "", Options{Concurrency: 4, RequestTimeout: 500 * time.Millisecond, RetryTimeout: 2 * time.Second, ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reqs, want := realRequests(t, store)
	go func() {
		for proxy.gets.Load() < 8 {
			time.Sleep(5 * time.Millisecond)
		}
		m.Kill()
	}()
	start := time.Now()
	got := readAll(t, t.Context(), s, reqs)
	// Bounded by the retry budget plus the attempts then in flight, not by
	// the number of reads queued (loose for loaded CI machines).
	if elapsed := time.Since(start); elapsed > 15*time.Second {
		t.Errorf("reads took %v after MinIO died", elapsed)
	}
	ok, failed := 0, 0
	for i, r := range got {
		if r.err != nil {
			failed++
			if failed == 1 {
				t.Logf("first error: %v", r.err)
			}
			if !strings.Contains(r.err.Error(), "s3://hrv/"+reqs[i].Key) {
				t.Errorf("error %q does not name the object", r.err)
			}
			continue
		}
		ok++
		if !bytes.Equal(r.data, want[i]) {
			t.Errorf("%+v: wrong data", reqs[i])
		}
	}
	if ok == 0 || failed == 0 {
		t.Fatalf("%d reads succeeded and %d failed; want some of each", ok, failed)
	}
}

func TestReadBatchCancelled(t *testing.T) {
	store := filepath.Join(testenv.RealData(t), "ocf-nowcasting-2023", "seviri_hrv.zarr")
	srv := httptest.NewServer(http.FileServer(http.Dir(store)))
	defer srv.Close()
	s, err := OpenHTTP(t.Context(), srv.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	reqs, _ := realRequests(t, store)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for i, r := range readAll(t, ctx, s, reqs) {
		if !errors.Is(r.err, context.Canceled) {
			t.Fatalf("%+v: got %v, want context.Canceled", reqs[i], r.err)
		}
	}
}

func TestHTTPStore(t *testing.T) {
	store := filepath.Join(testenv.RealData(t), "ecmwf-earthkit", "ecmwf_pl_analysis.zarr")
	srv := httptest.NewServer(http.FileServer(http.Dir(store)))
	defer srv.Close()
	s, err := OpenHTTP(t.Context(), srv.URL+"/", Options{})
	if err != nil {
		t.Fatal(err)
	}
	reqs, want := realRequests(t, store)
	checkResults(t, reqs, want, readAll(t, t.Context(), s, reqs))

	r := readAll(t, t.Context(), s, []zarr.ByteRange{{Key: "nothere/.zarray", Length: -1}})[0]
	if !errors.Is(r.err, fs.ErrNotExist) || !strings.Contains(r.err.Error(), srv.URL+"/nothere/.zarray") {
		t.Errorf("missing object: got %v", r.err)
	}
	if _, err := s.List(t.Context(), ""); err == nil || !strings.Contains(err.Error(), "consolidated") {
		t.Errorf("List: got %v, want an error pointing at consolidated metadata", err)
	}
	for _, bad := range []string{"ftp://host/x", "http://", "not a url"} {
		if _, err := OpenHTTP(t.Context(), bad, Options{}); err == nil {
			t.Errorf("OpenHTTP(%q) succeeded", bad)
		}
	}
}
