package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServeCommand(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "loader.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, []string{"-listen", "unix://" + sock, "-log-level", "warn"}, w)
		w.Close()
	}()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatalf("no ready line: %v", err)
	}
	if want := "lsio-loader listening on unix://" + sock + "\n"; line != want {
		t.Fatalf("ready line %q, want %q", line, want)
	}
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("socket not there once ready: %v", err)
	}
	// A second server on the same socket must refuse rather than steal it.
	err = runServe(ctx, []string{"-listen", "unix://" + sock}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Fatalf("second server on %s: %v, want an already-listening error", sock, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after cancel: %v, want a clean exit", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop within 10s of cancellation")
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
}

// TestServeMetrics serves with -metrics and scrapes it over HTTP; the
// counting itself is flight's TestScrapeCountsWhatWasDelivered.
func TestServeMetrics(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	sock := filepath.Join(t.TempDir(), "loader.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, []string{"-listen", "unix://" + sock, "-log-level", "warn", "-metrics", addr}, w)
		w.Close()
	}()
	if _, err := bufio.NewReader(r).ReadString('\n'); err != nil {
		t.Fatalf("no ready line: %v", err)
	}
	go io.Copy(io.Discard, r)
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s, %v", resp.Status, err)
	}
	for _, want := range []string{"lsio_crops_total 0\n", "lsio_batches_total 0\n", "lsio_cache_bytes 0\n", "# TYPE lsio_batch_seconds histogram"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve after cancel: %v", err)
	}
	if _, err := http.Get("http://" + addr + "/metrics"); err == nil {
		t.Error("metrics still served after shutdown")
	}
}

func TestServeCommandBadArgs(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-listen", "http://localhost:1"}, "want unix:///path or tcp://host:port"},
		{[]string{"-listen", "unix://"}, "empty socket path"},
		{[]string{"-log-level", "loud"}, "log-level"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"-cache", "lots"}, "-cache"},
		{[]string{"-cache", "-1GiB"}, "-cache"},
		{[]string{"-listen", "tcp://127.0.0.1:0"}, "needs -allow"},
		{[]string{"-listen", "tcp://0.0.0.0:0", "-allow", os.TempDir()}, "-tls-cert, -tls-key and -token-file"},
		{[]string{"-allow", "gs://bucket"}, "-allow"},
		{[]string{"-metrics", "nonsense"}, "-metrics nonsense: want HOST:PORT"},
	}
	for _, tt := range tests {
		err := runServe(context.Background(), tt.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("serve %q: %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}
