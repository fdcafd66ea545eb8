package flight

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func TestRootsCheck(t *testing.T) {
	base := t.TempDir()
	data := filepath.Join(base, "data")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(data, "a.zarr"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(data, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(data, "a.zarr"), filepath.Join(outside, "into")); err != nil {
		t.Fatal(err)
	}
	roots, err := ParseRoots([]string{data, "s3://bucket/team", "https://Data.Example.org/zarr/"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		loc   string
		allow bool
	}{
		{filepath.Join(data, "a.zarr"), true},
		{"file://" + filepath.Join(data, "a.zarr"), true},
		{filepath.Join(data, "not-yet", "b.zarr"), true},
		{data, true},
		{filepath.Join(data, "..", "outside"), false},
		{filepath.Join(data, "escape"), false},
		{filepath.Join(data, "escape", "x.zarr"), false},
		{filepath.Join(outside, "into"), true},
		{data + "-sibling", false},
		{"/etc", false},
		{"/proc/self/environ", false},
		{"s3://bucket/team", true},
		{"s3://bucket/team/run1.zarr", true},
		{"S3://bucket/team/run1.zarr", true},
		{"s3://bucket/teamwork/x.zarr", false},
		{"s3://bucket/team/../secret/x.zarr", false},
		{"s3://other/team/x.zarr", false},
		{"https://data.example.org/zarr/x.zarr", true},
		{"https://data.example.org/zarrs/x.zarr", false},
		{"http://data.example.org/zarr/x.zarr", false},
		{"https://169.254.169.254/latest/meta-data/", false},
		{"https://data.example.org.evil.com/zarr/x.zarr", false},
	} {
		err := roots.Check("sources.x.store", tc.loc)
		if (err == nil) != tc.allow {
			t.Errorf("Check(%s) = %v, want allowed %v", tc.loc, err, tc.allow)
		}
		if err != nil && (!strings.Contains(err.Error(), "sources.x.store") || grpcStatus(err) != codes.PermissionDenied) {
			t.Errorf("Check(%s) = %v: want PermissionDenied naming the field", tc.loc, err)
		}
	}
	var none *Roots
	if err := none.Check("store", "/etc"); err != nil {
		t.Errorf("nil roots refused /etc: %v", err)
	}
	for _, bad := range []string{"gs://bucket", "s3://", "s3://b/a/../c"} {
		if _, err := ParseRoots([]string{bad}); err == nil {
			t.Errorf("ParseRoots(%q) accepted", bad)
		}
	}
}

func grpcStatus(err error) codes.Code { return status.Code(grpcError(err)) }

// A server with roots refuses, before opening anything, a spec naming a
// store or sites file outside them, and says which field.
func TestServeAllowRoots(t *testing.T) {
	dir := t.TempDir()
	writeField(t, filepath.Join(dir, "field.zarr"), [3]int{4, 8, 8})
	roots, err := ParseRoots([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	client := startServerWith(t, New(Options{Open: openDir, Exposure: Exposure{Allow: roots}}))
	good := fmt.Sprintf(genericSpec, 1)
	for _, tc := range []struct {
		name, spec, field string
	}{
		{"absolute store", strings.Replace(good, "field.zarr", "/etc", 1), "sources.field.store"},
		{"dot-dot store", strings.Replace(good, "field.zarr", "../../../../etc", 1), "sources.field.store"},
		{"missing store outside", strings.Replace(good, "field.zarr", "/nonexistent/x.zarr", 1), "sources.field.store"},
		{"url store", strings.Replace(good, "field.zarr", "http://127.0.0.1:1/x.zarr", 1), "sources.field.store"},
		{"s3 store", strings.Replace(good, "field.zarr", "s3://bucket/x.zarr", 1), "sources.field.store"},
		{"sites", good + "locations: {sites: /proc/self/environ}\n", "locations.sites"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, tc.spec, dir, nil)})
			if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("GetFlightInfo: %v, want PermissionDenied naming %s", err, tc.field)
			}
			if strings.Contains(err.Error(), "no such file") {
				t.Fatalf("refusal %v tells whether the path exists", err)
			}
		})
	}
	if _, err := client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, good, dir, nil)}); err != nil {
		t.Fatalf("a store inside the root: %v", err)
	}
}

func TestListenUnixSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "loader.sock")
	lis, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %v, want 0600 (owner only)", perm)
	}
	lis.Close()

	// A stale socket (no server) is replaced.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	lis, err = Listen("unix://" + sock)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	lis.Close()

	// Anything else at the path is left alone.
	file := filepath.Join(dir, "precious.txt")
	if err := os.WriteFile(file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, filepath.Join(dir, "adir")} {
		if _, err := Listen("unix://" + p); err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Errorf("Listen over %s: %v, want a not-a-socket refusal", p, err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("the file at the socket path was touched: %q, %v", b, err)
	}
}

func TestNewExposure(t *testing.T) {
	dir := t.TempDir()
	cert, key := testenv.SelfSignedCert(t, dir)
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  ExposureConfig
		want string // "" for accepted
	}{
		{"unix, no roots", ExposureConfig{Listen: "unix:///tmp/x.sock"}, ""},
		{"tcp without allow", ExposureConfig{Listen: "tcp://127.0.0.1:0"}, "-allow"},
		{"loopback tcp with allow", ExposureConfig{Listen: "tcp://127.0.0.1:0", Allow: []string{dir}}, ""},
		{"all interfaces, no tls", ExposureConfig{Listen: "tcp://0.0.0.0:0", Allow: []string{dir}, TokenFile: token}, "-tls-cert"},
		{"all interfaces, no token", ExposureConfig{Listen: "tcp://:0", Allow: []string{dir}, TLSCert: cert, TLSKey: key}, "-token-file"},
		{"all interfaces, tls and token", ExposureConfig{Listen: "tcp://0.0.0.0:0", Allow: []string{dir}, TLSCert: cert, TLSKey: key, TokenFile: token}, ""},
		{"cert without key", ExposureConfig{Listen: "unix:///tmp/x.sock", TLSCert: cert}, "both"},
		{"short token", ExposureConfig{Listen: "unix:///tmp/x.sock", TokenFile: short}, "16"},
		{"key is not a key", ExposureConfig{Listen: "unix:///tmp/x.sock", TLSCert: cert, TLSKey: token}, "-tls-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewExposure(tc.cfg)
			if tc.want == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("%v, want an error about %s", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "0123456789abcdef") {
				t.Fatalf("error %v quotes the token", err)
			}
		})
	}
}

// bearer sends a token with every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

// Over TCP with TLS and a token, calls without the token, with a wrong
// one, or without TLS are refused; the right token is served.
func TestServeTLSAndToken(t *testing.T) {
	dir := t.TempDir()
	writeField(t, filepath.Join(dir, "field.zarr"), [3]int{4, 8, 8})
	cert, key := testenv.SelfSignedCert(t, dir)
	tokenFile := filepath.Join(dir, "token")
	const token = "s3cr3t-t0ken-0123456789"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	expo, err := NewExposure(ExposureConfig{Listen: "tcp://127.0.0.1:0", Allow: []string{dir}, TLSCert: cert, TLSKey: key, TokenFile: tokenFile})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(Options{Open: openDir, Exposure: expo}).Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	pemBytes, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	tlsCreds := grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool}))
	addr := lis.Addr().String()
	cmd := &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, fmt.Sprintf(genericSpec, 1), dir, nil)}
	for _, tc := range []struct {
		name string
		opts []grpc.DialOption
		code codes.Code
	}{
		{"no token", []grpc.DialOption{tlsCreds}, codes.Unauthenticated},
		{"wrong token", []grpc.DialOption{tlsCreds, grpc.WithPerRPCCredentials(bearer(token + "x"))}, codes.Unauthenticated},
		{"plaintext", []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer(token))}, codes.Unavailable},
		{"tls and token", []grpc.DialOption{tlsCreds, grpc.WithPerRPCCredentials(bearer(token)), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32))}, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, err := flight.NewClientWithMiddleware(addr, nil, nil, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			cctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
			defer stop()
			info, err := client.GetFlightInfo(cctx, cmd)
			if status.Code(err) != tc.code {
				t.Fatalf("GetFlightInfo: %v, want %v", err, tc.code)
			}
			if err != nil && strings.Contains(err.Error(), token) {
				t.Fatalf("error %v quotes the token", err)
			}
			if tc.code == codes.OK {
				if recs := readAll(t, client, info.Endpoint[0]); len(recs) == 0 {
					t.Fatal("no record batches")
				}
				// DoGet checks the token too.
				bare, err := flight.NewClientWithMiddleware(addr, nil, nil, tlsCreds)
				if err != nil {
					t.Fatal(err)
				}
				defer bare.Close()
				stream, err := bare.DoGet(cctx, info.Endpoint[0].Ticket)
				if err == nil {
					_, err = stream.Recv()
				}
				if status.Code(err) != codes.Unauthenticated {
					t.Fatalf("DoGet without a token: %v, want Unauthenticated", err)
				}
			}
		})
	}
}

