package sampler

import "math"

// The projections the sampler maps locations through. Every location is
// drawn in OSGB (EPSG:27700) and mapped into each source's grid; accuracy of
// a few metres is plenty against pixels of a kilometre or more.

const deg = math.Pi / 180

type ellipsoid struct{ a, b float64 }

var (
	wgs84 = ellipsoid{6378137, 6356752.314245}
	airy  = ellipsoid{6377563.396, 6356256.909}
)

func (e ellipsoid) e2() float64 { return 1 - e.b*e.b/(e.a*e.a) }

// toCartesian converts geodetic lat/lon (radians, height 0) to ECEF metres.
func (e ellipsoid) toCartesian(lat, lon float64) (x, y, z float64) {
	e2 := e.e2()
	sinLat, cosLat := math.Sincos(lat)
	nu := e.a / math.Sqrt(1-e2*sinLat*sinLat)
	return nu * cosLat * math.Cos(lon), nu * cosLat * math.Sin(lon), (1 - e2) * nu * sinLat
}

// fromCartesian converts ECEF metres to geodetic lat/lon (radians).
func (e ellipsoid) fromCartesian(x, y, z float64) (lat, lon float64) {
	e2 := e.e2()
	p := math.Hypot(x, y)
	lat = math.Atan2(z, p*(1-e2))
	for range 10 {
		sinLat := math.Sin(lat)
		nu := e.a / math.Sqrt(1-e2*sinLat*sinLat)
		next := math.Atan2(z+e2*nu*sinLat, p)
		if math.Abs(next-lat) < 1e-12 {
			lat = next
			break
		}
		lat = next
	}
	return lat, math.Atan2(y, x)
}

// helmert applies the seven-parameter shift from WGS84 to OSGB36 (sign +1)
// or back (sign −1), Ordnance Survey's published parameters.
func helmert(x, y, z, sign float64) (float64, float64, float64) {
	const arcsec = deg / 3600
	tx, ty, tz := -446.448*sign, 125.157*sign, -542.060*sign
	s := 20.4894e-6 * sign
	rx, ry, rz := -0.1502*arcsec*sign, -0.2470*arcsec*sign, -0.8421*arcsec*sign
	return tx + (1+s)*x - rz*y + ry*z,
		ty + rz*x + (1+s)*y - rx*z,
		tz - ry*x + rx*y + (1+s)*z
}

// National Grid transverse Mercator on Airy 1830.
const (
	osgbF0   = 0.9996012717
	osgbLat0 = 49 * deg
	osgbLon0 = -2 * deg
	osgbE0   = 400000.0
	osgbN0   = -100000.0
)

func osgbMeridionalArc(lat float64) float64 {
	a, b := airy.a, airy.b
	n := (a - b) / (a + b)
	n2, n3 := n*n, n*n*n
	d, s := lat-osgbLat0, lat+osgbLat0
	return b * osgbF0 * ((1+n+1.25*n2+1.25*n3)*d -
		(3*n+3*n2+2.625*n3)*math.Sin(d)*math.Cos(s) +
		(1.875*n2+1.875*n3)*math.Sin(2*d)*math.Cos(2*s) -
		(35.0/24)*n3*math.Sin(3*d)*math.Cos(3*s))
}

// tmForward projects OSGB36 lat/lon (radians) onto the National Grid.
func tmForward(lat, lon float64) (e, n float64) {
	a := airy.a
	e2 := airy.e2()
	sinLat, cosLat := math.Sincos(lat)
	tanLat := sinLat / cosLat
	nu := a * osgbF0 / math.Sqrt(1-e2*sinLat*sinLat)
	rho := a * osgbF0 * (1 - e2) / math.Pow(1-e2*sinLat*sinLat, 1.5)
	eta2 := nu/rho - 1
	m := osgbMeridionalArc(lat)
	t2 := tanLat * tanLat
	c3 := cosLat * cosLat * cosLat
	c5 := c3 * cosLat * cosLat
	i := m + osgbN0
	ii := nu / 2 * sinLat * cosLat
	iii := nu / 24 * sinLat * c3 * (5 - t2 + 9*eta2)
	iiia := nu / 720 * sinLat * c5 * (61 - 58*t2 + t2*t2)
	iv := nu * cosLat
	v := nu / 6 * c3 * (nu/rho - t2)
	vi := nu / 120 * c5 * (5 - 18*t2 + t2*t2 + 14*eta2 - 58*t2*eta2)
	dl := lon - osgbLon0
	dl2 := dl * dl
	n = i + ii*dl2 + iii*dl2*dl2 + iiia*dl2*dl2*dl2
	e = osgbE0 + iv*dl + v*dl2*dl + vi*dl2*dl2*dl
	return e, n
}

