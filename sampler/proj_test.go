package sampler

import (
	"context"
	"encoding/json"
	"math"
	"path/filepath"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// Ordnance Survey's worked example (A guide to coordinate systems in Great
// Britain, annex C): OSGB36 52°39′27.2531″N 1°43′4.5177″E is
// E 651409.903, N 313177.270.
func TestNationalGridWorkedExample(t *testing.T) {
	lat := (52 + 39.0/60 + 27.2531/3600) * deg
	lon := (1 + 43.0/60 + 4.5177/3600) * deg
	e, n := tmForward(lat, lon)
	if math.Abs(e-651409.903) > 0.01 || math.Abs(n-313177.270) > 0.01 {
		t.Errorf("forward: %.3f, %.3f", e, n)
	}
	la, lo := tmInverse(651409.903, 313177.270)
	if math.Abs(la-lat) > 1e-9 || math.Abs(lo-lon) > 1e-9 {
		t.Errorf("inverse: %.9f, %.9f rad, want %.9f, %.9f", la, lo, lat, lon)
	}
}

func TestWGS84OSGBRoundTrip(t *testing.T) {
	for _, p := range [][2]float64{{51.5, -0.12}, {57.1, -2.1}, {50.1, -5.5}, {60.2, -1.2}, {54.6, -5.9}} {
		x, y := WGS84ToOSGB(p[0], p[1])
		lat, lon := OSGBToWGS84(x, y)
		if math.Abs(lat-p[0]) > 1e-7 || math.Abs(lon-p[1]) > 1e-7 {
			t.Errorf("%v → (%.1f, %.1f) → (%.8f, %.8f)", p, x, y, lat, lon)
		}
	}
}

// pyprojScript maps points with PROJ: argv kind ("wgs84" lon/lat → OSGB or
// "geos" x/y → lon/lat) and the points as JSON.
const pyprojScript = `
import json, sys
from pyproj import Transformer
geos = "+proj=geos +lon_0=9.5 +h=35785831 +a=6378169 +rf=295.488065897014 +no_defs +type=crs"
src, dst = {"wgs84": ("EPSG:4326", "EPSG:27700"), "geos": (geos, "EPSG:4326")}[sys.argv[1]]
t = Transformer.from_crs(src, dst, always_xy=True)
print(json.dumps([t.transform(a, b) for a, b in json.loads(sys.argv[2])]))
`

func pyproj(t *testing.T, kind string, pts [][2]float64) [][2]float64 {
	t.Helper()
	in, _ := json.Marshal(pts)
	var out [][2]float64
	if err := json.Unmarshal(testenv.RunPython(t, pyprojScript, kind, string(in)), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestProjectionsAgainstPROJ(t *testing.T) {
	// Inside Great Britain, where PROJ picks the same Helmert transformation
	// (outside it falls back to a ballpark one without datum shift).
	var lonlat [][2]float64
	for lat := 50.5; lat <= 58.5; lat += 1 {
		for lon := -5.5; lon <= 1.5; lon += 1 {
			lonlat = append(lonlat, [2]float64{lon, lat})
		}
	}
	want := pyproj(t, "wgs84", lonlat)
	worst := 0.0
	for i, p := range lonlat {
		x, y := WGS84ToOSGB(p[1], p[0])
		worst = max(worst, math.Hypot(x-want[i][0], y-want[i][1]))
	}
	t.Logf("WGS84 → OSGB: worst %.3f m from PROJ", worst)
	if worst > 1 {
		t.Errorf("WGS84 → OSGB is %.2f m from PROJ", worst)
	}
	geo := Geostationary{Height: 35785831, Longitude: 9.5, A: 6378169, B: 6378169 * (1 - 1/295.488065897014)}
	var xy [][2]float64
	for x := -1.8e6; x <= 0; x += 2e5 {
		for y := 4.2e6; y <= 5.1e6; y += 1e5 {
			xy = append(xy, [2]float64{x, y})
		}
	}
	want = pyproj(t, "geos", xy)
	worst = 0
	for i, p := range xy {
		lat, lon, ok := geo.Inverse(p[0], p[1])
		if !ok {
			t.Fatalf("%v off the disc", p)
		}
		// Degrees to metres, roughly.
		d := math.Hypot((lon-want[i][0])*math.Cos(lat*deg), lat-want[i][1]) * 111e3
		worst = max(worst, d)
	}
	t.Logf("geostationary → WGS84: worst %.3f m from PROJ", worst)
	if worst > 1 {
		t.Errorf("geostationary → WGS84 is %.2f m from PROJ", worst)
	}
}

// TestGeostationaryAgainstSEVIRI maps the geostationary x/y of real SEVIRI
// pixels to OSGB and compares with the store's own x_osgb/y_osgb.
func TestGeostationaryAgainstSEVIRI(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(testenv.RealData(t), "ocf-nowcasting-2023", "seviri_nonhrv.zarr")
	g, err := zarr.OpenGroup(ctx, dirstore.New(path), "")
	if err != nil {
		t.Fatal(err)
	}
	arr, err := g.Array("data")
	if err != nil {
		t.Fatal(err)
	}
	geo, ok := satpyArea(arr.Attrs)
	if !ok {
		t.Fatal("no projection in the area attribute")
	}
	if geo.Longitude != 9.5 || geo.Height != 35785831 {
		t.Fatalf("projection %+v", geo)
	}
	_, xs, err := readFloats(ctx, g, "x")
	if err != nil {
		t.Fatal(err)
	}
	_, ys, err := readFloats(ctx, g, "y")
	if err != nil {
		t.Fatal(err)
	}
	_, xo, err := readFloats(ctx, g, "x_osgb")
	if err != nil {
		t.Fatal(err)
	}
	_, yo, err := readFloats(ctx, g, "y_osgb")
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for r := 0; r < len(ys); r += 37 {
		for c := 0; c < len(xs); c += 41 {
			lat, lon, ok := geo.Inverse(xs[c], ys[r])
			if !ok {
				t.Fatalf("pixel (%d, %d) off the disc", r, c)
			}
			x, y := WGS84ToOSGB(lat, lon)
			d := math.Hypot(x-xo[r*len(xs)+c], y-yo[r*len(xs)+c])
			worst = max(worst, d)
			gx, gy, ok := geo.Forward(lat, lon)
			if !ok || math.Hypot(gx-xs[c], gy-ys[r]) > 1e-3 {
				t.Fatalf("forward(inverse(%g, %g)) = %g, %g", xs[c], ys[r], gx, gy)
			}
		}
	}
	t.Logf("worst distance from the store's x_osgb/y_osgb: %.1f m", worst)
	// The store's own coordinates are up to 150 m from PROJ's.
	if worst > 300 {
		t.Errorf("geostationary → OSGB is %.0f m from the store's coordinates", worst)
	}
}

// TestGeostationaryGridMatchesAuxCoords locates the same OSGB points on
// SEVIRI's grid twice: through the 1-D geostationary x/y (projecting each
// point) and through the 2-D x_osgb/y_osgb bucket index.
func TestGeostationaryGridMatchesAuxCoords(t *testing.T) {
	spec := loadSpec(t, "real_ukv_seviri.yaml")
	aux, err := NewPlan(context.Background(), spec, dirOpener)
	if err != nil {
		t.Fatal(err)
	}
	spec = loadSpec(t, "real_ukv_seviri.yaml")
	spec.Sources["sat"].Coords = &CoordsSpec{X: "x", Y: "y"}
	spec.Sources["sat"].CRS = "geostationary"
	geos, err := NewPlan(context.Background(), spec, dirOpener)
	if err != nil {
		t.Fatal(err)
	}
	ga, gg := aux.src[1].grid, geos.src[1].grid
	rng := counterRNG{key: 1}
	found, off := 0, 0
	for range 2000 {
		x := -2e5 + rng.float64()*9e5
		y := 0 + rng.float64()*1.2e6
		r1, c1, ok1 := ga.pixel(x, y)
		r2, c2, ok2 := gg.pixel(x, y)
		if ok1 != ok2 {
			// Only at the very edge may the two disagree.
			off++
			continue
		}
		if !ok1 {
			continue
		}
		found++
		if abs(r1-r2) > 1 || abs(c1-c2) > 1 {
			t.Fatalf("(%.0f, %.0f): aux coords give pixel (%d, %d), geostationary (%d, %d)", x, y, r1, c1, r2, c2)
		}
	}
	if found < 1000 || off > 40 {
		t.Errorf("%d points inside both, %d inside only one", found, off)
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
