package sampler

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lsio-loader/lsio-loader/coords"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// bindSource opens a source's array and coordinates and checks the spec
// against them. Errors start with the spec field, relative to the source.
func bindSource(ctx context.Context, name string, ss *SourceSpec, st zarr.Store) (Source, planSource, error) {
	s := Source{Name: name, StoreURL: ss.Store, ArrayPath: strings.Trim(ss.Array, "/")}
	ps := planSource{timeDim: -1, initDim: -1, stepDim: -1, yDim: -1, xDim: -1, chDim: -1, dropout: ss.Dropout}
	g, err := zarr.OpenGroup(ctx, st, "")
	if err != nil {
		return s, ps, fieldErr("store", "%w", err)
	}
	arr, err := g.Array(s.ArrayPath)
	if err != nil {
		return s, ps, fieldErr("array", "%w", err)
	}
	s.Array = arr
	s.Dims = arr.Dims
	ps.shape = arr.Shape
	if !numericKind(arr.DType.Kind) {
		return s, ps, fieldErr("array", "%s has dtype %s, not a number", arr, arr.DType)
	}
	if len(arr.Dims) != len(arr.Shape) {
		if ss.Dims != nil {
			return s, ps, fieldErr("dims", "%s has no dimension names to map", arr)
		}
		s.Dims = make([]string, len(arr.Shape))
		for i := range s.Dims {
			s.Dims[i] = "dim_" + strconv.Itoa(i)
		}
	}
	s.Size = make([]int64, len(arr.Shape))
	s.NaNFill = ss.NaNFill
	s.DecodeCF = ss.DecodeCF == nil || *ss.DecodeCF
	if s.DecodeCF {
		if _, err := arr.CFPacking(); err != nil {
			return s, ps, fieldErr("array", "%w (decode_cf: false keeps the stored values)", err)
		}
	}
	s.ClipMin, s.ClipMax = float32(math.Inf(-1)), float32(math.Inf(1))
	if ss.Dims == nil {
		return bindGeneric(ss, s, ps)
	}
	dimIndex := func(field, dim string) (int, error) {
		if dim == "" {
			return -1, nil
		}
		i := slices.Index(s.Dims, dim)
		if i < 0 {
			return -1, fieldErr("dims."+field, "%s has no dim %q (dims %v)", arr, dim, s.Dims)
		}
		return i, nil
	}
	d := ss.Dims
	roles := []struct {
		field, dim string
		dst        *int
	}{
		{"time", d.Time, &ps.timeDim}, {"init_time", d.InitTime, &ps.initDim}, {"step", d.Step, &ps.stepDim},
		{"channel", d.Channel, &ps.chDim}, {"y", d.Y, &ps.yDim}, {"x", d.X, &ps.xDim},
	}
	used := map[int]string{}
	for _, r := range roles {
		if *r.dst, err = dimIndex(r.field, r.dim); err != nil {
			return s, ps, err
		}
		if *r.dst >= 0 {
			if prev, dup := used[*r.dst]; dup {
				return s, ps, fieldErr("dims."+r.field, "dim %q is already mapped as %s", r.dim, prev)
			}
			used[*r.dst] = r.field
		}
	}
	if err := checkYXSwap(d, arr); err != nil {
		return s, ps, err
	}
	// Dims with no role must be length 1: nothing says where to cut them.
	for i, dim := range s.Dims {
		if _, ok := used[i]; !ok && arr.Shape[i] != 1 {
			return s, ps, fieldErr("dims", "%s dim %q (length %d) has no role (time, init_time, step, channel, y, x)", arr, dim, arr.Shape[i])
		}
		s.Size[i] = 1
	}
	group := path.Dir("/" + s.ArrayPath)
	coordPath := func(n string) string { return strings.Trim(path.Join(group, n), "/") }

	// Channels.
	nCh := int64(1)
	var chStart int64
	if ps.chDim >= 0 {
		if len(ss.Channels) == 0 {
			nCh = arr.Shape[ps.chDim]
			s.Size[ps.chDim] = nCh
		} else {
			labels, err := readLabels(ctx, g, coordPath(d.Channel))
			if err != nil {
				return s, ps, fieldErr("channels", "%w", err)
			}
			idx := make([]int64, len(ss.Channels))
			for i, want := range ss.Channels {
				j := slices.Index(labels, want)
				if j < 0 {
					return s, ps, fieldErr(fmt.Sprintf("channels[%d]", i), "no channel %q in %s coordinate %q (have %v)", want, arr, d.Channel, labels)
				}
				idx[i] = int64(j)
			}
			chStart = slices.Min(idx)
			s.Size[ps.chDim] = slices.Max(idx) - chStart + 1
			s.Channels = make([]int64, len(idx))
			for i, j := range idx {
				s.Channels[i] = j - chStart
			}
			nCh = int64(len(idx))
		}
	}
	ps.chStart = chStart
	if err := ss.checkNormalise(int(nCh)); err != nil {
		return s, ps, err
	}
	if n := ss.Normalise; n != nil {
		s.Mean, s.Std = make([]float32, nCh), make([]float32, nCh)
		for c := range nCh {
			j := min(int(c), len(n.Mean)-1)
			s.Mean[c], s.Std[c] = float32(n.Mean[j]), float32(n.Std[j])
		}
		if n.ClipMin != nil {
			s.ClipMin = float32(*n.ClipMin)
		}
		if n.ClipMax != nil {
			s.ClipMax = float32(*n.ClipMax)
		}
	}

	// Time.
	nT := int64(1)
	s.TStride = 1
	ps.kind = kindStatic
	if tw := ss.Time; tw != nil {
		ps.startOff, ps.endOff, ps.res = int64(tw.Start), int64(tw.End), int64(tw.Resolution)
		nT = (ps.endOff-ps.startOff)/ps.res + 1
		ps.nT = nT
		if ps.timeDim >= 0 {
			ps.kind = kindTime
			if ps.times, err = readTimes(ctx, g, coordPath(d.Time)); err != nil {
				return s, ps, fieldErr("dims.time", "%w", err)
			}
			if nT > int64(len(ps.times)) {
				return s, ps, fieldErr("time", "window of %d steps is longer than %s's %d times", nT, arr, len(ps.times))
			}
		} else {
			ps.kind = kindNWP
			if ps.times, err = readTimes(ctx, g, coordPath(d.InitTime)); err != nil {
				return s, ps, fieldErr("dims.init_time", "%w", err)
			}
			if ps.steps, err = readDurations(ctx, g, coordPath(d.Step)); err != nil {
				return s, ps, fieldErr("dims.step", "%w", err)
			}
			if nT > int64(len(ps.steps)) {
				return s, ps, fieldErr("time", "window of %d steps is longer than %s's %d steps", nT, arr, len(ps.steps))
			}
			s.Size[ps.initDim] = 1
			ps.initDelay, ps.maxStaleness = int64(ss.InitDelay), int64(ss.MaxStaleness)
		}
		if !slices.IsSorted(ps.times) || (ps.steps != nil && !slices.IsSorted(ps.steps)) {
			return s, ps, fieldErr("dims", "%s time coordinates are not ascending", arr)
		}
		if len(ps.times) == 0 {
			return s, ps, fieldErr("dims", "%s has no times", arr)
		}
		labels, tDim := ps.times, ps.timeDim
		if ps.kind == kindNWP {
			labels, tDim = ps.steps, ps.stepDim
		}
		// A resolution that is a multiple of the data's spacing takes every
		// stride-th step (as ocf-data-sampler selects target times).
		ps.stride = 1
		if sp := medianSpacing(labels); sp > 0 && ps.res != sp {
			if ps.res < sp || ps.res%sp != 0 {
				return s, ps, fieldErr("time.resolution", "%v is not a multiple of %s's time spacing %v",
					time.Duration(ps.res), arr, time.Duration(sp))
			}
			ps.stride = ps.res / sp
		}
		if ps.offGrid = offGrid(labels, medianSpacing(labels)); len(ps.offGrid) > 0 {
			slog.Warn("time labels off the axis' grid can never be in a window",
				"source", name, "array", arr.String(), "spacing", time.Duration(medianSpacing(labels)),
				"frames", len(ps.offGrid), "first", fmtTimes(ps.offGrid, 5, ps.kind == kindNWP))
		}
		span := (nT-1)*ps.stride + 1
		if span > arr.Shape[tDim] {
			return s, ps, fieldErr("time", "window spans %d steps of %s, which has %d", span, arr, arr.Shape[tDim])
		}
		s.Size[tDim] = span
		s.TStride = ps.stride
	}

	ps.nT = nT
	// Space.
	ps.h, ps.w = ss.Crop["height"], ss.Crop["width"]
	if ps.h > arr.Shape[ps.yDim] || ps.w > arr.Shape[ps.xDim] {
		return s, ps, fieldErr("crop", "%d×%d pixels is larger than %s's %d×%d grid", ps.h, ps.w, arr, arr.Shape[ps.yDim], arr.Shape[ps.xDim])
	}
	s.Size[ps.yDim], s.Size[ps.xDim] = ps.h, ps.w
	if ps.grid, err = bindGrid(ctx, g, ss, arr, ps.yDim, ps.xDim, coordPath); err != nil {
		return s, ps, err
	}

	if g, ok := ps.grid.(*grid1D); ok && g.x.periodic {
		s.Periodic = make([]bool, len(s.Dims))
		s.Periodic[ps.xDim] = true
		ps.periodicX = true
	}

	tDim := ps.timeDim
	if ps.kind == kindNWP {
		tDim = ps.stepDim
	}
	s.Axes = []int{tDim, ps.chDim, ps.yDim, ps.xDim}
	s.OutShape = []int64{nT, nCh, ps.h, ps.w}
	return s, ps, nil
}

