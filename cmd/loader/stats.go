package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/lsio-loader/lsio-loader/internal/progress"
	"github.com/lsio-loader/lsio-loader/stats/report"
)

func runStats(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("stats", args, stdout)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: loader stats SPEC|STORE [--variables a,b] [--time START:END] [--channel-dim DIM] [-o OUT.yaml]

Streams count, mean, std, min, max and NaN count per variable and channel
over the selection (each chunk read once, decoded on all cores) and writes
YAML. For a SPEC, the output is a spec fragment: per source, a normalise
section with mean/std per channel in the spec's channel order, ready to
paste; the other statistics are comments. START/END are indices (END
exclusive) or times like 2020-04-01T12:00 (both inclusive, as xarray's sel).
Values are CF-decoded as xarray does (a spec source's decode_cf: false, or
--decode-cf=false for a store, keeps the stored values).`)
		fs.PrintDefaults()
	}
	variables := fs.String("variables", "", "comma-separated variables (store) or sources (spec); default all")
	timeSel := fs.String("time", "", "START:END along the time dim")
	channelDim := fs.String("channel-dim", "", "store: the dim with one summary per entry (default: channel, variable, band or level when present; \"none\" for one summary)")
	decodeCF := fs.Bool("decode-cf", true, "store: CF-decode values (fill values to NaN, then scale_factor and add_offset) as xarray does")
	outPath := fs.String("o", "", "write the YAML here instead of stdout")
	workers := fs.Int("workers", 0, "chunk groups read at once (default GOMAXPROCS)")
	target, rest := "", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		target, rest = args[0], args[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if target == "" && fs.NArg() > 0 {
		target = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
	}
	if target == "" || fs.NArg() > 0 {
		return errors.New("want one SPEC or STORE (see loader stats -h)")
	}
	req := report.Request{Target: target, Time: *timeSel, ChannelDim: *channelDim, DecodeCF: *decodeCF, Workers: *workers, Open: openStore}
	if *variables != "" {
		req.Variables = strings.Split(*variables, ",")
	}
	bar := progress.New(os.Stderr, "stats", progress.Options{})
	req.Progress = bar.Update
	// Buffered, so that a failed run leaves no half-written -o file.
	var out bytes.Buffer
	err := report.Run(ctx, req, &out)
	bar.Done()
	if err != nil {
		return err
	}
	if *outPath == "" {
		_, err = stdout.Write(out.Bytes())
		return err
	}
	if err := os.WriteFile(*outPath, out.Bytes(), 0o644); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	return nil
}
