package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/lsio-loader/lsio-loader/internal/progress"
	"github.com/lsio-loader/lsio-loader/internal/synth"
)

// runBench writes the benchmark workloads; the benchmark itself is
// bench/run.py.
func runBench(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("bench", args, stdout)
	fs.Usage = usageFunc(fs, "gen [-size small|large] [-out DIR] [-seed N]",
		"Write the benchmark workloads (satellite.zarr and nwp.zarr); the benchmark\nitself is `make bench`, i.e. bench/run.py.")
	size := fs.String("size", "small", "workload size: small (fits this machine) or large (bigger than RAM)")
	out := fs.String("out", "bench/data", "directory to write satellite.zarr and nwp.zarr into")
	seed := fs.Uint64("seed", 1, "seed of the synthetic fields")
	if len(args) > 0 && args[0] == "gen" {
		args = args[1:]
	} else if !helpAsked(args) {
		return fmt.Errorf("want the subcommand gen, got %q", args)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("gen: unexpected arguments %q", fs.Args())
	}
	bar := progress.New(os.Stderr, "bench gen", progress.Options{})
	fresh, err := synth.WriteBench(ctx, *out, *size, *seed, func(w synth.Written) {
		bar.Clear()
		fmt.Fprintf(stdout, "bench gen: %s: %.2f GB in %.1fs\n", w.Path, float64(w.Bytes)/1e9, w.Took.Seconds())
	}, bar.Update)
	bar.Done()
	if err != nil {
		return fmt.Errorf("gen -size %s: %w", *size, err)
	}
	if !fresh {
		fmt.Fprintf(stdout, "bench gen: %s already holds the %s workloads\n", *out, *size)
	}
	return nil
}
