// Package testenv finds what the tests run against: the module root, the
// real Zarr stores in ../shared and the Python venv with the reference
// implementations (zarr-python, numcodecs, xarray) that `make test` sets up.
package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// ModuleRoot returns the directory holding go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

// RealData returns ../shared/data/real beside the checkout, where the real
// stores of SOURCES.md live. It fails the test when they are missing: CI
// always has them.
func RealData(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(ModuleRoot(t), "..", "shared", "data", "real")
	if v := os.Getenv("LSIO_REAL_DATA"); v != "" {
		dir = v
	}
	if _, err := os.Stat(filepath.Join(dir, "SOURCES.md")); err != nil {
		t.Fatalf("testenv: real data not found at %s (set LSIO_REAL_DATA): %v", dir, err)
	}
	return dir
}

// Python returns the venv interpreter that has the reference libraries:
// $LSIO_PYTHON, or .venv/bin/python in the module root. It fails the test
// when there is none: run `make test`, which creates it.
func Python(t testing.TB) string {
	t.Helper()
	py := os.Getenv("LSIO_PYTHON")
	if py == "" {
		py = filepath.Join(ModuleRoot(t), ".venv", "bin", "python")
	}
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("testenv: no Python venv at %s: run `make test`, which creates it: %v", py, err)
	}
	return py
}

// RunPython runs script with the venv interpreter and args, and returns its
// stdout. The test fails with the script's stderr when it exits non-zero.
func RunPython(t testing.TB, script string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(Python(t), append([]string{"-c", script}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("testenv: python failed: %v\n%s", err, stderr.String())
	}
	return stdout.Bytes()
}
