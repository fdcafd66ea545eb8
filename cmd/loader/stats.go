package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/lsio-loader/lsio-loader/stats"
	"github.com/lsio-loader/lsio-loader/stats/report"
)

func runStats(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "merge" {
		return runStatsMerge(args[1:], stdout)
	}
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: loader stats SPEC|STORE [--variables a,b] [--time START:END] [--channel-dim DIM] [-shard I/N] [-o OUT.yaml]
       loader stats merge PART.yaml... [-o OUT.yaml]

Streams count, mean, std, min, max and NaN count per variable and channel
over the selection (each chunk read once, decoded on all cores) and writes
YAML. For a SPEC, the output is a spec fragment: per source, a normalise
section with mean/std per channel in the spec's channel order, ready to
paste; the other statistics are comments. START/END are indices (END
exclusive) or times like 2020-04-01T12:00 (both inclusive, as xarray's sel).
Values are CF-decoded as xarray does (a spec source's decode_cf: false, or
--decode-cf=false for a store, keeps the stored values).

With -shard I/N (0 ≤ I < N) it computes only shard I: the selection's
chunks along the time dim dealt out in N contiguous runs, no chunk split
between shards. It writes partial statistics (count, mean, M2, min, max per
channel); "loader stats merge" joins all N into what one run writes.`)
		fs.PrintDefaults()
	}
	variables := fs.String("variables", "", "comma-separated variables (store) or sources (spec); default all")
	timeSel := fs.String("time", "", "START:END along the time dim")
	channelDim := fs.String("channel-dim", "", "store: the dim with one summary per entry (default: channel, variable, band or level when present; \"none\" for one summary)")
	decodeCF := fs.Bool("decode-cf", true, "store: CF-decode values (fill values to NaN, then scale_factor and add_offset) as xarray does")
	outPath := fs.String("o", "", "write the YAML here instead of stdout")
	workers := fs.Int("workers", 0, "chunk groups read at once (default GOMAXPROCS)")
	shard := fs.String("shard", "", "compute shard I of N (I/N, 0 ≤ I < N) as partial statistics for loader stats merge")
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
	if *shard != "" {
		sh, err := stats.ParseShard(*shard)
		if err != nil {
			return fmt.Errorf("-shard: %w", err)
		}
		req.Shard = sh
	}
	bar := newProgressBar(os.Stderr)
	req.Progress = bar.update
	// Buffered, so that a failed run leaves no half-written -o file.
	var out bytes.Buffer
	err := report.Run(ctx, req, &out)
	bar.finish()
	if err != nil {
		return err
	}
	return writeOutput(*outPath, out.Bytes(), stdout)
}

func writeOutput(path string, data []byte, stdout io.Writer) error {
	if path == "" {
		_, err := stdout.Write(data)
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	return nil
}

func runStatsMerge(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("stats merge", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: loader stats merge PART.yaml... [-o OUT.yaml]

Joins the partial statistics of all N shards of one run (loader stats
-shard I/N) exactly (Chan et al.'s parallel update of count, mean and M2)
and writes what the unsharded run writes.`)
		fs.PrintDefaults()
	}
	outPath := fs.String("o", "", "write the YAML here instead of stdout")
	// Flags may come before, between or after the files.
	var files []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if rest = fs.Args(); len(rest) == 0 {
			break
		}
		files, rest = append(files, rest[0]), rest[1:]
	}
	if len(files) == 0 {
		return errors.New("want the partial statistics files of every shard (see loader stats merge -h)")
	}
	parts := make([]report.Part, len(files))
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("merge: %w", err)
		}
		parts[i] = report.Part{Name: f, Data: data}
	}
	var out bytes.Buffer
	if err := report.Merge(parts, &out); err != nil {
		return err
	}
	return writeOutput(*outPath, out.Bytes(), stdout)
}

// progressBar draws a progress bar with throughput and ETA on a terminal;
// on anything else it draws nothing.
type progressBar struct {
	w            *os.File
	done, total  int64
	start, drawn time.Time
}

func newProgressBar(w *os.File) *progressBar {
	if info, err := w.Stat(); err != nil || info.Mode()&os.ModeCharDevice == 0 {
		return &progressBar{}
	}
	return &progressBar{w: w, start: time.Now()}
}

func (p *progressBar) update(done, total int64) {
	p.done, p.total = done, total
	if p.w == nil || total <= 0 || time.Since(p.drawn) < 100*time.Millisecond {
		return
	}
	p.drawn = time.Now()
	frac := float64(done) / float64(total)
	secs := time.Since(p.start).Seconds()
	eta := "?"
	if frac > 0 {
		eta = (time.Duration(secs/frac*(1-frac)) * time.Second).Round(time.Second).String()
	}
	const width = 30
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%% %.2f/%.2f GB %.0f MB/s ETA %s ", strings.Repeat("#", n), strings.Repeat(" ", width-n),
		100*frac, float64(done)/1e9, float64(total)/1e9, float64(done)/1e6/max(secs, 1e-9), eta)
}

func (p *progressBar) finish() {
	if p.w != nil && p.total > 0 {
		p.drawn = time.Time{}
		p.update(p.total, p.total)
		fmt.Fprintln(p.w)
	}
}
