// Package dataset shows a Zarr store the way xarray does, for the
// command-line tools: the Dataset summary of `loader inspect`, index
// selection by dimension name and the CF-decoded reads of `loader read`.
// Coordinates and times decode through coords.
package dataset

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lsio-loader/lsio-loader/coords"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// maxSummaryCoordBytes bounds the coordinates whose ranges Describe reads:
// a summary must stay quick on a remote store.
const maxSummaryCoordBytes = 64 << 20

// Describe prints g's dimensions, coordinates (with their ranges), data
// variables (with their storage layout) and attributes, in the shape of
// xarray's Dataset repr.
func Describe(ctx context.Context, w io.Writer, g *zarr.Group) error {
	names := g.ArrayNames()
	arrays := make(map[string]*zarr.Array, len(names))
	listed := map[string]bool{} // names in a variable's "coordinates" attribute
	for _, n := range names {
		a, err := g.Array(n)
		if err != nil {
			return err
		}
		arrays[n] = a
		if s, ok := a.Attrs["coordinates"].(string); ok {
			for _, c := range strings.Fields(s) {
				listed[c] = true
			}
		}
	}
	isIndex := func(n string) bool {
		a := arrays[n]
		return len(a.Dims) == 1 && a.Dims[0] == n
	}
	var coords, vars []string
	for _, n := range names {
		if isIndex(n) || listed[n] {
			coords = append(coords, n)
		} else {
			vars = append(vars, n)
		}
	}
	// Dimensions in order of first use, data variables first, as xarray
	// lists them.
	var dims []string
	sizes := map[string]int64{}
	for _, n := range append(slices.Clone(vars), coords...) {
		a := arrays[n]
		for i, d := range a.Dims {
			if _, ok := sizes[d]; !ok {
				dims = append(dims, d)
				sizes[d] = a.Shape[i]
			} else if sizes[d] != a.Shape[i] {
				return fmt.Errorf("%s: dimension %q has size %d here and %d elsewhere", a, d, a.Shape[i], sizes[d])
			}
		}
	}
	fmt.Fprintf(w, "<loader.Dataset> %s (zarr v%d, %d arrays)\n", g.Store, g.ZarrFormat, len(names))
	parts := make([]string, len(dims))
	for i, d := range dims {
		parts[i] = fmt.Sprintf("%s: %d", d, sizes[d])
	}
	fmt.Fprintf(w, "Dimensions:  (%s)\n", strings.Join(parts, ", "))
	type row struct{ mark, name, dims, dtype, summary, layout string }
	var coordRows, varRows []row
	for _, n := range coords {
		a := arrays[n]
		summary, err := coordSummary(ctx, a)
		if err != nil {
			return err
		}
		mark := " "
		if isIndex(n) {
			mark = "*"
		}
		coordRows = append(coordRows, row{mark, n, "(" + strings.Join(a.Dims, ", ") + ")", decodedDType(a), summary, layout(a)})
	}
	for _, n := range vars {
		a := arrays[n]
		varRows = append(varRows, row{" ", n, "(" + strings.Join(a.Dims, ", ") + ")", decodedDType(a), attrSummary(a.Attrs), layout(a)})
	}
	nameW, dimsW, typeW := 0, 0, 0
	for _, r := range append(slices.Clone(coordRows), varRows...) {
		nameW, dimsW, typeW = max(nameW, len(r.name)), max(dimsW, len(r.dims)), max(typeW, len(r.dtype))
	}
	for _, section := range []struct {
		title string
		rows  []row
	}{{"Coordinates:", coordRows}, {"Data variables:", varRows}} {
		fmt.Fprintln(w, section.title)
		for _, r := range section.rows {
			line := fmt.Sprintf("  %s %-*s %-*s %-*s %s", r.mark, nameW, r.name, dimsW, r.dims, typeW, r.dtype, r.summary)
			fmt.Fprintln(w, strings.TrimRight(line, " "))
			fmt.Fprintf(w, "    %*s %s\n", nameW, "", r.layout)
		}
	}
	fmt.Fprintln(w, "Attributes:")
	keys := make([]string, 0, len(g.Attrs))
	for k := range g.Attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "    %s: %s\n", k, shortJSON(g.Attrs[k], 100))
	}
	return nil
}

// decodedDType names the type xarray would show, with the stored type when
// CF decoding changes it.
func decodedDType(a *zarr.Array) string {
	stored := numpyName(a.DType)
	units, _ := a.Attrs["units"].(string)
	enc, _ := a.Attrs["dtype"].(string)
	_, scaled := a.Attrs["scale_factor"]
	_, offset := a.Attrs["add_offset"]
	switch {
	case a.DType.Kind == zarr.KindDatetime:
		return "datetime64[ns]"
	case a.DType.Kind == zarr.KindTimedelta:
		return "timedelta64[ns]"
	case strings.Contains(units, " since "):
		return "datetime64[ns] (stored " + stored + ")"
	case strings.HasPrefix(enc, "timedelta64"):
		return "timedelta64[ns] (stored " + stored + ")"
	case scaled || offset:
		return "float64 (packed " + stored + ")"
	}
	return stored
}

