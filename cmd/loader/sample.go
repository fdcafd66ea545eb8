package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/lsio-loader/lsio-loader/cropper"
	"github.com/lsio-loader/lsio-loader/internal/plot"
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
	plotPath := fs.String("plot", "", "draw one sample's crops (a panel per source and channel, at the step nearest t0) as a PNG")
	plotIndex := fs.Int64("plot-sample", 0, "the sample --plot draws: epoch position 0..n-1")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: loader sample SPEC (-n N [-o OUT.npz] [--plot OUT.png [--plot-sample I]] | --randomness) [--seed S] [--split train] [--epoch E] [--raw]")
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
	if len(pos) != 1 || (*out == "" && *plotPath == "") == !*randomness {
		fs.Usage()
		return errors.New("want one SPEC and either -o OUT.npz (and/or --plot OUT.png) or --randomness")
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
		fmt.Fprintf(stdout, "order %s: %d samples, %d per batch, %d resident blocks of ~%.1f MiB of pool each\n", r.Order, r.Samples, plan.BatchSize, blocks, float64(bytes)/(1<<20))
		fmt.Fprintf(stdout, "within-batch spread in time:  %.3g %s (iid %.3g): %.2f× iid\n", r.Time, r.TimeUnit, r.IIDTime, r.TimeSpread)
		fmt.Fprintf(stdout, "within-batch spread in space: %.3g %s (iid %.3g): %.2f× iid\n", r.Space, r.SpaceUnit, r.IIDSpace, r.SpaceSpread)
		fmt.Fprintf(stdout, "coverage per eighth of the time axis (× uniform share): %.2f\n", r.Eighths)
		fmt.Fprintf(stdout, "crop starts reached in space: %.0f%% this epoch, %.0f%% over epochs (iid 100%%)\n", 100*r.SpaceReach, 100*r.SpaceReachEpochs)
		if r.SpaceReachEpochs < 1 && r.WidePool > 0 {
			fmt.Fprintf(stdout, "  blocks span one chunk along the space dims, so no crop straddles a chunk border there; order.pool %s or more gives blocks of two chunks, which reach every start over epochs\n", sampler.ByteSize(r.WidePool))
		}
		return nil
	}
	epochLen, err := plan.EpochLen(*split)
	if err != nil {
		return err
	}
	if *n <= 0 || *n > epochLen {
		return fmt.Errorf("-n %d: want 1..%d, the epoch's length", *n, epochLen)
	}
	if *plotPath != "" && (*plotIndex < 0 || *plotIndex >= *n) {
		return fmt.Errorf("--plot-sample %d: want 0..%d (-n %d samples)", *plotIndex, *n-1, *n)
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
	if *plotPath != "" {
		if err := writeSamplePlot(*plotPath, plan, &b, int(*plotIndex)); err != nil {
			return err
		}
	}
	if *out == "" {
		return nil
	}
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

func writeSamplePlot(path string, plan *sampler.Plan, b *cropper.Batch, i int) error {
	fig, err := sampleFigure(plan, b, i)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := fig.WritePNG(&buf); err != nil {
		return fmt.Errorf("--plot: %w", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--plot: %w", err)
	}
	return nil
}

// sampleFigure draws sample i of b as lsio_loader.plot_sample does: per
// source, a panel per channel at the source's last step at or before t0.
func sampleFigure(plan *sampler.Plan, b *cropper.Batch, i int) (plot.Figure, error) {
	smp := b.Samples[i]
	fig := plot.Figure{Title: []string{fmt.Sprintf("sample %d (epoch index %d) - t0 %s", i, smp.Index, fmtTime(smp.T0))}}
	if !math.IsNaN(smp.X) {
		fig.Title = append(fig.Title, fmt.Sprintf("x %.0f m, y %.0f m - %.3fN %.3fE", smp.X, smp.Y, smp.Lat, smp.Lon))
	}
	for k, src := range plan.Sources {
		shape := src.OutShape
		per := int64(1)
		for _, d := range shape {
			per *= d
		}
		size := int64(len(b.Data[k])) / (int64(len(b.Samples)) * max(per, 1))
		vals, err := plot.Float64s(b.DTypes[k], b.Data[k][int64(i)*per*size:int64(i+1)*per*size])
		if err != nil {
			return plot.Figure{}, fmt.Errorf("--plot: source %s: %w", src.Name, err)
		}
		// (T, C, H, W) for a georeferenced source; a generic one's leading
		// dims become time and channels.
		t, h, w := int64(1), int64(1), int64(1)
		switch nd := len(shape); {
		case nd >= 3:
			t, h, w = shape[0], shape[nd-2], shape[nd-1]
		case nd == 2:
			h, w = shape[0], shape[1]
		case nd == 1:
			w = shape[0]
		}
		c := per / max(t*h*w, 1)
		step, label := t-1, ""
		if times := plan.TimeLabels(k, smp.Windows[k]); int64(len(times)) == t {
			if smp.T0 != sampler.NaT {
				for j, ts := range times {
					if ts != sampler.NaT && ts <= smp.T0 {
						step = int64(j)
					}
				}
			}
			label = fmtTime(times[step])
			if times[step] != sampler.NaT && smp.T0 != sampler.NaT {
				label += fmt.Sprintf(" (t0%+.0f min)", float64(times[step]-smp.T0)/60e9)
			}
		}
		for ch := range c {
			off := (step*c + ch) * h * w
			fig.Panels = append(fig.Panels, plot.Panel{Title: []string{fmt.Sprintf("%s ch %d", src.Name, ch), label},
				W: int(w), H: int(h), Values: vals[off : off+h*w]})
		}
	}
	return fig, nil
}

func fmtTime(ns int64) string {
	if ns == sampler.NaT {
		return "no time"
	}
	return time.Unix(0, ns).UTC().Format("2006-01-02 15:04")
}
