package main

import (
	"bufio"
	"context"
	"errors"
	"io"
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

func TestServeCommandBadArgs(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-listen", "http://localhost:1"}, "want unix:///path or tcp://host:port"},
		{[]string{"-listen", "unix://"}, "empty socket path"},
		{[]string{"-log-level", "loud"}, "log-level"},
		{[]string{"extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		err := runServe(context.Background(), tt.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("serve %q: %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}
