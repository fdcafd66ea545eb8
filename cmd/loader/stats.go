package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lsio-loader/lsio-loader/coords"
	"github.com/lsio-loader/lsio-loader/sampler"
	"github.com/lsio-loader/lsio-loader/stats"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// channelDimNames are the dims taken as the channel dim of a store's
// variable when --channel-dim is not given, in order of preference.
var channelDimNames = []string{"channel", "channels", "variable", "band", "level"}

// timeDimNames are the dims --time selects along, in order of preference.
var timeDimNames = []string{"time", "init_time", "forecast_reference_time", "valid_time"}

// statsTarget is one variable to summarise and how to label its channels.
type statsTarget struct {
	source string // spec source name; "" for a store's variable
	group  *zarr.Group
	in     stats.Input
	labels []string // per channel of the selection
	pick   []int    // spec mode: the selection's channels in the spec's order
}

func runStats(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: loader stats SPEC|STORE [--variables a,b] [--time START:END] [--channel-dim DIM] [-o OUT.yaml]

Streams count, mean, std, min, max and NaN count per variable and channel
over the selection (each chunk read once, decoded on all cores) and writes
YAML. For a SPEC, the output is a spec fragment: per source, a normalise
section with mean/std per channel in the spec's channel order, ready to
paste; the other statistics are comments. START/END are indices (END
exclusive) or times like 2020-04-01T12:00 (both inclusive, as xarray's sel).`)
		fs.PrintDefaults()
	}
	variables := fs.String("variables", "", "comma-separated variables (store) or sources (spec); default all")
	timeSel := fs.String("time", "", "START:END along the time dim")
	channelDim := fs.String("channel-dim", "", "store: the dim with one summary per entry (default: channel, variable, band or level when present; \"none\" for one summary)")
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
	var names []string
	if *variables != "" {
		names = strings.Split(*variables, ",")
	}

	var targets []statsTarget
	var err error
	isSpec := false
	if info, statErr := os.Stat(target); statErr == nil && !info.IsDir() {
		isSpec = true
		targets, err = specTargets(ctx, target, names, *timeSel)
	} else {
		targets, err = storeTargets(ctx, target, names, *timeSel, *channelDim)
	}
	if err != nil {
		return err
	}

	var total int64
	for _, t := range targets {
		total += selectionBytes(t.in)
	}
	bar := newProgressBar(os.Stderr, total)
	var before int64
	results := make([]stats.Result, len(targets))
	start := time.Now()
	for i, t := range targets {
		res, err := stats.Compute(ctx, t.in, stats.Options{Workers: *workers, Progress: func(done, _ int64) { bar.update(before + done) }})
		if err != nil {
			return err
		}
		before += res.Bytes
		results[i] = res
	}
	bar.finish()

	var out io.Writer = stdout
	if *outPath != "" {
		f, err := os.Create(*outPath)
		if err != nil {
			return fmt.Errorf("stats: %w", err)
		}
		defer f.Close()
		out = f
	}
	fmt.Fprintf(out, "# loader stats %s", target)
	if *timeSel != "" {
		fmt.Fprintf(out, " --time %s", *timeSel)
	}
	var read, decoded int64
	for _, r := range results {
		read += r.Read
		decoded += r.Decoded
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(out, "\n# %.3f GB selected, %.3f GB read, %.3f GB decoded in %.2f s (%.3f GB/s of selection)\n",
		float64(total)/1e9, float64(read)/1e9, float64(decoded)/1e9, secs, float64(total)/1e9/secs)
	if isSpec {
		err = writeSpecStats(out, targets, results)
	} else {
		err = writeStoreStats(out, targets, results)
	}
	if err != nil {
		return err
	}
	if f, ok := out.(*os.File); ok && *outPath != "" {
		return f.Close()
	}
	return nil
}

func selectionBytes(in stats.Input) int64 {
	n := int64(in.Array.DType.Size)
	for d, s := range in.Array.Shape {
		if in.Start != nil {
			n *= in.Stop[d] - in.Start[d]
		} else {
			n *= s
		}
	}
	return n
}

// storeTargets picks a store's data variables: arrays of two or more dims
// that no other array names as a dim or coordinate.
func storeTargets(ctx context.Context, url string, names []string, timeSel, channelDim string) ([]statsTarget, error) {
	s, err := openStore(ctx, url)
	if err != nil {
		return nil, err
	}
	g, err := zarr.OpenGroup(ctx, s, "")
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	if names == nil {
		coords := map[string]bool{}
		for _, a := range g.Arrays {
			for _, d := range a.Dims {
				coords[d] = true
			}
			if c, ok := a.Attrs["coordinates"].(string); ok {
				for _, n := range strings.Fields(c) {
					coords[n] = true
				}
			}
		}
		for _, n := range g.ArrayNames() {
			if a, _ := g.Array(n); a != nil && len(a.Shape) >= 2 && !coords[n] {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("stats: store %s has no data variables (arrays with 2+ dims that are not coordinates)", url)
		}
	}
	var out []statsTarget
	for _, n := range names {
		a, err := g.Array(n)
		if err != nil {
			return nil, fmt.Errorf("stats: store %s: %w", url, err)
		}
		cd := -1
		switch channelDim {
		case "none":
		case "":
			for _, want := range channelDimNames {
				if i := slices.Index(a.Dims, want); i >= 0 {
					cd = i
					break
				}
			}
		default:
			if cd = slices.Index(a.Dims, channelDim); cd < 0 {
				return nil, fmt.Errorf("stats: --channel-dim %q: array %s has dims %v", channelDim, a, a.Dims)
			}
		}
		t := statsTarget{group: g, in: stats.Input{Name: n, Array: a, ChannelDim: cd}}
		if err := selectTime(ctx, &t, timeSel, ""); err != nil {
			return nil, err
		}
		t.labels = channelLabels(ctx, g, t.in)
		out = append(out, t)
	}
	return out, nil
}

// specTargets summarises each source of a spec along its channel dim (one
// summary for a generic source, as its normalise section takes).
func specTargets(ctx context.Context, path string, names []string, timeSel string) ([]statsTarget, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	spec, err := sampler.ParseSpec(data, dir)
	if err != nil {
		return nil, fmt.Errorf("stats: spec %s: %w", path, err)
	}
	if names == nil {
		for n := range spec.Sources {
			names = append(names, n)
		}
		slices.Sort(names)
	}
	var out []statsTarget
	for _, n := range names {
		src, ok := spec.Sources[n]
		if !ok {
			return nil, fmt.Errorf("stats: spec %s has no source %q", path, n)
		}
		s, err := openStore(ctx, src.Store)
		if err != nil {
			return nil, fmt.Errorf("stats: sources.%s.store: %w", n, err)
		}
		g, err := zarr.OpenGroup(ctx, s, "")
		if err != nil {
			return nil, fmt.Errorf("stats: sources.%s.store: %w", n, err)
		}
		a, err := g.Array(src.Array)
		if err != nil {
			return nil, fmt.Errorf("stats: sources.%s.array: %w", n, err)
		}
		t := statsTarget{source: n, group: g, in: stats.Input{Name: src.Array, Array: a, ChannelDim: -1}}
		timeDim := ""
		if d := src.Dims; d != nil {
			timeDim = cmpOr(d.Time, d.InitTime)
			if d.Channel != "" {
				if t.in.ChannelDim = slices.Index(a.Dims, d.Channel); t.in.ChannelDim < 0 {
					return nil, fmt.Errorf("stats: sources.%s.dims.channel: %s has no dim %q", n, a, d.Channel)
				}
			}
		}
		if err := selectTime(ctx, &t, timeSel, timeDim); err != nil {
			return nil, err
		}
		t.labels = channelLabels(ctx, g, t.in)
		if len(src.Channels) > 0 {
			for i, want := range src.Channels {
				j := slices.Index(t.labels, want)
				if j < 0 {
					return nil, fmt.Errorf("stats: sources.%s.channels[%d]: no channel %q (have %v)", n, i, want, t.labels)
				}
				t.pick = append(t.pick, j)
			}
		}
		out = append(out, t)
	}
	return out, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// selectTime narrows t's selection along its time dim to START:END.
func selectTime(ctx context.Context, t *statsTarget, sel, timeDim string) error {
	if sel == "" {
		return nil
	}
	a := t.in.Array
	td := -1
	if timeDim != "" {
		td = slices.Index(a.Dims, timeDim)
	} else {
		for _, want := range timeDimNames {
			if td = slices.Index(a.Dims, want); td >= 0 {
				break
			}
		}
	}
	if td < 0 {
		return fmt.Errorf("stats: --time: array %s has no time dim (dims %v)", a, a.Dims)
	}
	n := a.Shape[td]
	start, stop, err := parseTimeRange(sel, n, func() ([]int64, error) {
		c, err := coords.Read(ctx, t.group, a.Dims[td])
		if err != nil {
			return nil, err
		}
		times, err := c.Times()
		if err != nil {
			return nil, fmt.Errorf("coordinate %s: %w", a.Dims[td], err)
		}
		return times, nil
	})
	if err != nil {
		return fmt.Errorf("stats: --time %q: %w", sel, err)
	}
	t.in.Start = make([]int64, len(a.Shape))
	t.in.Stop = slices.Clone(a.Shape)
	t.in.Start[td], t.in.Stop[td] = start, stop
	return nil
}

// parseTimeRange turns START:END into [start, stop) indices along a dim of
// n steps. Bounds are indices (END exclusive) or times looked up in the
// sorted coordinate that times returns (both inclusive, as xarray's sel).
// Times hold colons too, so it splits at the first colon that leaves two
// valid bounds.
func parseTimeRange(sel string, n int64, times func() ([]int64, error)) (start, stop int64, err error) {
	var coord []int64
	bound := func(s string, end bool) (int64, error) {
		if s == "" {
			if end {
				return n, nil
			}
			return 0, nil
		}
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, nil
		}
		ns, err := parseTime(s)
		if err != nil {
			return 0, err
		}
		if coord == nil {
			if coord, err = times(); err != nil {
				return 0, err
			}
			if int64(len(coord)) != n {
				return 0, fmt.Errorf("time coordinate has %d values for %d steps", len(coord), n)
			}
		}
		if end {
			ns++
		}
		i, _ := slices.BinarySearch(coord, ns)
		return int64(i), nil
	}
	err = errors.New("want START:END")
	for i := range len(sel) {
		if sel[i] != ':' {
			continue
		}
		if start, err = bound(sel[:i], false); err == nil {
			if stop, err = bound(sel[i+1:], true); err == nil {
				break
			}
		}
	}
	if err != nil {
		return 0, 0, err
	}
	if start < 0 || stop > n || start >= stop {
		return 0, 0, fmt.Errorf("selects nothing of the %d steps", n)
	}
	return start, stop, nil
}

func parseTime(s string) (int64, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixNano(), nil
		}
	}
	return 0, fmt.Errorf("%q is neither an index nor a time like 2020-04-01T12:00", s)
}

