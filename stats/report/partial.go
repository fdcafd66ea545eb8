package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/lsio-loader/lsio-loader/stats"
)

const (
	kindSpec  = "spec"
	kindStore = "store"
)

// partialHeader says what a partial file is a shard of, so that Merge only
// joins shards of one run.
type partialHeader struct {
	Target string `yaml:"target"`
	Kind   string `yaml:"kind"`
	Time   string `yaml:"time,omitempty"`
	Shard  string `yaml:"shard"`
	// The shard's bytes: its selection (uncompressed), what it read and
	// what it decoded.
	SelectedBytes int64 `yaml:"selected_bytes"`
	ReadBytes     int64 `yaml:"read_bytes"`
	DecodedBytes  int64 `yaml:"decoded_bytes"`
}

// partialVar is one variable's statistics over a shard in mergeable form:
// M2 (the sum of squared deviations) rather than std, min and max as they
// are even with no values. Floats are written to round trip exactly.
type partialVar struct {
	Source     string   `yaml:"source,omitempty"`
	Name       string   `yaml:"name"`
	Dims       []string `yaml:"dims,flow"`
	ChannelDim int      `yaml:"channel_dim"`
	// Start and Stop are the whole run's selection (absent: the whole
	// array); ShardStart and ShardStop this shard's part of it.
	Start      []int64   `yaml:"start,flow,omitempty"`
	Stop       []int64   `yaml:"stop,flow,omitempty"`
	ShardStart []int64   `yaml:"shard_start,flow"`
	ShardStop  []int64   `yaml:"shard_stop,flow"`
	Channels   []string  `yaml:"channels,flow"`
	Pick       []int     `yaml:"pick,flow,omitempty"`
	Count      []int64   `yaml:"count,flow"`
	NaNCount   []int64   `yaml:"nan_count,flow"`
	Mean       []float64 `yaml:"mean,flow"`
	M2         []float64 `yaml:"m2,flow"`
	Min        []float64 `yaml:"min,flow"`
	Max        []float64 `yaml:"max,flow"`
}

type partialFile struct {
	Partial   partialHeader `yaml:"partial"`
	Variables []partialVar  `yaml:"variables"`
}

func writePartial(w io.Writer, h partialHeader, targets []target, vars []variable) error {
	f := partialFile{Partial: h}
	for i, v := range vars {
		pv := partialVar{Source: v.Source, Name: v.Name, Dims: v.Dims, ChannelDim: v.ChannelDim, Start: v.Start, Stop: v.Stop,
			ShardStart: targets[i].in.Start, ShardStop: targets[i].in.Stop, Channels: v.Labels, Pick: v.Pick}
		for _, m := range v.Channels {
			pv.Count = append(pv.Count, m.Count)
			pv.NaNCount = append(pv.NaNCount, m.NaNs)
			pv.Mean = append(pv.Mean, m.Mean)
			pv.M2 = append(pv.M2, m.M2)
			pv.Min = append(pv.Min, m.Min)
			pv.Max = append(pv.Max, m.Max)
		}
		f.Variables = append(f.Variables, pv)
	}
	fmt.Fprintln(w, "# partial statistics: join all N shards with `loader stats merge`")
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	return enc.Close()
}

// parsePartial reads and checks one partial file.
func parsePartial(data []byte) (partialFile, stats.Shard, error) {
	var f partialFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return f, stats.Shard{}, errors.New("empty file, not partial statistics (from loader stats -shard I/N)")
		}
		return f, stats.Shard{}, fmt.Errorf("not partial statistics (from loader stats -shard I/N): %w", err)
	}
	h := f.Partial
	if h.Target == "" || (h.Kind != kindSpec && h.Kind != kindStore) {
		return f, stats.Shard{}, errors.New("not partial statistics (from loader stats -shard I/N): no partial.target and partial.kind")
	}
	sh, err := stats.ParseShard(h.Shard)
	if err != nil {
		return f, stats.Shard{}, fmt.Errorf("partial.shard: %w", err)
	}
	if len(f.Variables) == 0 {
		return f, stats.Shard{}, errors.New("variables: none")
	}
	for i, v := range f.Variables {
		n := len(v.Channels)
		if n == 0 {
			return f, stats.Shard{}, fmt.Errorf("variables[%d] (%s): no channels", i, v.Name)
		}
		for _, l := range []struct {
			name string
			len  int
		}{{"count", len(v.Count)}, {"nan_count", len(v.NaNCount)}, {"mean", len(v.Mean)}, {"m2", len(v.M2)}, {"min", len(v.Min)}, {"max", len(v.Max)}} {
			if l.len != n {
				return f, stats.Shard{}, fmt.Errorf("variables[%d] (%s).%s: %d values for %d channels", i, v.Name, l.name, l.len, n)
			}
		}
		if v.ChannelDim < -1 || v.ChannelDim >= len(v.Dims) {
			return f, stats.Shard{}, fmt.Errorf("variables[%d] (%s).channel_dim: %d out of range for %d dims", i, v.Name, v.ChannelDim, len(v.Dims))
		}
		if len(v.Start) != len(v.Stop) || (v.Start != nil && len(v.Start) != len(v.Dims)) {
			return f, stats.Shard{}, fmt.Errorf("variables[%d] (%s): start/stop for %d/%d of %d dims", i, v.Name, len(v.Start), len(v.Stop), len(v.Dims))
		}
		for j, p := range v.Pick {
			if p < 0 || p >= n {
				return f, stats.Shard{}, fmt.Errorf("variables[%d] (%s).pick[%d]: %d out of range for %d channels", i, v.Name, j, p, n)
			}
		}
		if v.Source == "" && h.Kind == kindSpec {
			return f, stats.Shard{}, fmt.Errorf("variables[%d] (%s): no source in the partial statistics of a spec", i, v.Name)
		}
		for k := range n {
			if v.Count[k] < 0 || v.NaNCount[k] < 0 || v.M2[k] < 0 {
				return f, stats.Shard{}, fmt.Errorf("variables[%d] (%s) channel %s: negative count or m2", i, v.Name, v.Channels[k])
			}
		}
	}
	return f, sh, nil
}