// Batches in flight are admitted against the memory budget: a batch larger
// than the whole budget is refused at once, and a stream that cannot fit
// beside others waits, then gets ResourceExhausted; once they finish it is
// served.
func TestServeMemoryBudget(t *testing.T) {
	dir := t.TempDir()
	writeField(t, filepath.Join(dir, "field.zarr"), [3]int{4, 8, 8})
	spec := strings.Replace(fmt.Sprintf(genericSpec, 1), "samples_per_epoch: 23", "samples_per_epoch: 100000", 1)
	// A batch: 4 samples of 2·3·5 float32 plus provenance columns.
	batch := recordBytes(mustSchema(t, spec, dir), 4)
	perStream := batch + int64(float64(batch)*croppingShare)
	ctx := context.Background()
	cmd := &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, spec, dir, map[string]any{"streams": 1})}

	t.Run("larger than the budget", func(t *testing.T) {
		client := startServerWith(t, New(Options{Open: openDir, Memory: perStream - 1}))
		info, err := client.GetFlightInfo(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		err = firstBatch(ctx, client, info.Endpoint[0])
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "batch_size") {
			t.Fatalf("DoGet: %v, want ResourceExhausted telling to lower batch_size", err)
		}
	})
	t.Run("waits, then refuses, then serves", func(t *testing.T) {
		client := startServerWith(t, New(Options{Open: openDir, Memory: perStream + batch/2, MemoryWait: 300 * time.Millisecond}))
		info, err := client.GetFlightInfo(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		holdCtx, release := context.WithCancel(ctx)
		held, err := client.DoGet(holdCtx, info.Endpoint[0].Ticket)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := held.Recv(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = firstBatch(ctx, client, info.Endpoint[0])
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "-memory") {
			t.Fatalf("a second stream beside a held one: %v, want ResourceExhausted", err)
		}
		if waited := time.Since(start); waited < 300*time.Millisecond || waited > 15*time.Second {
			t.Errorf("refused after %v, want after the 300ms wait", waited)
		}
		release()
		deadline := time.Now().Add(10 * time.Second)
		for {
			err = firstBatch(ctx, client, info.Endpoint[0])
			if err == nil || status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Fatalf("once the first stream ended: %v", err)
		}
	})
}

func mustSchema(t *testing.T, spec, dir string) *arrow.Schema {
	t.Helper()
	srv := New(Options{Open: openDir})
	req := Request{Spec: spec, SpecDir: dir, Split: "train", WorldSize: 1}
	plan, err := srv.plan(context.Background(), &req)
	if err != nil {
		t.Fatal(err)
	}
	schema, err := buildSchema(plan, &req)
	if err != nil {
		t.Fatal(err)
	}
	return schema
}

// firstBatch opens a stream and reads its first message past the schema.
func firstBatch(ctx context.Context, client flight.Client, ep *flight.FlightEndpoint) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.DoGet(ctx, ep.Ticket)
	if err != nil {
		return err
	}
	for range 2 {
		if _, err := stream.Recv(); err != nil {
			return err
		}
	}
	return nil
}
