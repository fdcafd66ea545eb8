// Package report binds the statistics to what `loader stats` is asked
// for: a spec's sources or a store's data variables, a time range, channel
// labels. It computes them with stats.Compute and writes YAML: for a spec,
// a fragment with a normalise section per source, ready to paste; for a
// store, every statistic per variable and channel.
package report

import (
	"context"
	"errors"
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

// target is one variable to summarise and how to label its channels.
type target struct {
	source string // spec source name; "" for a store's variable
	group  *zarr.Group
	in     stats.Input
	labels []string // per channel of the selection
	pick   []int    // spec mode: the selection's channels in the spec's order
	// timeDim is the spec source's time dim; "" for a store's variable,
	// whose time dim is the first of timeDimNames it has.
	timeDim string
	// selStart and selStop are the selection before sharding (nil: whole).
	selStart, selStop []int64
}

// Request is one `loader stats` invocation.
type Request struct {
	// Target is a spec file or a store (path or URL).
	Target string
	// Variables are the store's variables or the spec's sources to
	// summarise; nil: all of them.
	Variables []string
	// Time is START:END along the time dim; "" selects all.
	Time string
	// ChannelDim names a store's dim with one summary per entry (default:
	// channel, variable, band or level when present; "none" for one).
	ChannelDim string
	// DecodeCF summarises a store's values as xarray decodes them; a spec's
	// sources say it with decode_cf.
	DecodeCF bool
	// Workers is how many chunk groups are read at once (0: GOMAXPROCS).
	Workers int
	// Open opens a store from a path or URL.
	Open func(ctx context.Context, url string) (zarr.Store, error)
	// Progress, when set, hears the selection bytes done and in all.
	Progress func(done, total int64)
	// Shard, when its Count is set, computes only that shard of every
	// selection (whole chunks along the time dim) and writes the mergeable
	// partial statistics that Merge joins.
	Shard stats.Shard
}

// Run computes the statistics req asks for and writes them to w as YAML.
func Run(ctx context.Context, req Request, w io.Writer) error {
	var targets []target
	var err error
	isSpec := false
	if info, statErr := os.Stat(req.Target); statErr == nil && !info.IsDir() {
		isSpec = true
		targets, err = specTargets(ctx, req)
	} else {
		targets, err = storeTargets(ctx, req)
	}
	if err != nil {
		return err
	}
	for i := range targets {
		t := &targets[i]
		t.selStart, t.selStop = t.in.Start, t.in.Stop
		if req.Shard.Count > 0 {
			if err := shardTarget(t, req.Shard); err != nil {
				return err
			}
		}
	}

	var total int64
	for _, t := range targets {
		total += selectionBytes(t.in)
	}
	var before int64
	results := make([]stats.Result, len(targets))
	start := time.Now()
	for i, t := range targets {
		opts := stats.Options{Workers: req.Workers}
		if req.Progress != nil {
			opts.Progress = func(done, _ int64) { req.Progress(before+done, total) }
		}
		res, err := stats.Compute(ctx, t.in, opts)
		if err != nil {
			return err
		}
		before += res.Bytes
		results[i] = res
	}

	fmt.Fprintf(w, "# loader stats %s", req.Target)
	if req.Time != "" {
		fmt.Fprintf(w, " --time %s", req.Time)
	}
	if req.Shard.Count > 0 {
		fmt.Fprintf(w, " -shard %s", req.Shard)
	}
	var read, decoded int64
	for _, r := range results {
		read += r.Read
		decoded += r.Decoded
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(w, "\n# %.3f GB selected, %.3f GB read, %.3f GB decoded in %.2f s (%.3f GB/s of selection)\n",
		float64(total)/1e9, float64(read)/1e9, float64(decoded)/1e9, secs, float64(total)/1e9/secs)
	vars := make([]variable, len(targets))
	for i, t := range targets {
		vars[i] = variable{Source: t.source, Name: t.in.Name, Dims: t.in.Array.Dims, ChannelDim: t.in.ChannelDim,
			Start: t.selStart, Stop: t.selStop, Labels: t.labels, Pick: t.pick, Channels: results[i].Channels}
	}
	if req.Shard.Count > 0 {
		kind := kindStore
		if isSpec {
			kind = kindSpec
		}
		h := partialHeader{Target: req.Target, Kind: kind, Time: req.Time, Shard: req.Shard.String(),
			SelectedBytes: total, ReadBytes: read, DecodedBytes: decoded}
		return writePartial(w, h, targets, vars)
	}
	return writeStats(w, isSpec, vars)
}

// variable is one summarised variable as the output shows it.
type variable struct {
	Source     string // spec source; "" for a store's variable
	Name       string
	Dims       []string
	ChannelDim int
	// Start and Stop are the selection (nil: the whole array).
	Start, Stop []int64
	Labels      []string
	Pick        []int
	Channels    []stats.Moments
}

func writeStats(w io.Writer, isSpec bool, vars []variable) error {
	if isSpec {
		return writeSpecStats(w, vars)
	}
	return writeStoreStats(w, vars)
}

// shardTarget narrows t's selection to the shard's whole chunks along its
// time dim.
func shardTarget(t *target, sh stats.Shard) error {
	a := t.in.Array
	td := timeDimIndex(a, t.timeDim)
	if td < 0 {
		return fmt.Errorf("stats: -shard: array %s has no time dim to shard along (dims %v)", a, a.Dims)
	}
	if t.in.Start == nil {
		t.in.Start = make([]int64, len(a.Shape))
		t.in.Stop = slices.Clone(a.Shape)
	} else {
		t.in.Start, t.in.Stop = slices.Clone(t.in.Start), slices.Clone(t.in.Stop)
	}
	t.in.Start[td], t.in.Stop[td] = sh.Range(t.in.Start[td], t.in.Stop[td], a.ChunkShape[td])
	return nil
}

// timeDimIndex is the index of timeDim in a's dims, or when timeDim is "",
// of the first of timeDimNames a has; -1 when there is none.
func timeDimIndex(a *zarr.Array, timeDim string) int {
	if timeDim != "" {
		return slices.Index(a.Dims, timeDim)
	}
	for _, want := range timeDimNames {
		if td := slices.Index(a.Dims, want); td >= 0 {
			return td
		}
	}
	return -1
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
func storeTargets(ctx context.Context, req Request) ([]target, error) {
	url, names, timeSel, channelDim := req.Target, req.Variables, req.Time, req.ChannelDim
	s, err := req.Open(ctx, url)
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
	var out []target
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
		t := target{group: g, in: stats.Input{Name: n, Array: a, ChannelDim: cd, DecodeCF: req.DecodeCF}}
		if err := selectTime(ctx, &t, timeSel); err != nil {
			return nil, err
		}
		t.labels = channelLabels(ctx, g, t.in)
		out = append(out, t)
	}
	return out, nil
}

// specTargets summarises each source of a spec along its channel dim (one
// summary for a generic source, as its normalise section takes).
func specTargets(ctx context.Context, req Request) ([]target, error) {
	path, names, timeSel := req.Target, req.Variables, req.Time
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
	var out []target
	for _, n := range names {
		src, ok := spec.Sources[n]
		if !ok {
			return nil, fmt.Errorf("stats: spec %s has no source %q", path, n)
		}
		s, err := req.Open(ctx, src.Store)
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
		decode := src.DecodeCF == nil || *src.DecodeCF
		t := target{source: n, group: g, in: stats.Input{Name: src.Array, Array: a, ChannelDim: -1, DecodeCF: decode}}
		if d := src.Dims; d != nil {
			t.timeDim = cmpOr(d.Time, d.InitTime)
			if d.Channel != "" {
				if t.in.ChannelDim = slices.Index(a.Dims, d.Channel); t.in.ChannelDim < 0 {
					return nil, fmt.Errorf("stats: sources.%s.dims.channel: %s has no dim %q", n, a, d.Channel)
				}
			}
		}
		if err := selectTime(ctx, &t, timeSel); err != nil {
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
func selectTime(ctx context.Context, t *target, sel string) error {
	if sel == "" {
		return nil
	}
	a := t.in.Array
	td := timeDimIndex(a, t.timeDim)
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
func writeSpecStats(w io.Writer, vars []variable) error {
	fmt.Fprintln(w, "sources:")
	for _, t := range vars {
		chans := t.Channels
		idx := t.Pick
		if idx == nil {
			for k := range chans {
				idx = append(idx, k)
			}
		}
		var means, stds []float64
		fmt.Fprintf(w, "  %s:\n", t.Source)
		for _, k := range idx {
			m := chans[k]
			means, stds = append(means, m.Mean), append(stds, m.Std())
			fmt.Fprintf(w, "    # %s: count %d, NaN %d, min %s, max %s\n", t.Labels[k], m.Count, m.NaNs, yamlFloat(m.Min), yamlFloat(m.Max))
		}
		fmt.Fprintf(w, "    normalise:\n      mean: %s\n      std: %s\n", yamlList(means), yamlList(stds))
	}
	return nil
}

// writeStoreStats writes every statistic per variable and channel.
func writeStoreStats(w io.Writer, vars []variable) error {
	fmt.Fprintln(w, "variables:")
	for _, t := range vars {
		fmt.Fprintf(w, "  %s:\n", yamlString(t.Name))
		fmt.Fprintf(w, "    dims: [%s]\n", strings.Join(t.Dims, ", "))
		if t.ChannelDim >= 0 {
			fmt.Fprintf(w, "    channel_dim: %s\n", t.Dims[t.ChannelDim])
		}
		if t.Start != nil {
			fmt.Fprintf(w, "    start: %v\n    stop: %v\n", strings.Join(strings.Fields(fmt.Sprint(t.Start)), ", "), strings.Join(strings.Fields(fmt.Sprint(t.Stop)), ", "))
		}
		quoted := make([]string, len(t.Labels))
		for k, l := range t.Labels {
			quoted[k] = yamlString(l)
		}
		fmt.Fprintf(w, "    channels: [%s]\n", strings.Join(quoted, ", "))
		var count, nans []string
		var mean, std, lo, hi []float64
		for _, m := range t.Channels {
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