// channelLabels names the selection's channels from the channel dim's
// coordinate when there is one, else by index.
func channelLabels(ctx context.Context, g *zarr.Group, in stats.Input) []string {
	if in.ChannelDim < 0 {
		return []string{"all"}
	}
	a := in.Array
	lo, hi := int64(0), a.Shape[in.ChannelDim]
	if in.Start != nil {
		lo, hi = in.Start[in.ChannelDim], in.Stop[in.ChannelDim]
	}
	labels := make([]string, 0, hi-lo)
	var all []string
	if c, err := coords.Read(ctx, g, a.Dims[in.ChannelDim]); err == nil && int64(c.Len()) == a.Shape[in.ChannelDim] {
		if s, err := c.Strings(); err == nil {
			all = s
		} else if f, err := c.Float64s(); err == nil {
			for _, v := range f {
				all = append(all, strconv.FormatFloat(v, 'g', -1, 64))
			}
		}
	}
	for i := lo; i < hi; i++ {
		if all != nil {
			labels = append(labels, all[i])
		} else {
			labels = append(labels, strconv.FormatInt(i, 10))
		}
	}
	return labels
}

func yamlFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return ".nan"
	case math.IsInf(v, 1):
		return ".inf"
	case math.IsInf(v, -1):
		return "-.inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func yamlList(vals []float64) string {
	s := make([]string, len(vals))
	for i, v := range vals {
		s[i] = yamlFloat(v)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func yamlString(s string) string { return strconv.Quote(s) }

// writeSpecStats writes a spec fragment: sources.<name>.normalise.
func writeSpecStats(w io.Writer, targets []statsTarget, results []stats.Result) error {
	fmt.Fprintln(w, "sources:")
	for i, t := range targets {
		chans := results[i].Channels
		idx := t.pick
		if idx == nil {
			for k := range chans {
				idx = append(idx, k)
			}
		}
		var means, stds []float64
		fmt.Fprintf(w, "  %s:\n", t.source)
		for _, k := range idx {
			m := chans[k]
			means, stds = append(means, m.Mean), append(stds, m.Std())
			fmt.Fprintf(w, "    # %s: count %d, NaN %d, min %s, max %s\n", t.labels[k], m.Count, m.NaNs, yamlFloat(m.Min), yamlFloat(m.Max))
		}
		fmt.Fprintf(w, "    normalise:\n      mean: %s\n      std: %s\n", yamlList(means), yamlList(stds))
	}
	return nil
}

// writeStoreStats writes every statistic per variable and channel.
func writeStoreStats(w io.Writer, targets []statsTarget, results []stats.Result) error {
	fmt.Fprintln(w, "variables:")
	for i, t := range targets {
		r := results[i]
		fmt.Fprintf(w, "  %s:\n", yamlString(t.in.Name))
		fmt.Fprintf(w, "    dims: [%s]\n", strings.Join(t.in.Array.Dims, ", "))
		if t.in.ChannelDim >= 0 {
			fmt.Fprintf(w, "    channel_dim: %s\n", t.in.Array.Dims[t.in.ChannelDim])
		}
		if t.in.Start != nil {
			fmt.Fprintf(w, "    start: %v\n    stop: %v\n", strings.Join(strings.Fields(fmt.Sprint(t.in.Start)), ", "), strings.Join(strings.Fields(fmt.Sprint(t.in.Stop)), ", "))
		}
		quoted := make([]string, len(t.labels))
		for k, l := range t.labels {
			quoted[k] = yamlString(l)
		}
		fmt.Fprintf(w, "    channels: [%s]\n", strings.Join(quoted, ", "))
		var count, nans []string
		var mean, std, lo, hi []float64
		for _, m := range r.Channels {
			count = append(count, strconv.FormatInt(m.Count, 10))
			nans = append(nans, strconv.FormatInt(m.NaNs, 10))
			mean, std = append(mean, m.Mean), append(std, m.Std())
			if m.Count == 0 {
				m.Min, m.Max = math.NaN(), math.NaN()
			}
			lo, hi = append(lo, m.Min), append(hi, m.Max)
		}
		fmt.Fprintf(w, "    count: [%s]\n    nan_count: [%s]\n", strings.Join(count, ", "), strings.Join(nans, ", "))
		fmt.Fprintf(w, "    mean: %s\n    std: %s\n    min: %s\n    max: %s\n", yamlList(mean), yamlList(std), yamlList(lo), yamlList(hi))
	}
	return nil
}

// progressBar draws a progress bar with throughput and ETA on a terminal;
// on anything else it draws nothing.
type progressBar struct {
	w            *os.File
	total        int64
	start, drawn time.Time
}

func newProgressBar(w *os.File, total int64) *progressBar {
	info, err := w.Stat()
	if err != nil || info.Mode()&os.ModeCharDevice == 0 || total <= 0 {
		return &progressBar{}
	}
	return &progressBar{w: w, total: total, start: time.Now()}
}

func (p *progressBar) update(done int64) {
	if p.w == nil || time.Since(p.drawn) < 100*time.Millisecond {
		return
	}
	p.drawn = time.Now()
	frac := float64(done) / float64(p.total)
	secs := time.Since(p.start).Seconds()
	eta := "?"
	if frac > 0 {
		eta = (time.Duration(secs/frac*(1-frac)) * time.Second).Round(time.Second).String()
	}
	const width = 30
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%% %.2f/%.2f GB %.0f MB/s ETA %s ", strings.Repeat("#", n), strings.Repeat(" ", width-n),
		100*frac, float64(done)/1e9, float64(p.total)/1e9, float64(done)/1e6/max(secs, 1e-9), eta)
}

func (p *progressBar) finish() {
	if p.w != nil {
		p.drawn = time.Time{}
		p.update(p.total)
		fmt.Fprintln(p.w)
	}
}
