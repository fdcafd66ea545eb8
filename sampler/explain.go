package sampler

import (
	"fmt"
	"strings"
	"time"
)

// This file words the errors of a spec whose periods no t0 can serve: they
// say which source rules a period out, and what each source covers.

// timedSources are the indices of the sources with a time dim.
func (p *Plan) timedSources() []int {
	var timed []int
	for i, s := range p.src {
		if s.kind == kindTime || s.kind == kindNWP {
			timed = append(timed, i)
		}
	}
	return timed
}

// t0Span is the first and last t0 source i could serve were its data
// without gaps, and the first and last time its data holds (NWP: init
// times).
func (p *Plan) t0Span(i int) (first, last, dataFirst, dataLast int64) {
	s := &p.src[i]
	dataFirst, dataLast = s.times[0], s.times[len(s.times)-1]
	if s.kind == kindTime {
		return dataFirst - s.startOff, dataLast - s.endOff, dataFirst, dataLast
	}
	first = dataFirst + s.initDelay
	last = dataLast + s.steps[len(s.steps)-1] - s.endOff
	if s.maxStaleness > 0 {
		last = min(last, dataLast+s.maxStaleness)
	}
	return first, last, dataFirst, dataLast
}

func fmtTime(t int64) string {
	return time.Unix(0, t).UTC().Format("2006-01-02T15:04:05.999999999")
}

// coverage says, per timed source, what its data covers and which t0s it
// can serve.
func (p *Plan) coverage(timed []int) string {
	parts := make([]string, 0, len(timed))
	for _, i := range timed {
		first, last, df, dl := p.t0Span(i)
		what := "data"
		if p.src[i].kind == kindNWP {
			what = "init times"
		}
		span := fmt.Sprintf("t0 %s … %s", fmtTime(first), fmtTime(last))
		if first > last {
			span = "no t0: its time window is longer than its data"
		}
		parts = append(parts, fmt.Sprintf("source %s: %s %s … %s, so %s", p.Sources[i].Name, what, fmtTime(df), fmtTime(dl), span))
	}
	return strings.Join(parts, "; ")
}

// explainNoT0 says why split has no valid t0: per period, the sources
// whose t0s all fall outside it, or that each covers part of it but never
// all at once; then what every source covers.
func (p *Plan) explainNoT0(split string, timed []int) string {
	var why []string
	for _, per := range p.Spec.Splits[split] {
		a, b := int64(per.Start), int64(per.End)
		var out []string
		for _, i := range timed {
			if first, last, _, _ := p.t0Span(i); last < a || first > b {
				out = append(out, p.Sources[i].Name)
			}
		}
		period := fmt.Sprintf("period %s … %s", fmtTime(a), fmtTime(b))
		switch len(out) {
		case 0:
			why = append(why, period+": every source covers part of it, but their windows are never all available at once (gaps, or runs staler than max_staleness)")
		case 1:
			why = append(why, fmt.Sprintf("%s: source %s rules it out", period, out[0]))
		default:
			why = append(why, fmt.Sprintf("%s: sources %s rule it out", period, strings.Join(out, ", ")))
		}
	}
	return strings.Join(append(why, p.coverage(timed)), "; ")
}

// axisByName says which horizontal axis a dim's name denotes: "y" for
// rows (y, lat, latitude, northing...), "x" for columns, "" when the name
// says neither.
func axisByName(dim string) string {
	n := strings.ToLower(dim)
	for _, suffix := range []string{"_osgb", "_geostationary", "_geos", "_index"} {
		n = strings.TrimSuffix(n, suffix)
	}
	switch n {
	case "y", "lat", "latitude", "northing", "rows", "row", "south_north":
		return "y"
	case "x", "lon", "long", "longitude", "easting", "cols", "col", "west_east":
		return "x"
	}
	return ""
}

// checkYXSwap reports dims whose y and x map to dims named as the other
// axis, which otherwise surfaces as crops in the wrong place or a grid
// "too small" for the crop.
func checkYXSwap(d *DimsSpec, arr fmt.Stringer) error {
	if d.Y == "" || d.X == "" {
		return nil
	}
	if axisByName(d.Y) == "x" || axisByName(d.X) == "y" {
		return fieldErr("dims", "y and x are swapped: y is mapped to %q and x to %q, which by their names are %s's x and y dims (want y: %s, x: %s)",
			d.Y, d.X, arr, d.X, d.Y)
	}
	return nil
}