func bindGeneric(ss *SourceSpec, s Source, ps planSource) (Source, planSource, error) {
	ps.kind = kindGeneric
	for k := range ss.Crop {
		if !slices.Contains(s.Dims, k) {
			return s, ps, fieldErr("crop."+k, "%s has no dim %q (dims %v)", s.Array, k, s.Dims)
		}
	}
	for i, dim := range s.Dims {
		n, ok := ss.Crop[dim]
		if !ok {
			return s, ps, fieldErr("crop", "no size for dim %q of %s (a generic source needs one per dim: %v)", dim, s.Array, s.Dims)
		}
		if n > s.Array.Shape[i] {
			return s, ps, fieldErr("crop."+dim, "%d is larger than the dim's length %d in %s", n, s.Array.Shape[i], s.Array)
		}
		s.Size[i] = n
	}
	if err := ss.checkNormalise(1); err != nil {
		return s, ps, err
	}
	if n := ss.Normalise; n != nil {
		s.Mean, s.Std = []float32{float32(n.Mean[0])}, []float32{float32(n.Std[0])}
		if n.ClipMin != nil {
			s.ClipMin = float32(*n.ClipMin)
		}
		if n.ClipMax != nil {
			s.ClipMax = float32(*n.ClipMax)
		}
	}
	s.OutShape = slices.Clone(s.Size)
	s.TStride = 1
	return s, ps, nil
}

