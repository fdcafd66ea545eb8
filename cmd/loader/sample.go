package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/lsio-loader/lsio-loader/cropper"
	"github.com/lsio-loader/lsio-loader/sampler"
)

// runSample writes the first N samples of an epoch of an experiment, with
// their provenance, to an .npz file; with --randomness it prints how spread
// the epoch's batches are against the iid order instead.
func runSample(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("sample", args, stdout)
	n := fs.Int64("n", 8, "number of samples: epoch positions 0..n-1")
	seed := fs.String("seed", "", "override the spec's seed")
	split := fs.String("split", "train", "split to sample")
	epoch := fs.Int64("epoch", 0, "epoch")
	raw := fs.Bool("raw", false, "stored values in the stored dtype: no masking, normalisation or conversion")
	out := fs.String("o", "", "output .npz file")
	randomness := fs.Bool("randomness", false, "print the epoch's within-batch spread and time coverage against the iid order")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: loader sample SPEC (-n N -o OUT.npz | --randomness) [--seed S] [--split train] [--epoch E] [--raw]")
		fs.PrintDefaults()
	}
	// Flags may come before or after the spec.
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if rest = fs.Args(); len(rest) == 0 {
			break
		}
		pos, rest = append(pos, rest[0]), rest[1:]
	}
	if len(pos) != 1 || (*out == "") == !*randomness {
		fs.Usage()
		return errors.New("want one SPEC and either -o OUT.npz or --randomness")
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	spec, err := sampler.ParseSpec(data, filepath.Dir(pos[0]))
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	if *seed != "" {
		if spec.Seed, err = strconv.ParseUint(*seed, 10, 64); err != nil {
			return fmt.Errorf("--seed %q: %w", *seed, err)
		}
	}
	plan, err := sampler.NewPlan(ctx, spec, openStore)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	if *randomness {
		r, err := plan.Randomness(*split, *epoch)
		if err != nil {
			return err
		}
		blocks, bytes := plan.Resident()
		fmt.Fprintf(stdout, "order %s: %d samples, %d per batch, %d resident blocks of ~%.1f MiB\n", r.Order, r.Samples, plan.BatchSize, blocks, float64(bytes)/(1<<20))
		fmt.Fprintf(stdout, "within-batch spread in time:  %.3g %s (iid %.3g): %.2f× iid\n", r.Time, r.TimeUnit, r.IIDTime, r.TimeSpread)
		fmt.Fprintf(stdout, "within-batch spread in space: %.3g %s (iid %.3g): %.2f× iid\n", r.Space, r.SpaceUnit, r.IIDSpace, r.SpaceSpread)
		fmt.Fprintf(stdout, "coverage per eighth of the time axis (× uniform share): %.2f\n", r.Eighths)
		return nil
	}
	epochLen, err := plan.EpochLen(*split)
	if err != nil {
		return err
	}
	if *n <= 0 || *n > epochLen {
		return fmt.Errorf("-n %d: want 1..%d, the epoch's length", *n, epochLen)
	}
	samples, err := plan.Samples(*split, *epoch, *n)
	if err != nil {
		return err
	}
	var b cropper.Batch
	if err := cropper.New(plan, cropper.Options{Raw: *raw}).Crop(ctx, samples, &b); err != nil {
		return err
	}
	amp := b.Stats.ReadAmplification()
	slog.Info("sampled", "spec", pos[0], "n", *n, "chunks", b.Stats.Chunks, "bytes_read", b.Stats.BytesRead,
		"bytes_decoded", b.Stats.BytesDecoded, "bytes_delivered", b.Stats.BytesDelivered, "read_amplification", amp)
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := cropper.WriteNPZ(w, plan, &b, amp); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", *out, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", *out, err)
	}
	return f.Close()
}
