package sampler

import (
	"context"
	"fmt"
	"math"
	"path"
	"slices"
	"strings"

	"github.com/lsio-loader/lsio-loader/coords"
	"github.com/lsio-loader/lsio-loader/zarr"
	"gopkg.in/yaml.v3"
)

// osgbDomain bounds extents mapped into OSGB: far outside the British Isles
// the transverse Mercator is meaningless, so a global grid's extent is
// clipped to it.
var osgbDomain = box{-1.5e6, 2e6, -1e6, 2.5e6}

// toNative maps OSGB metres into a grid's own CRS.
type toNative func(x, y float64) (float64, float64, bool)

// bindGrid builds the OSGB → pixel mapping of a source from its spatial
// coordinates: 1-D along y and x, or 2-D (y, x) auxiliary arrays.
func bindGrid(ctx context.Context, g *zarr.Group, ss *SourceSpec, arr *zarr.Array, yDim, xDim int, coordPath func(string) string) (grid, error) {
	ya, ys, err := readFloats(ctx, g, coordPath(ss.Coords.Y))
	if err != nil {
		return nil, fieldErr("coords.y", "%w", err)
	}
	xa, xs, err := readFloats(ctx, g, coordPath(ss.Coords.X))
	if err != nil {
		return nil, fieldErr("coords.x", "%w", err)
	}
	ny, nx := arr.Shape[yDim], arr.Shape[xDim]
	var native toNative
	var fromNative func(x, y float64) (float64, float64, bool)
	switch ss.CRS {
	case "osgb":
		native = func(x, y float64) (float64, float64, bool) { return x, y, true }
		fromNative = native
	case "latlon":
		native = func(x, y float64) (float64, float64, bool) {
			lat, lon := OSGBToWGS84(x, y)
			return lon, lat, true
		}
		fromNative = func(lon, lat float64) (float64, float64, bool) {
			if math.Abs(lat) > 89 {
				return 0, 0, false
			}
			x, y := WGS84ToOSGB(lat, lon)
			return x, y, true
		}
	case "geostationary":
		geo, err := geostationaryParams(g, ss, arr)
		if err != nil {
			return nil, err
		}
		native = func(x, y float64) (float64, float64, bool) {
			lat, lon := OSGBToWGS84(x, y)
			return geo.Forward(lat, lon)
		}
		fromNative = func(x, y float64) (float64, float64, bool) {
			lat, lon, ok := geo.Inverse(x, y)
			if !ok {
				return 0, 0, false
			}
			x, y = WGS84ToOSGB(lat, lon)
			return x, y, true
		}
	}
	if len(ya.Shape) == 1 && len(xa.Shape) == 1 {
		if int64(len(ys)) != ny {
			return nil, fieldErr("coords.y", "%s has %d values for %d rows", ya.Name, len(ys), ny)
		}
		if int64(len(xs)) != nx {
			return nil, fieldErr("coords.x", "%s has %d values for %d columns", xa.Name, len(xs), nx)
		}
		gy, err := newAxis(ys)
		if err != nil {
			return nil, fieldErr("coords.y", "%s: %w", ya.Name, err)
		}
		gx, err := newAxis(xs)
		if err != nil {
			return nil, fieldErr("coords.x", "%s: %w", xa.Name, err)
		}
		if ss.CRS == "latlon" {
			gx.lon, gx.periodic = true, coords.Periodic(xs)
		}
		gr := &grid1D{y: gy, x: gx, native: native}
		gr.ext = borderExtent(ny, nx, func(r, c int64) (float64, float64, bool) { return fromNative(xs[c], ys[r]) })
		return gr, nil
	}
	if len(ya.Shape) == 2 && len(xa.Shape) == 2 && slices.Equal(ya.Shape, []int64{ny, nx}) && slices.Equal(xa.Shape, ya.Shape) {
		if yDim > xDim {
			return nil, fieldErr("coords", "2-D coordinates need the y dim before the x dim")
		}
		return newGrid2D(xs, ys, ny, nx, native, fromNative, ss.CRS == "latlon")
	}
	return nil, fieldErr("coords", "%s %v and %s %v are neither 1-D along y and x nor 2-D (%d, %d)", ya.Name, ya.Shape, xa.Name, xa.Shape, ny, nx)
}