// tmInverse maps National Grid metres to OSGB36 lat/lon (radians).
func tmInverse(e, n float64) (lat, lon float64) {
	a := airy.a
	e2 := airy.e2()
	lat = osgbLat0
	m := 0.0
	for range 20 {
		lat = (n-osgbN0-m)/(a*osgbF0) + lat
		m = osgbMeridionalArc(lat)
		if math.Abs(n-osgbN0-m) < 1e-5 {
			break
		}
	}
	sinLat, cosLat := math.Sincos(lat)
	tanLat := sinLat / cosLat
	nu := a * osgbF0 / math.Sqrt(1-e2*sinLat*sinLat)
	rho := a * osgbF0 * (1 - e2) / math.Pow(1-e2*sinLat*sinLat, 1.5)
	eta2 := nu/rho - 1
	t2, t4 := tanLat*tanLat, tanLat*tanLat*tanLat*tanLat
	sec := 1 / cosLat
	vii := tanLat / (2 * rho * nu)
	viii := tanLat / (24 * rho * nu * nu * nu) * (5 + 3*t2 + eta2 - 9*t2*eta2)
	ix := tanLat / (720 * rho * math.Pow(nu, 5)) * (61 + 90*t2 + 45*t4)
	x := sec / nu
	xi := sec / (6 * nu * nu * nu) * (nu/rho + 2*t2)
	xii := sec / (120 * math.Pow(nu, 5)) * (5 + 28*t2 + 24*t4)
	xiia := sec / (5040 * math.Pow(nu, 7)) * (61 + 662*t2 + 1320*t4 + 720*t4*t2)
	de := e - osgbE0
	d2 := de * de
	lat = lat - vii*d2 + viii*d2*d2 - ix*d2*d2*d2
	lon = osgbLon0 + x*de - xi*d2*de + xii*d2*d2*de - xiia*d2*d2*d2*de
	return lat, lon
}

// WGS84ToOSGB maps WGS84 degrees to OSGB (EPSG:27700) easting/northing in metres.
func WGS84ToOSGB(lat, lon float64) (x, y float64) {
	cx, cy, cz := wgs84.toCartesian(lat*deg, lon*deg)
	cx, cy, cz = helmert(cx, cy, cz, 1)
	la, lo := airy.fromCartesian(cx, cy, cz)
	return tmForward(la, lo)
}

// OSGBToWGS84 maps OSGB easting/northing in metres to WGS84 degrees.
func OSGBToWGS84(x, y float64) (lat, lon float64) {
	la, lo := tmInverse(x, y)
	cx, cy, cz := airy.toCartesian(la, lo)
	cx, cy, cz = helmert(cx, cy, cz, -1)
	la, lo = wgs84.fromCartesian(cx, cy, cz)
	return la / deg, lo / deg
}

// Geostationary is the CGMS geostationary projection (PROJ "geos"): x and y
// are scanning angles times the satellite height, in metres.
type Geostationary struct {
	Height    float64 // satellite height above the ellipsoid, metres
	Longitude float64 // sub-satellite longitude, degrees east
	SweepX    bool    // GOES scans x first; SEVIRI (false) scans y first
	A, B      float64 // ellipsoid semi-axes; zero means WGS84
}

func (g Geostationary) axes() (float64, float64) {
	if g.A == 0 {
		return wgs84.a, wgs84.b
	}
	return g.A, g.B
}

// Forward maps WGS84 degrees to projection metres; false when the point is
// not visible from the satellite.
func (g Geostationary) Forward(lat, lon float64) (x, y float64, ok bool) {
	a, b := g.axes()
	e := ellipsoid{a, b}
	px, py, pz := e.toCartesian(lat*deg, (lon-g.Longitude)*deg)
	rg := a + g.Height
	// Vector from the satellite to the point.
	vx, vy, vz := px-rg, py, pz
	// Visible when the point faces the satellite: the ellipsoid normal
	// (scaled) points towards it.
	if px*(rg-px)-py*py-pz*pz*(a*a)/(b*b) < 0 {
		return 0, 0, false
	}
	tmp := -vx
	if g.SweepX {
		x = g.Height * math.Atan(vy/math.Hypot(vz, tmp))
		y = g.Height * math.Atan(vz/tmp)
	} else {
		x = g.Height * math.Atan(vy/tmp)
		y = g.Height * math.Atan(vz/math.Hypot(vy, tmp))
	}
	return x, y, true
}

// Inverse maps projection metres to WGS84 degrees; false off the Earth's disc.
func (g Geostationary) Inverse(x, y float64) (lat, lon float64, ok bool) {
	a, b := g.axes()
	rg := a + g.Height
	ax, ay := x/g.Height, y/g.Height
	// Direction of the ray from the satellite, x component −1.
	var dy, dz float64
	if g.SweepX {
		dz = math.Tan(ay)
		dy = math.Tan(ax) * math.Hypot(1, dz)
	} else {
		dy = math.Tan(ax)
		dz = math.Tan(ay) * math.Hypot(1, dy)
	}
	k := (a * a) / (b * b)
	qa := 1 + dy*dy + dz*dz*k
	qb := -2 * rg
	qc := rg*rg - a*a
	disc := qb*qb - 4*qa*qc
	if disc < 0 {
		return 0, 0, false
	}
	t := (-qb - math.Sqrt(disc)) / (2 * qa)
	px, py, pz := rg-t, t*dy, t*dz
	e := ellipsoid{a, b}
	la, lo := e.fromCartesian(px, py, pz)
	return la / deg, lo/deg + g.Longitude, true
}