// Part is one partial statistics file: its name (for errors) and content.
type Part struct {
	Name string
	Data []byte
}

// Merge joins the partial statistics of every shard of one run (written by
// Run with Request.Shard) with the parallel update of Chan et al. and writes
// what the unsharded run writes: equal to it up to rounding (the order in
// which blocks are joined differs).
func Merge(parts []Part, w io.Writer) error {
	if len(parts) == 0 {
		return errors.New("merge: no partial statistics files")
	}
	files := make([]partialFile, len(parts))
	shards := make([]stats.Shard, len(parts))
	for i, p := range parts {
		f, sh, err := parsePartial(p.Data)
		if err != nil {
			return fmt.Errorf("merge: %s: %w", p.Name, err)
		}
		files[i], shards[i] = f, sh
	}
	first := files[0].Partial
	n := shards[0].Count
	seen := make([]string, n)
	for i, f := range files {
		h := f.Partial
		if h.Target != first.Target || h.Kind != first.Kind || h.Time != first.Time || shards[i].Count != n {
			return fmt.Errorf("merge: %s is shard %s of %s --time %q, %s is shard %s of %s --time %q: not the same run",
				parts[i].Name, h.Shard, h.Target, h.Time, parts[0].Name, first.Shard, first.Target, first.Time)
		}
		if prev := seen[shards[i].Index]; prev != "" {
			return fmt.Errorf("merge: %s and %s are both shard %s", prev, parts[i].Name, h.Shard)
		}
		seen[shards[i].Index] = parts[i].Name
		if err := sameVariables(files[0].Variables, f.Variables); err != nil {
			return fmt.Errorf("merge: %s and %s: %w", parts[0].Name, parts[i].Name, err)
		}
	}
	var missing []string
	for i, name := range seen {
		if name == "" {
			missing = append(missing, fmt.Sprintf("%d/%d", i, n))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("merge: missing shard %s of %s", strings.Join(missing, ", "), first.Target)
	}
	// Join in shard order, so that the result does not depend on the order
	// of the files.
	order := make([]int, len(files))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return shards[a].Index - shards[b].Index })

	var selected, read, decoded int64
	vars := make([]variable, len(files[0].Variables))
	for _, fi := range order {
		f := files[fi]
		selected += f.Partial.SelectedBytes
		read += f.Partial.ReadBytes
		decoded += f.Partial.DecodedBytes
		for i, pv := range f.Variables {
			v := &vars[i]
			if v.Channels == nil {
				*v = variable{Source: pv.Source, Name: pv.Name, Dims: pv.Dims, ChannelDim: pv.ChannelDim,
					Start: pv.Start, Stop: pv.Stop, Labels: pv.Channels, Pick: pv.Pick, Channels: make([]stats.Moments, len(pv.Channels))}
			}
			for k := range pv.Channels {
				v.Channels[k].Merge(stats.Moments{Count: pv.Count[k], NaNs: pv.NaNCount[k], Mean: pv.Mean[k], M2: pv.M2[k], Min: pv.Min[k], Max: pv.Max[k]})
			}
		}
	}
	fmt.Fprintf(w, "# loader stats %s", first.Target)
	if first.Time != "" {
		fmt.Fprintf(w, " --time %s", first.Time)
	}
	fmt.Fprintf(w, " (merged from %d shards)\n# %.3f GB selected, %.3f GB read, %.3f GB decoded\n",
		n, float64(selected)/1e9, float64(read)/1e9, float64(decoded)/1e9)
	return writeStats(w, first.Kind == kindSpec, vars)
}

// sameVariables checks that two shards summarise the same variables,
// selections and channels.
func sameVariables(a, b []partialVar) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d variables against %d", len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Source != y.Source || x.Name != y.Name || !slices.Equal(x.Dims, y.Dims) || x.ChannelDim != y.ChannelDim ||
			!slices.Equal(x.Start, y.Start) || !slices.Equal(x.Stop, y.Stop) || !slices.Equal(x.Channels, y.Channels) || !slices.Equal(x.Pick, y.Pick) {
			return fmt.Errorf("variables[%d] differ: %s %s%v channels %v against %s %s%v channels %v",
				i, x.Source, x.Name, x.Dims, x.Channels, y.Source, y.Name, y.Dims, y.Channels)
		}
	}
	return nil
}
