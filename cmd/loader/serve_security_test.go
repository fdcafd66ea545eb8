package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// The Python client reaches a TCP server over TLS with a bearer token
// (tls_root_certs=, token= or LSIO_LOADER_TOKEN), and is refused without
// the token; the spec's store is inside -allow, a store outside is refused.
func TestServeTLSTokenPythonClient(t *testing.T) {
	dir := t.TempDir()
	cert, key := testenv.SelfSignedCert(t, dir)
	const token = "python-client-token-0123456789"
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()

	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, []string{"-listen", "tcp://" + addr, "-allow", data, "-tls-cert", cert, "-tls-key", key,
			"-token-file", tokenFile, "-log-level", "error"}, w)
		w.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop")
		}
	})
	if _, err := bufio.NewReader(r).ReadString('\n'); err != nil {
		t.Fatalf("no ready line: %v", err)
	}
	go io.Copy(io.Discard, r)

	const script = `
import os, sys, numpy as np, zarr, pyarrow.flight as flight
import lsio_loader
from lsio_loader._server import connect
addr, cert, token, data, outside = sys.argv[1:6]
values = np.arange(8 * 8 * 8, dtype="<f4").reshape(8, 8, 8)
for d in (data, outside):
    g = zarr.open_group(d + "/f.zarr", mode="w", zarr_format=3)
    g.create_array("data", shape=values.shape, chunks=(4, 4, 4), dtype="f4", dimension_names=["t", "y", "x"])[...] = values
spec = {"seed": 1, "batch_size": 2, "samples_per_epoch": 6, "streams": 1,
        "sources": {"f": {"store": data + "/f.zarr", "array": "data", "crop": {"t": 2, "y": 2, "x": 2}}}}
n = sum(len(b["epoch_index"]) for b in lsio_loader.iter_batches(spec, address="tcp://" + addr, tls_root_certs=cert, token=token))
assert n == 6, n
os.environ["LSIO_LOADER_TOKEN"] = token
n = sum(len(b["epoch_index"]) for b in lsio_loader.iter_batches(spec, address="tcp://" + addr, tls_root_certs=open(cert, "rb").read()))
assert n == 6, n
del os.environ["LSIO_LOADER_TOKEN"]
def refused(exc, **kw):
    try:
        list(lsio_loader.iter_batches(kw.pop("spec", spec), address="tcp://" + addr, **kw))
    except exc as e:
        assert token not in str(e), e
        return str(e)
    raise AssertionError(f"not refused: {kw}")
refused(flight.FlightUnauthenticatedError, tls_root_certs=cert)
refused(flight.FlightUnauthenticatedError, tls_root_certs=cert, token="wrong-token-0123456789")
refused(flight.FlightUnavailableError, token=token)  # plaintext to a TLS server
bad = {**spec, "sources": {"f": {**spec["sources"]["f"], "store": outside + "/f.zarr"}}}
msg = refused(flight.FlightUnauthorizedError, spec=bad, tls_root_certs=cert, token=token)
assert "sources.f.store" in msg, msg
print("ok")
`
	cmd := exec.Command(testenv.Python(t), "-c", script, addr, cert, token, data, filepath.Join(dir, "outside"))
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(testenv.ModuleRoot(t), "python"), "LSIO_LOADER_TOKEN=")
	if err := os.Mkdir(filepath.Join(dir, "outside"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("python client: %v\n%s", err, out)
	}
}