// geostationaryParams takes the projection from the spec, else from the
// array's attributes: satpy's "area" definition, or CF grid mapping
// attributes on the array or on the variable its grid_mapping names.
func geostationaryParams(g *zarr.Group, ss *SourceSpec, arr *zarr.Array) (Geostationary, error) {
	if g := ss.Geostationary; g != nil {
		if g.SatelliteHeight <= 0 {
			return Geostationary{}, fieldErr("geostationary.satellite_height", "must be positive")
		}
		return Geostationary{Height: g.SatelliteHeight, Longitude: g.Longitude, SweepX: g.SweepAxis == "x"}, nil
	}
	if g, ok := satpyArea(arr.Attrs); ok {
		return g, nil
	}
	attrs := arr.Attrs
	if name, ok := attrs["grid_mapping"].(string); ok {
		gm, err := g.Array(strings.Trim(path.Join(path.Dir("/"+arr.Path), name), "/"))
		if err != nil {
			return Geostationary{}, fieldErr("geostationary", "%s grid_mapping %q: %w", arr, name, err)
		}
		attrs = gm.Attrs
	}
	h, ok1 := attrFloat(attrs, "perspective_point_height", "satellite_height", "h")
	lon, ok2 := attrFloat(attrs, "longitude_of_projection_origin", "sub_satellite_longitude", "lon_0")
	if !ok1 || !ok2 {
		return Geostationary{}, fieldErr("geostationary", "%s attributes do not give the projection: set satellite_height and longitude", arr)
	}
	sweep, _ := attrs["sweep_angle_axis"].(string)
	geo := Geostationary{Height: h, Longitude: lon, SweepX: sweep == "x"}
	if a, ok := attrFloat(attrs, "semi_major_axis"); ok && a > 0 {
		geo.A, geo.B = a, a
		if b, ok := attrFloat(attrs, "semi_minor_axis"); ok && b > 0 {
			geo.B = b
		} else if rf, ok := attrFloat(attrs, "inverse_flattening"); ok && rf > 0 {
			geo.B = a * (1 - 1/rf)
		}
	}
	return geo, nil
}

// satpyArea reads the projection from satpy's "area" attribute, a YAML
// area definition with a proj "geos" projection.
func satpyArea(attrs map[string]any) (Geostationary, bool) {
	text, ok := attrs["area"].(string)
	if !ok {
		return Geostationary{}, false
	}
	var area map[string]any
	if err := yaml.Unmarshal([]byte(text), &area); err != nil || len(area) != 1 {
		return Geostationary{}, false
	}
	for _, def := range area {
		m, _ := def.(map[string]any)
		proj, _ := m["projection"].(map[string]any)
		if proj == nil || proj["proj"] != "geos" {
			return Geostationary{}, false
		}
		h, ok1 := yamlFloat(proj["h"])
		lon, ok2 := yamlFloat(proj["lon_0"])
		if !ok1 || !ok2 || h <= 0 {
			return Geostationary{}, false
		}
		g := Geostationary{Height: h, Longitude: lon, SweepX: proj["sweep"] == "x"}
		if a, ok := yamlFloat(proj["a"]); ok && a > 0 {
			g.A, g.B = a, a
			if rf, ok := yamlFloat(proj["rf"]); ok && rf > 0 {
				g.B = a * (1 - 1/rf)
			} else if b, ok := yamlFloat(proj["b"]); ok && b > 0 {
				g.B = b
			}
		}
		return g, true
	}
	return Geostationary{}, false
}

func yamlFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	}
	return 0, false
}

func attrFloat(attrs map[string]any, names ...string) (float64, bool) {
	for _, n := range names {
		if v, ok := attrs[n].(float64); ok {
			return v, true
		}
	}
	return 0, false
}

// borderExtent is the OSGB bounding box of a grid's border pixels, clipped
// to osgbDomain.
func borderExtent(ny, nx int64, osgb func(r, c int64) (float64, float64, bool)) box {
	b := box{math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)}
	add := func(r, c int64) {
		x, y, ok := osgb(r, c)
		if !ok || math.IsNaN(x) || math.IsNaN(y) {
			return
		}
		b = box{min(b.x0, x), max(b.x1, x), min(b.y0, y), max(b.y1, y)}
	}
	const samples = 64
	for i := range int64(samples + 1) {
		r, c := i*(ny-1)/samples, i*(nx-1)/samples
		add(r, 0)
		add(r, nx-1)
		add(0, c)
		add(ny-1, c)
		// The interior too: a global grid's border maps far outside OSGB's domain.
		for j := range int64(samples + 1) {
			add(r, j*(nx-1)/samples)
		}
	}
	return box{max(b.x0, osgbDomain.x0), min(b.x1, osgbDomain.x1), max(b.y0, osgbDomain.y0), min(b.y1, osgbDomain.y1)}
}

// axis is a 1-D coordinate, ascending or descending, regular or not.
type axis struct {
	v          []float64
	descending bool
	step       float64 // median spacing, for out-of-range checks
	// lon marks a longitude: positions are taken modulo 360, so sites in
	// -180..180 and 0..360 find the same pixel.
	lon bool
	// periodic marks a longitude covering the whole circle: crops wrap
	// across its seam (see coords.Periodic).
	periodic bool
}

