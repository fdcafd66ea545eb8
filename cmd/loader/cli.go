package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/lsio-loader/lsio-loader/store"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// newFlagSet returns the flags of command name. Its usage (the command's
// Usage func, or the standard one) goes to stdout when args ask for help;
// otherwise the flag package stays silent, since parse errors are returned
// and main prints them once, pointing at `loader name -h`.
func newFlagSet(name string, args []string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if helpAsked(args) {
		fs.SetOutput(stdout)
	}
	return fs
}

// usageFunc is the one usage format (stats and sample write theirs the
// same way): the synopsis line, a blank line, what the command does, then
// its flags.
func usageFunc(fs *flag.FlagSet, synopsis, about string) func() {
	return func() {
		fmt.Fprintf(fs.Output(), "usage: loader %s %s\n\n%s\n", fs.Name(), synopsis, about)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fs.PrintDefaults()
		}
	}
}

// helpAsked says whether args hold -h, -help or --help before a "--".
func helpAsked(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help", "--h":
			return true
		}
	}
	return false
}

// runVersion prints the module version the binary was built from, and the
// commit when it was built from a checkout.
func runVersion(_ context.Context, args []string, stdout io.Writer) error {
	flags := newFlagSet("version", args, stdout)
	flags.Usage = usageFunc(flags, "", "Print the version of lsio-loader this binary was built from.")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flags.Args())
	}
	fmt.Fprintln(stdout, versionLine())
	return nil
}

func versionLine() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "lsio-loader (unknown version: built without module support)"
	}
	line := fmt.Sprintf("lsio-loader %s %s", bi.Main.Version, bi.GoVersion)
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = " (modified)"
			}
		}
	}
	if rev != "" {
		line += " commit " + rev[:min(12, len(rev))] + modified
	}
	return line
}

// openStoreChecked opens a store by path or URL; a local path that does
// not exist is reported as a missing store, with a pointer to `loader demo`
// when it is where the demo writes the sample data.
func openStoreChecked(ctx context.Context, url string, opts store.Options) (zarr.Store, error) {
	path, local := strings.CutPrefix(url, "file://")
	local = local || !strings.Contains(url, "://")
	if local {
		info, err := os.Stat(path)
		switch ext := filepath.Ext(path); {
		case errors.Is(err, fs.ErrNotExist) && (ext == ".yaml" || ext == ".yml" || ext == ".json"):
			return nil, missingStore{what: "no spec or store at ", path: path}
		case errors.Is(err, fs.ErrNotExist):
			hint := ""
			if filepath.Base(filepath.Dir(filepath.Clean(path))) == "sample" {
				hint = " (the sample data: run `loader demo` or `make demo` to write it)"
			}
			return nil, missingStore{what: "no store at ", path: path, hint: hint}
		case err == nil && !info.IsDir():
			return nil, fmt.Errorf("%s is a file, not a Zarr store (a directory holding zarr.json or .zgroup)", path)
		}
	}
	return store.Open(ctx, url, opts)
}

// missingStore is a local store path with nothing there.
type missingStore struct{ what, path, hint string }

func (e missingStore) Error() string { return e.what + e.path + e.hint }
func (e missingStore) Unwrap() error { return fs.ErrNotExist }
