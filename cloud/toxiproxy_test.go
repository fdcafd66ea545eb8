package cloud

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/zarr"
	"github.com/rs/zerolog"
)

// newToxiproxy starts a TCP proxy to upstream, in process, on a free
// loopback port, and returns it with its address.
func newToxiproxy(t *testing.T, upstream string) (*toxiproxy.Proxy, string) {
	t.Helper()
	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(api, t.Name(), "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p, p.Listen
}

func addToxic(t *testing.T, p *toxiproxy.Proxy, json string) {
	t.Helper()
	if _, err := p.Toxics.AddToxicJson(strings.NewReader(json)); err != nil {
		t.Fatalf("toxic %s: %v", json, err)
	}
}

// Store faults between the loader and a real MinIO, made by toxiproxy at
// the TCP level: each read ends in a retried success or a clear error
// within its bound, with the default timeouts unless said otherwise.
func TestS3FaultsThroughToxiproxy(t *testing.T) {
	real := testenv.RealData(t)
	m := testenv.StartMinIO(t)
	store := filepath.Join(real, "ocf-nowcasting-2023", "seviri_nonhrv.zarr")
	m.Upload(t, "sat", store, "nonhrv")
	reqs, want := realRequests(t, store)
	// A few reads, each far longer than the truncation below.
	var big []zarr.ByteRange
	var bigWant [][]byte
	for i := range reqs {
		if len(want[i]) > 8000 && len(big) < 4 {
			big, bigWant = append(big, reqs[i]), append(bigWant, want[i])
		}
	}
	if len(big) == 0 {
		t.Fatal("no read longer than 8000 bytes in the store")
	}
	reqs, want = big, bigWant
	upstream := strings.TrimPrefix(m.Endpoint, "http://")

	for _, tc := range []struct {
		name    string
		toxics  []string
		heal    time.Duration // toxics removed after this; 0: never
		opts    Options
		wantErr string // a regexp; "" when every read must succeed
		maxTime time.Duration
	}{
		{name: "resets while the store recovers are retried",
			toxics: []string{`{"name":"reset","type":"reset_peer","stream":"upstream","attributes":{"timeout":0}}`},
			heal:   2 * time.Second, maxTime: 10 * time.Second},
		{name: "truncated bodies are retried",
			toxics: []string{`{"name":"cut","type":"limit_data","stream":"downstream","attributes":{"bytes":2000}}`},
			heal:   2 * time.Second, maxTime: 10 * time.Second},
		{name: "a stall that ends is retried",
			toxics: []string{`{"name":"stall","type":"timeout","stream":"downstream","attributes":{"timeout":0}}`},
			heal:   time.Second, opts: Options{FirstByteTimeout: 2 * time.Second}, maxTime: 10 * time.Second},
		{name: "always reset fails within the connect budget",
			toxics:  []string{`{"name":"reset","type":"reset_peer","stream":"upstream","attributes":{"timeout":0}}`},
			wantErr: "connection reset|EOF", maxTime: 11 * time.Second},
		{name: "always truncated fails within the retry budget",
			toxics:  []string{`{"name":"cut","type":"limit_data","stream":"downstream","attributes":{"bytes":2000}}`},
			opts:    Options{RetryTimeout: 3 * time.Second, ConnectTimeout: 3 * time.Second},
			wantErr: "truncated|EOF|connection reset", maxTime: 6 * time.Second},
		{name: "a silent endpoint fails within 30 s by default",
			toxics:  []string{`{"name":"stall","type":"timeout","stream":"downstream","attributes":{"timeout":0}}`},
			wantErr: "timeout awaiting response headers|deadline exceeded", maxTime: 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy, addr := newToxiproxy(t, upstream)
			useMinIO(t, m, "http://"+addr)
			for _, tox := range tc.toxics {
				addToxic(t, proxy, tox)
			}
			if tc.heal > 0 {
				timer := time.AfterFunc(tc.heal, func() { proxy.Toxics.ResetToxics(context.Background()) })
				defer timer.Stop()
			}
			s, err := OpenS3(t.Context(), "sat", "nonhrv", tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			got := readAll(t, t.Context(), s, reqs)
			// Twice the budget: CI machines under load add seconds, and the
			// faults this catches took minutes.
			if elapsed := time.Since(start); elapsed > 2*tc.maxTime {
				t.Errorf("took %v, want about %v", elapsed, tc.maxTime)
			}
			if tc.wantErr == "" {
				checkResults(t, reqs, want, got)
				return
			}
			for i, r := range got {
				if r.err == nil {
					t.Errorf("%+v: read through a broken proxy", reqs[i])
					continue
				}
				if !regexp.MustCompile(tc.wantErr).MatchString(r.err.Error()) || !strings.Contains(r.err.Error(), "s3://sat/nonhrv/"+reqs[i].Key) {
					t.Errorf("%+v: error %q does not name the URL and %q", reqs[i], r.err, tc.wantErr)
				}
			}
		})
	}
}

// A closed port fails within 10 s with the defaults: connection refused is
// retried for ConnectTimeout, not for the retry budget.
func TestS3ClosedPort(t *testing.T) {
	m := testenv.StartMinIO(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	useMinIO(t, m, "http://"+addr)
	s, err := OpenS3(t.Context(), "sat", "nonhrv", Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got := readAll(t, t.Context(), s, []zarr.ByteRange{{Key: "zarr.json", Offset: 0, Length: -1}})
	elapsed := time.Since(start)
	// The bound is loose on purpose: a loaded CI machine adds seconds, and
	// what matters is failing in the connect budget, not the 120 s of retries
	// this used to take.
	if elapsed > 30*time.Second {
		t.Errorf("a closed port failed after %v, want about the 10 s connect budget", elapsed)
	}
	if got[0].err == nil || !strings.Contains(got[0].err.Error(), "connection refused") {
		t.Errorf("read from a closed port: %v, want connection refused", got[0].err)
	}
	if strings.Contains(got[0].err.Error(), m.SecretKey) {
		t.Errorf("error %q carries the secret key", got[0].err)
	}
}

// MinIO killed mid-read, behind a TCP proxy as a load balancer would be:
// with the default timeouts the reads left fail within about the connect
// budget (10 s), not the minutes that retrying every read would take.
func TestS3MinIOKilledDefaults(t *testing.T) {
	real := testenv.RealData(t)
	m := testenv.StartMinIO(t)
	store := filepath.Join(real, "ocf-nowcasting-2023", "seviri_hrv.zarr")
	m.Upload(t, "hrv", store, "")
	proxy, addr := newToxiproxy(t, strings.TrimPrefix(m.Endpoint, "http://"))
	addToxic(t, proxy, `{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":50}}`)
	useMinIO(t, m, "http://"+addr)
	s, err := OpenS3(t.Context(), "hrv", "", Options{Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	reqs, want := realRequests(t, store)
	time.AfterFunc(300*time.Millisecond, m.Kill)
	start := time.Now()
	got := readAll(t, t.Context(), s, reqs)
	if elapsed := time.Since(start); elapsed > 40*time.Second {
		// Loose for loaded CI machines; retrying every read took 118 s.
		t.Errorf("reads took %v after MinIO died, want about the 10 s connect budget", elapsed)
	}
	ok, failed := 0, 0
	for i, r := range got {
		if r.err != nil {
			failed++
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
