package sampler

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// maxSites bounds a sites file.
const maxSites = 1 << 20

// readSites reads a CSV of sites with lat and lon columns (WGS84 degrees)
// into OSGB locations.
func readSites(path string) ([]location, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: header: %w", path, err)
	}
	latCol, lonCol := -1, -1
	for i, h := range header {
		switch strings.ToLower(strings.TrimSpace(h)) {
		case "lat", "latitude":
			latCol = i
		case "lon", "longitude":
			lonCol = i
		}
	}
	if latCol < 0 || lonCol < 0 {
		// The header found is not quoted: the file may be anything the
		// server can read, and only what the spec wrote is echoed back.
		return nil, fmt.Errorf("%s: the header (line 1) needs a lat (or latitude) and a lon (or longitude) column", path)
	}
	var out []location
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("%s: line %d: %w", path, line, err)
		}
		lat, err1 := strconv.ParseFloat(strings.TrimSpace(rec[latCol]), 64)
		lon, err2 := strconv.ParseFloat(strings.TrimSpace(rec[lonCol]), 64)
		if err1 != nil || err2 != nil || !(math.Abs(lat) <= 90) || !(math.Abs(lon) <= 360) {
			return nil, fmt.Errorf("%s: line %d: lat and lon must be degrees within ±90 and ±360", path, line)
		}
		if len(out) == maxSites {
			return nil, fmt.Errorf("%s: more than %d sites", path, maxSites)
		}
		x, y := WGS84ToOSGB(lat, lon)
		out = append(out, location{x, y, lat, lon})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no sites", path)
	}
	return out, nil
}
