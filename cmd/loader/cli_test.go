package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// buildLoader builds the binary the tests run as a user would.
func buildLoader(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "loader")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runBinary runs bin with args and returns its stdout, stderr and exit
// status.
func runBinary(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("running loader %q: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

func TestHelpOnEveryCommand(t *testing.T) {
	bin := buildLoader(t)
	type call struct {
		args []string
		want string // what stdout starts with
	}
	calls := []call{
		{[]string{"-h"}, "usage: loader COMMAND"},
		{[]string{"--help"}, "usage: loader COMMAND"},
		{[]string{"help"}, "usage: loader COMMAND"},
		{[]string{"help", "read"}, "usage: loader read "},
		{[]string{"bench", "gen", "-h"}, "usage: loader bench "},
		{[]string{"stats", "merge", "--help"}, "usage: loader stats merge "},
	}
	for _, c := range commands() {
		for _, h := range []string{"-h", "--help"} {
			calls = append(calls, call{[]string{c.name, h}, "usage: loader " + c.name + " "})
		}
	}
	for _, c := range calls {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			stdout, stderr, code := runBinary(t, bin, c.args...)
			if code != 0 || stderr != "" {
				t.Errorf("exit %d, stderr %q; want 0 and nothing on stderr", code, stderr)
			}
			if !strings.HasPrefix(stdout, c.want) {
				t.Errorf("stdout %q does not start with %q", stdout, c.want)
			}
			if len(c.args) == 2 && c.args[0] != "help" && c.args[0] != "version" && c.args[0] != "inspect" && !strings.Contains(stdout, "  -") {
				t.Errorf("usage lists no flags:\n%s", stdout)
			}
		})
	}
	t.Run("version", func(t *testing.T) {
		stdout, stderr, code := runBinary(t, bin, "version")
		if code != 0 || !strings.HasPrefix(stdout, "lsio-loader ") || !strings.Contains(stdout, "go1.") {
			t.Errorf("loader version: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
}

func TestErrorsNameTheUsersConcept(t *testing.T) {
	bin := buildLoader(t)
	missing := filepath.Join(t.TempDir(), "data", "sample", "nwp.zarr")
	specFile := filepath.Join(testenv.ModuleRoot(t), "examples", "real_ukv_seviri.yaml")
	missingSpec := filepath.Join(t.TempDir(), "experiment.yaml")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // in stderr
	}{
		{"missing sample data", []string{"inspect", missing}, 1,
			[]string{"no store at " + missing, "loader demo", "Run 'loader inspect -h' for usage."}},
		{"missing store", []string{"read", "/nonexistent/x.zarr", "a", "-o", "/dev/null"}, 1,
			[]string{"no store at /nonexistent/x.zarr", "Run 'loader read -h'"}},
		{"a spec where a store goes", []string{"inspect", specFile}, 1, []string{specFile + " is a file, not a Zarr store"}},
		{"missing spec", []string{"stats", missingSpec}, 1, []string{"no spec or store at " + missingSpec}},
		{"bad flag", []string{"serve", "-bogus"}, 1, []string{"-bogus", "Run 'loader serve -h'"}},
		{"missing arguments", []string{"read"}, 1, []string{"want STORE, ARRAY and -o OUT.npy", "Run 'loader read -h'"}},
		{"unknown command", []string{"serv"}, 2, []string{`unknown command "serv"`, "usage: loader COMMAND"}},
		{"bench without gen", []string{"bench"}, 1, []string{"want the subcommand gen", "Run 'loader bench -h'"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runBinary(t, bin, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			for _, internal := range []string{"uring", "stat ", "store: open"} {
				if strings.Contains(stderr, internal) {
					t.Errorf("stderr %q names an internal (%q)", stderr, internal)
				}
			}
		})
	}
}