func numpyName(dt zarr.DType) string {
	switch dt.Kind {
	case zarr.KindBool:
		return "bool"
	case zarr.KindInt, zarr.KindUint, zarr.KindFloat, zarr.KindComplex:
		return dt.Kind.String() + strconv.Itoa(8*dt.Size)
	}
	return dt.LittleEndian().String()
}

// layout describes how an array is stored.
func layout(a *zarr.Array) string {
	var b strings.Builder
	fmt.Fprintf(&b, "shape %s", tuple(a.Shape))
	if !slices.Equal(a.ChunkShape, a.ReadChunkShape) {
		fmt.Fprintf(&b, " shards %s chunks %s", tuple(a.ChunkShape), tuple(a.ReadChunkShape))
	} else {
		fmt.Fprintf(&b, " chunks %s", tuple(a.ChunkShape))
	}
	fmt.Fprintf(&b, " %s", a.DType)
	if len(a.Codecs) > 0 {
		fmt.Fprintf(&b, " codecs %s", strings.Join(a.Codecs, " | "))
	}
	return b.String()
}

func tuple(v []int64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatInt(x, 10)
	}
	if len(v) == 1 {
		return "(" + parts[0] + ",)"
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// attrSummary shows the attributes that tell what a variable holds.
func attrSummary(attrs map[string]any) string {
	var parts []string
	for _, k := range []string{"long_name", "standard_name", "units"} {
		if v, ok := attrs[k]; ok {
			parts = append(parts, k+"="+shortJSON(v, 50))
		}
	}
	return strings.Join(parts, " ")
}

func shortJSON(v any, limit int) string {
	var s string
	if str, ok := v.(string); ok {
		s = str
	} else if b, err := json.Marshal(v); err == nil {
		s = string(b)
	} else {
		s = fmt.Sprint(v)
	}
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > limit {
		s = s[:limit-3] + "..."
	}
	return s
}

// coordSummary reads a coordinate and describes its values: the first and
// last time (ISO), duration or number in storage order, as xarray's repr
// shows them (so a descending axis reads high … low), or the first labels.
func coordSummary(ctx context.Context, a *zarr.Array) (string, error) {
	if a.NumElements()*int64(a.DType.Size) > maxSummaryCoordBytes {
		return "(too large to summarise)", nil
	}
	c, err := coords.ReadArray(ctx, a)
	if err != nil {
		return "", err
	}
	switch {
	case c.DType.Kind == zarr.KindUnicode || c.DType.Kind == zarr.KindBytes:
		labels, err := c.Strings()
		if err != nil {
			return "", err
		}
		quoted := make([]string, 0, 8)
		for i, l := range labels {
			if i == 6 && len(labels) > 7 {
				quoted = append(quoted, "...", strconv.Quote(labels[len(labels)-1]))
				break
			}
			quoted = append(quoted, strconv.Quote(l))
		}
		return strings.Join(quoted, " "), nil
	case c.IsDuration():
		ds, err := c.Durations()
		if err != nil {
			return "", err
		}
		if _, _, ok := int64Range(ds); !ok {
			return "all NaT", nil
		}
		dur := func(ns int64) string {
			if ns == coords.NaT {
				return "NaT"
			}
			return time.Duration(ns).String()
		}
		return fmt.Sprintf("%s … %s", dur(ds[0]), dur(ds[len(ds)-1])), nil
	case c.IsTime():
		ts, err := c.Times()
		if err != nil {
			return "", err
		}
		if _, _, ok := int64Range(ts); !ok {
			return "all NaT", nil
		}
		return fmt.Sprintf("%s … %s", isoTime(ts[0]), isoTime(ts[len(ts)-1])), nil
	case c.DType.Kind == zarr.KindBool:
		return fmt.Sprintf("%d values", c.Len()), nil
	}
	vals, err := c.Float64s()
	if err != nil {
		return "", err
	}
	nan := 0
	for _, v := range vals {
		if math.IsNaN(v) {
			nan++
		}
	}
	if nan == len(vals) {
		return "all NaN", nil
	}
	num := func(v float64) string {
		if math.IsNaN(v) {
			return "NaN"
		}
		return strconv.FormatFloat(v, 'g', 8, 64)
	}
	s := fmt.Sprintf("%s … %s", num(vals[0]), num(vals[len(vals)-1]))
	if units, ok := a.Attrs["units"].(string); ok {
		s += " " + units
	}
	if nan > 0 {
		s += fmt.Sprintf(", %d NaN", nan)
	}
	return s, nil
}

// int64Range returns the least and greatest values other than NaT.
func int64Range(v []int64) (lo, hi int64, ok bool) {
	lo, hi = math.MaxInt64, math.MinInt64
	for _, x := range v {
		if x == coords.NaT {
			continue
		}
		lo, hi, ok = min(lo, x), max(hi, x), true
	}
	return lo, hi, ok
}