func newAxis(v []float64) (axis, error) {
	if len(v) == 0 {
		return axis{}, fmt.Errorf("empty coordinate")
	}
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return axis{}, fmt.Errorf("coordinate has NaN or infinite values")
		}
	}
	a := axis{v: v}
	if len(v) == 1 {
		return a, nil
	}
	a.descending = v[1] < v[0]
	d := make([]float64, len(v)-1)
	for i := range d {
		d[i] = v[i+1] - v[i]
		if (d[i] < 0) != a.descending || d[i] == 0 {
			return axis{}, fmt.Errorf("coordinate is not strictly monotonic at index %d", i+1)
		}
		d[i] = math.Abs(d[i])
	}
	slices.Sort(d)
	a.step = d[len(d)/2]
	return a, nil
}

// nearest returns the index of the value nearest x, and false when x is
// more than half a step outside the coordinate's range.
func (a axis) nearest(x float64) (int64, bool) {
	n := len(a.v)
	lo, hi := a.v[0], a.v[n-1]
	if a.descending {
		lo, hi = hi, lo
	}
	if a.lon && !math.IsNaN(x) && !math.IsInf(x, 0) {
		// Into [lo − step/2, lo − step/2 + 360): a periodic axis's seam
		// then falls between its last and first columns.
		base := lo - a.step/2
		x = base + math.Mod(math.Mod(x-base, 360)+360, 360)
	}
	if math.IsNaN(x) || x < lo-a.step/2 || x > hi+a.step/2 {
		return 0, false
	}
	var i int
	if a.descending {
		i, _ = slices.BinarySearchFunc(a.v, x, func(e, t float64) int {
			switch {
			case e > t:
				return -1
			case e < t:
				return 1
			}
			return 0
		})
	} else {
		i, _ = slices.BinarySearch(a.v, x)
	}
	if i == n {
		i = n - 1
	} else if i > 0 && math.Abs(a.v[i-1]-x) <= math.Abs(a.v[i]-x) {
		i--
	}
	return int64(i), true
}

type grid1D struct {
	y, x   axis
	native toNative
	ext    box
}

func (g *grid1D) pixel(x, y float64) (int64, int64, bool) {
	nx, ny, ok := g.native(x, y)
	if !ok {
		return 0, 0, false
	}
	r, ok1 := g.y.nearest(ny)
	c, ok2 := g.x.nearest(nx)
	return r, c, ok1 && ok2
}

func (g *grid1D) extent() box { return g.ext }

// grid2D finds the nearest pixel of 2-D auxiliary coordinates through a
// bucket index built once: a regular grid of cells over the coordinates'
// bounding box, each listing the pixels inside it.
type grid2D struct {
	xs, ys   []float64 // in the coordinates' CRS, row-major (ny, nx)
	ny, nx   int64
	native   toNative
	ext      box
	nat      box // bounding box in the native CRS
	cell     float64
	cw, ch   int
	cellHead []int32 // start of each cell's pixels in cellPix
	cellPix  []int32
	// sphere: the coordinates are (lon, lat) degrees and distances are
	// great-circle, not planar in degrees (a degree of longitude at 57° N
	// is half a degree of latitude).
	sphere bool
	// ringScale bounds how much nearer than its cell distance a pixel can
	// be: 1 on a plane, cos(latitude) at the grid's highest latitude on
	// the sphere.
	ringScale float64
}

func newGrid2D(xs, ys []float64, ny, nx int64, native toNative, fromNative func(x, y float64) (float64, float64, bool), sphere bool) (*grid2D, error) {
	g := &grid2D{xs: xs, ys: ys, ny: ny, nx: nx, native: native, sphere: sphere, ringScale: 1}
	b := box{math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)}
	n := 0
	for i := range xs {
		if math.IsNaN(xs[i]) || math.IsNaN(ys[i]) || math.IsInf(xs[i], 0) || math.IsInf(ys[i], 0) {
			continue
		}
		n++
		b = box{min(b.x0, xs[i]), max(b.x1, xs[i]), min(b.y0, ys[i]), max(b.y1, ys[i])}
	}
	if n == 0 {
		return nil, fieldErr("coords", "2-D coordinates have no finite values")
	}
	g.nat = b
	if sphere {
		maxLat := min(90, max(math.Abs(b.y0), math.Abs(b.y1)))
		g.ringScale = max(math.Cos(maxLat*math.Pi/180), 0.01)
	}
	// About four pixels per cell.
	area := max((b.x1-b.x0)*(b.y1-b.y0), 1)
	g.cell = math.Sqrt(area * 4 / float64(n))
	g.cw = int(math.Min((b.x1-b.x0)/g.cell, 1<<12)) + 1
	g.ch = int(math.Min((b.y1-b.y0)/g.cell, 1<<12)) + 1
	counts := make([]int32, g.cw*g.ch+1)
	for i := range xs {
		if c, ok := g.cellOf(xs[i], ys[i]); ok {
			counts[c+1]++
		}
	}
	for i := 1; i < len(counts); i++ {
		counts[i] += counts[i-1]
	}
	g.cellHead = counts
	g.cellPix = make([]int32, n)
	fill := slices.Clone(counts[:len(counts)-1])
	for i := range xs {
		if c, ok := g.cellOf(xs[i], ys[i]); ok {
			g.cellPix[fill[c]] = int32(i)
			fill[c]++
		}
	}
	g.ext = b
	if fromNative != nil {
		x0, y0, ok0 := fromNative(b.x0, b.y0)
		x1, y1, ok1 := fromNative(b.x1, b.y1)
		if !ok0 || !ok1 {
			g.ext = osgbDomain
		} else {
			g.ext = box{min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)}
		}
	}
	return g, nil
}

