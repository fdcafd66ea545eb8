package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/lsio-loader/lsio-loader/internal/synth"
)

// runDemo writes the built-in sample dataset: an NWP-like Zarr v2 store and
// a satellite-like sharded Zarr v3 store over the same area and period.
func runDemo(ctx context.Context, args []string, stdout io.Writer) error {
	flags := newFlagSet("demo", args, stdout)
	flags.Usage = usageFunc(flags, "[-out DIR] [-size small|tiny]", "Write the built-in sample dataset: an NWP-like Zarr v2 store and a\nsatellite-like sharded Zarr v3 store over the same area and period.")
	out := flags.String("out", filepath.Join("data", "sample"), "directory to write nwp.zarr and satellite.zarr into")
	size := flags.String("size", "small", "dataset size: small (about 300 MB on disk) or tiny (for tests)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flags.Args())
	}
	begin := time.Now()
	fresh, err := synth.WriteDemo(ctx, *out, *size, func(w synth.Written) {
		fmt.Fprintf(stdout, "wrote %s: %.1f MB in %.1fs\n", w.Path, float64(w.Bytes)/1e6, w.Took.Seconds())
	})
	if err != nil {
		return fmt.Errorf("-size %s: %w", *size, err)
	}
	if !fresh {
		fmt.Fprintf(stdout, "%s already holds the %s demo dataset; nothing to do\n", *out, *size)
		return nil
	}
	fmt.Fprintf(stdout, "demo dataset (%s) complete in %s in %.1fs\n", *size, *out, time.Since(begin).Seconds())
	return nil
}