func numericKind(k zarr.Kind) bool {
	return k == zarr.KindBool || k == zarr.KindInt || k == zarr.KindUint || k == zarr.KindFloat
}

// readFloats reads a numeric coordinate CF-decoded, as xarray shows it.
func readFloats(ctx context.Context, g *zarr.Group, name string) (coords.Coord, []float64, error) {
	c, err := coords.Read(ctx, g, name)
	if err != nil {
		return c, nil, err
	}
	f, err := c.Float64s()
	return c, f, err
}

// readLabels reads a channel coordinate: strings, or numbers formatted.
func readLabels(ctx context.Context, g *zarr.Group, name string) ([]string, error) {
	c, err := coords.Read(ctx, g, name)
	if err != nil {
		return nil, err
	}
	return c.Labels()
}

// readTimes reads a time coordinate as ns since the Unix epoch. Missing
// times (NaT) have no place on a time axis.
func readTimes(ctx context.Context, g *zarr.Group, name string) ([]int64, error) {
	c, err := coords.Read(ctx, g, name)
	if err != nil {
		return nil, err
	}
	if !c.IsTime() {
		units, _ := c.Attrs["units"].(string)
		return nil, fmt.Errorf("%s: not a time coordinate: dtype %s, units %q are not \"<unit> since <date>\"", name, c.DType, units)
	}
	v, err := c.Times()
	if err != nil {
		return nil, err
	}
	return v, noNaT(name, v)
}

// readDurations reads a step coordinate as ns: timedelta64, or numbers with
// CF units such as "hours".
func readDurations(ctx context.Context, g *zarr.Group, name string) ([]int64, error) {
	c, err := coords.Read(ctx, g, name)
	if err != nil {
		return nil, err
	}
	v, err := c.Durations()
	if err != nil {
		return nil, err
	}
	return v, noNaT(name, v)
}

func noNaT(name string, v []int64) error {
	if i := slices.Index(v, coords.NaT); i >= 0 {
		return fmt.Errorf("%s: element %d is missing (NaT)", name, i)
	}
	return nil
}

// offGrid returns the labels (ascending) that are not a whole number of
// spacings from the first: with exact matching they can never be part of
// a window.
func offGrid(labels []int64, spacing int64) []int64 {
	var out []int64
	if spacing <= 0 {
		return nil
	}
	for _, t := range labels {
		if (t-labels[0])%spacing != 0 {
			out = append(out, t)
		}
	}
	return out
}

// medianSpacing is the typical step of ascending labels (0 with fewer than two).
func medianSpacing(v []int64) int64 {
	if len(v) < 2 {
		return 0
	}
	d := make([]int64, len(v)-1)
	for i := range d {
		d[i] = v[i+1] - v[i]
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// fmtTimes shows up to n labels: instants in ISO form, or durations.
func fmtTimes(v []int64, n int, durations bool) string {
	parts := make([]string, 0, n+1)
	for i, t := range v {
		if i == n {
			parts = append(parts, fmt.Sprintf("... (%d in all)", len(v)))
			break
		}
		if durations {
			parts = append(parts, time.Duration(t).String())
		} else {
			parts = append(parts, time.Unix(0, t).UTC().Format("2006-01-02T15:04:05.999999999"))
		}
	}
	return strings.Join(parts, ", ")
}