func (g *grid2D) cellOf(x, y float64) (int, bool) {
	if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
		return 0, false
	}
	cx := int((x - g.nat.x0) / g.cell)
	cy := int((y - g.nat.y0) / g.cell)
	if cx < 0 || cy < 0 || cx >= g.cw || cy >= g.ch {
		return 0, false
	}
	return cy*g.cw + cx, true
}

func (g *grid2D) extent() box { return g.ext }

func (g *grid2D) pixel(x, y float64) (int64, int64, bool) {
	px, py, ok := g.native(x, y)
	if ok && g.sphere {
		// Longitudes modulo 360, into the grid's own range when they fit.
		if px < g.nat.x0-g.cell {
			px += 360 * math.Ceil((g.nat.x0-g.cell-px)/360)
		} else if px > g.nat.x1+g.cell {
			px -= 360 * math.Ceil((px-g.nat.x1-g.cell)/360)
		}
	}
	if !ok || px < g.nat.x0-g.cell || px > g.nat.x1+g.cell || py < g.nat.y0-g.cell || py > g.nat.y1+g.cell {
		return 0, 0, false
	}
	cx := int(math.Floor((px - g.nat.x0) / g.cell))
	cy := int(math.Floor((py - g.nat.y0) / g.cell))
	best, bestD := -1, math.Inf(1)
	for r := 0; r <= max(g.cw, g.ch); r++ {
		// Every pixel in ring r is at least (r−1)·cell away.
		if best >= 0 && float64(r-1)*g.cell*g.ringScale > bestD {
			break
		}
		for j := cy - r; j <= cy+r; j++ {
			if j < 0 || j >= g.ch {
				continue
			}
			for i := cx - r; i <= cx+r; i++ {
				if i < 0 || i >= g.cw || (j != cy-r && j != cy+r && i != cx-r && i != cx+r) {
					continue
				}
				c := j*g.cw + i
				for _, p := range g.cellPix[g.cellHead[c]:g.cellHead[c+1]] {
					if d := g.dist(g.xs[p], g.ys[p], px, py); d < bestD {
						best, bestD = int(p), d
					}
				}
			}
		}
	}
	if best < 0 {
		return 0, 0, false
	}
	row, col := int64(best)/g.nx, int64(best)%g.nx
	// Outside the grid when farther from the nearest pixel than that pixel
	// is from its neighbours.
	if bestD > 1.5*g.spacing(row, col) {
		return 0, 0, false
	}
	return row, col, true
}

// spacing is the largest distance from pixel (row, col) to its 4-neighbours.
func (g *grid2D) spacing(row, col int64) float64 {
	i := row*g.nx + col
	s := 0.0
	for _, n := range [][2]int64{{row - 1, col}, {row + 1, col}, {row, col - 1}, {row, col + 1}} {
		if n[0] < 0 || n[1] < 0 || n[0] >= g.ny || n[1] >= g.nx {
			continue
		}
		j := n[0]*g.nx + n[1]
		if d := g.dist(g.xs[j], g.ys[j], g.xs[i], g.ys[i]); !math.IsNaN(d) {
			s = max(s, d)
		}
	}
	if s == 0 {
		return g.cell
	}
	return s
}

// dist is the distance between two points of the grid's coordinates: the
// great-circle angle in degrees on the sphere, else planar.
func (g *grid2D) dist(x1, y1, x2, y2 float64) float64 {
	if !g.sphere {
		return math.Hypot(x1-x2, y1-y2)
	}
	return greatCircleDeg(y1, x1, y2, x2)
}

// greatCircleDeg is the central angle between two points, in degrees
// (haversine: accurate at the small distances between neighbours).
func greatCircleDeg(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	sLat := math.Sin((lat2 - lat1) * rad / 2)
	sLon := math.Sin((lon2 - lon1) * rad / 2)
	h := sLat*sLat + math.Cos(lat1*rad)*math.Cos(lat2*rad)*sLon*sLon
	return 2 * math.Asin(math.Sqrt(min(h, 1))) / rad
}
