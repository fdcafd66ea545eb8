// Package synth writes the synthetic datasets: the built-in demo data (an
// NWP-like Zarr v2 store and a satellite-like sharded Zarr v3 store over
// one area and period) and the benchmark workloads. Every value comes from
// a fixed seed, so the stores are byte-identical on every machine.
package synth

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lsio-loader/lsio-loader/internal/zarrwrite"
)

// DemoVersion names the generator: a directory whose marker holds another
// version (or none) is written again.
const DemoVersion = "lsio-loader demo dataset v2"

// DemoMarker is written last, so that its presence means the dataset is
// complete.
const DemoMarker = "DEMO_COMPLETE"

// demoSeed fixes every random draw, so that the dataset is the same on every
// machine.
const demoSeed = 20200401

// demoSize scales the sample dataset.
type demoSize struct {
	inits, steps         int64 // NWP runs (every 3 h) and hourly steps per run
	nwpY, nwpX           int64 // 2 km grid
	nwpChunkY, nwpChunkX int64
	satY, satX           int64 // 3 km grid
	satInner, satShardT  int64 // inner chunk side (y, x); time steps per shard
	satShardY, satShardX int64
	satTimes             int64 // every 5 min
	satMissingEvery      int64 // one pixel in this many is NaN in every channel
}

var demoSizes = map[string]demoSize{
	// About 130 MB of NWP and 600 MB of satellite values before compression.
	"small": {inits: 8, steps: 7, nwpY: 352, nwpX: 274, nwpChunkY: 176, nwpChunkX: 137,
		satY: 236, satX: 184, satInner: 64, satShardT: 12, satShardY: 128, satShardX: 128, satTimes: 325,
		satMissingEvery: 200000},
	// A few hundred KB, for tests.
	"tiny": {inits: 5, steps: 2, nwpY: 44, nwpX: 35, nwpChunkY: 22, nwpChunkX: 18,
		satY: 30, satX: 24, satInner: 16, satShardT: 12, satShardY: 32, satShardX: 32, satTimes: 25,
		satMissingEvery: 2000},
}

// The demo grid: OSGB (EPSG:27700) metres of the north-west corner pixel
// centre; y descends, x ascends, as in the Met Office UKV.
const (
	demoX0, demoY0 = 100_000.0, 1_100_000.0
	nwpStep        = 2000.0
	satStep        = 3000.0
)

var (
	demoStart    = time.Date(2020, 4, 1, 0, 0, 0, 0, time.UTC)
	nwpVariables = []string{"t2m", "u10", "v10", "prmsl", "tcc", "dswrf"}
	nwpUnits     = []string{"K", "m s-1", "m s-1", "Pa", "1", "W m-2"}
	satChannels  = []string{"IR_016", "IR_039", "IR_087", "IR_097", "IR_108", "IR_120", "IR_134",
		"VIS006", "VIS008", "WV_062", "WV_073"}
)

// Written is one store a generator wrote.
type Written struct {
	Path  string
	Bytes int64
	Took  time.Duration
}

// DemoSizes names the demo dataset sizes, for flags and messages.
const DemoSizes = "small or tiny"

// WriteDemo writes the demo dataset of the named size into dir:
// nwp.zarr, satellite.zarr and, last, DemoMarker. It does nothing and
// reports fresh false when dir already holds that dataset; otherwise it
// calls wrote after each store.
func WriteDemo(ctx context.Context, dir, sizeName string, wrote func(Written)) (fresh bool, err error) {
	size, ok := demoSizes[sizeName]
	if !ok {
		return false, fmt.Errorf("demo size %q: want %s", sizeName, DemoSizes)
	}
	stamp := DemoVersion + " size=" + sizeName + "\n"
	marker := filepath.Join(dir, DemoMarker)
	if b, err := os.ReadFile(marker); err == nil && string(b) == stamp {
		return false, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("demo: %w", err)
	}
	// A stale or partial dataset goes first, so that no old chunk survives.
	for _, p := range []string{marker, filepath.Join(dir, "nwp.zarr"), filepath.Join(dir, "satellite.zarr")} {
		if err := os.RemoveAll(p); err != nil {
			return false, fmt.Errorf("demo: removing stale %s: %w", p, err)
		}
	}
	for _, store := range []struct {
		name  string
		write func(context.Context, string, demoSize) error
	}{{"nwp.zarr", writeDemoNWP}, {"satellite.zarr", writeDemoSatellite}} {
		t0 := time.Now()
		path := filepath.Join(dir, store.name)
		if err := store.write(ctx, path, size); err != nil {
			return false, fmt.Errorf("demo: writing %s: %w", path, err)
		}
		n, err := dirBytes(path)
		if err != nil {
			return false, fmt.Errorf("demo: %w", err)
		}
		wrote(Written{Path: path, Bytes: n, Took: time.Since(t0)})
	}
	if err := os.WriteFile(marker, []byte(stamp), 0o644); err != nil {
		return false, fmt.Errorf("demo: %w", err)
	}
	return true, nil
}

func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	return n, err
}

// wave is one travelling sinusoid of a smooth field; distances in km,
// time in hours.
type wave struct{ kx, ky, omega, phase, amp float64 }

// waves draws n travelling waves with wavelengths of 150 to 900 km whose
// amplitudes sum to 1, so that the field lies in [-1, 1].
func waves(rng *rand.Rand, n int) []wave {
	ws := make([]wave, n)
	total := 0.0
	for i := range ws {
		length := 150 + 750*rng.Float64()
		dir := 2 * math.Pi * rng.Float64()
		k := 2 * math.Pi / length
		ws[i] = wave{kx: k * math.Cos(dir), ky: k * math.Sin(dir), omega: (rng.Float64() - 0.3) * 0.25,
			phase: 2 * math.Pi * rng.Float64(), amp: 1 / (1 + float64(i))}
		total += ws[i].amp
	}
	for i := range ws {
		ws[i].amp /= total
	}
	return ws
}

// field evaluates waves over a grid at one time: out[y*len(xs)+x]. Each
// wave is separable, sin(a+b) = sin a cos b + cos a sin b, so the cost per
// point is two multiply-adds per wave.
func field(ws []wave, hours float64, ys, xs []float64, out []float64) {
	clear(out)
	sx, cx := make([]float64, len(xs)), make([]float64, len(xs))
	for _, w := range ws {
		for i, x := range xs {
			sx[i], cx[i] = math.Sincos(w.kx*x + w.omega*hours + w.phase)
		}
		for j, y := range ys {
			sy, cy := math.Sincos(w.ky * y)
			row := out[j*len(xs) : (j+1)*len(xs)]
			for i := range row {
				row[i] += w.amp * (sx[i]*cy + cx[i]*sy)
			}
		}
	}
}

// gridM returns n coordinates from start by step, starting at index from.
func gridM(start, step float64, from, n int64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = start + step*float64(from+int64(i))
	}
	return out
}

// gridKM is gridM in km, the unit of the wave fields.
func gridKM(start, step float64, from, n int64) []float64 {
	out := gridM(start, step, from, n)
	for i := range out {
		out[i] /= 1000
	}
	return out
}

// daylight is a crude solar elevation factor in [0, 1]: zero at night,
// one at noon UTC.
func daylight(hours float64) float64 {
	return max(0, math.Sin(2*math.Pi*(hours-6)/24))
}

// dswrf is downward shortwave radiation: none at night.
func dswrf(sun, tcc, noise float64) float64 {
	if sun == 0 {
		return 0
	}
	return max(0, 850*sun*(1-0.75*tcc)+4*noise)
}

// noiseSource is a splitmix64 stream: the demo draws one value per
// element, so the generator must cost a few ns, not tens.
type noiseSource struct{ state uint64 }

func (n *noiseSource) uint64() uint64 {
	n.state += 0x9e3779b97f4a7c15
	z := n.state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// normal returns roughly normal noise with unit variance: the sum of two
// uniforms (triangular), scaled.
func (n *noiseSource) normal() float64 {
	z := n.uint64()
	return (float64(z&0xffffffff)/(1<<32) + float64(z>>32)/(1<<32) - 1) * 2.449
}

// chunkNoise seeds a stream from the chunk index, so that values do not
// depend on which goroutine writes which chunk.
func chunkNoise(stream uint64, idx []int64) *noiseSource {
	seed := uint64(demoSeed)
	h := seed*0x9e3779b97f4a7c15 + stream
	for _, v := range idx {
		h = (h ^ uint64(v)) * 0x100000001b3
	}
	return &noiseSource{state: h}
}

// quantize rounds to 1/q so that shuffle+zstd finds the zero low bits that
// real (packed) data has.
func quantize(v, q float64) float32 { return float32(math.Round(v*q) / q) }

func putF32(b []byte, i int, v float32) { binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v)) }

func writeDemoNWP(ctx context.Context, dir string, s demoSize) error {
	g, err := zarrwrite.CreateGroup(dir, 2)
	if err != nil {
		return err
	}
	g.Attrs["title"] = "lsio-loader demo NWP: a synthetic UKV-like forecast on the OSGB 2 km grid"
	g.Attrs["source"] = DemoVersion
	nv := int64(len(nwpVariables))
	ukv, err := g.CreateArray("UKV", zarrwrite.ArrayMeta{DType: "<f4", Shape: []int64{s.inits, s.steps, nv, s.nwpY, s.nwpX},
		ChunkShape: []int64{1, 1, nv, s.nwpChunkY, s.nwpChunkX}, Fill: math.NaN(),
		Dims:       []string{"init_time", "step", "variable", "y", "x"},
		Attrs:      map[string]any{"long_name": "synthetic NWP fields", "units": strings.Join(nwpUnits, ",")},
		Compressor: zarrwrite.Compressor{Name: "blosc", Cname: "zstd", Level: 5, Shuffle: true}})
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(demoSeed, 1))
	fields := make([][]wave, nv)
	for v := range fields {
		fields[v] = waves(rng, 6)
	}
	err = ukv.FillChunks(ctx, func(idx []int64, chunk []byte) error {
		ys := gridKM(demoY0, -nwpStep, idx[3]*s.nwpChunkY, min(s.nwpChunkY, s.nwpY-idx[3]*s.nwpChunkY))
		xs := gridKM(demoX0, nwpStep, idx[4]*s.nwpChunkX, min(s.nwpChunkX, s.nwpX-idx[4]*s.nwpChunkX))
		// A forecast's valid time; later steps drift further from truth.
		hours := float64(idx[0]*3 + idx[1])
		drift := 0.05 * float64(idx[1])
		rng := chunkNoise(1, idx)
		plane := int(s.nwpChunkY * s.nwpChunkX)
		p := make([][]float64, nv)
		for v := range p {
			p[v] = make([]float64, len(ys)*len(xs))
			field(fields[v], hours+drift*float64(v+1), ys, xs, p[v])
		}
		sun := daylight(math.Mod(hours, 24))
		diurnal := 5 * math.Sin(2*math.Pi*(math.Mod(hours, 24)-9)/24)
		for j, y := range ys {
			for i := range xs {
				k := j*len(xs) + i
				at := j*int(s.nwpChunkX) + i
				tcc := min(1, max(0, 0.5+0.9*p[4][k]+0.03*rng.normal()))
				vals := [...]float64{
					283 + 6*p[0][k] - 0.008*(y-700) + diurnal + 0.3*rng.normal(),
					4 + 6*p[1][k] + 0.5*rng.normal(),
					1 + 6*p[2][k] + 0.5*rng.normal(),
					101325 + 1500*p[3][k] + 8*rng.normal(),
					tcc,
					dswrf(sun, tcc, rng.normal()),
				}
				for v, x := range vals {
					putF32(chunk, v*plane+at, quantize(x, 64))
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	initTimes := make([]int64, s.inits)
	for i := range initTimes {
		initTimes[i] = demoStart.Add(time.Duration(i) * 3 * time.Hour).UnixNano()
	}
	steps := make([]int64, s.steps)
	for i := range steps {
		steps[i] = int64(time.Duration(i) * time.Hour)
	}
	coords := []demoCoord{
		{"init_time", "<M8[ns]", s.inits, int64Bytes(initTimes), map[string]any{"long_name": "forecast initialisation time"}},
		{"step", "<m8[ns]", s.steps, int64Bytes(steps), map[string]any{"long_name": "forecast lead time"}},
		{"variable", "<U5", nv, utf32Labels(nwpVariables, 5), map[string]any{"long_name": "variable name"}},
		{"y", "<f8", s.nwpY, float64Bytes(gridM(demoY0, -nwpStep, 0, s.nwpY)), osgbAttrs("y")},
		{"x", "<f8", s.nwpX, float64Bytes(gridM(demoX0, nwpStep, 0, s.nwpX)), osgbAttrs("x")},
	}
	if err := writeCoords(ctx, g, coords); err != nil {
		return err
	}
	return g.Close()
}

func writeDemoSatellite(ctx context.Context, dir string, s demoSize) error {
	g, err := zarrwrite.CreateGroup(dir, 3)
	if err != nil {
		return err
	}
	g.Attrs["title"] = "lsio-loader demo satellite: synthetic SEVIRI-like channels on an OSGB 3 km grid"
	g.Attrs["source"] = DemoVersion
	nc := int64(len(satChannels))
	data, err := g.CreateArray("data", zarrwrite.ArrayMeta{DType: "<f4", Shape: []int64{s.satTimes, nc, s.satY, s.satX},
		ChunkShape: []int64{1, nc, s.satInner, s.satInner}, ShardShape: []int64{s.satShardT, nc, s.satShardY, s.satShardX},
		Fill: math.NaN(), Dims: []string{"time", "channel", "y", "x"},
		Attrs:      map[string]any{"long_name": "synthetic reflectance (VIS, IR_016) and brightness temperature (K)"},
		Compressor: zarrwrite.Compressor{Name: "zstd", Level: 1}})
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(demoSeed, 2))
	cloud, vapour := waves(rng, 7), waves(rng, 4)
	// Each channel is one linear model: reflectance (VIS, IR_016) grows
	// with cloud by day; water vapour channels follow their own field; the
	// other IR channels see the surface or the cold cloud top, offset by
	// their absorption, with IR_039 warmed by reflected sunlight.
	type channelModel struct{ vis, wvBase, wvGain, ir, irOffset, solar, noise, quantum float64 }
	models := map[string]channelModel{
		"IR_016": {vis: 0.7, noise: 0.004, quantum: 1024},
		"VIS006": {vis: 1, noise: 0.004, quantum: 1024},
		"VIS008": {vis: 0.95, noise: 0.004, quantum: 1024},
		"WV_062": {wvBase: 235, wvGain: 5, noise: 0.15, quantum: 16},
		"WV_073": {wvBase: 250, wvGain: 6, noise: 0.15, quantum: 16},
		"IR_039": {ir: 1, irOffset: 3, solar: 10, noise: 0.2, quantum: 16},
		"IR_087": {ir: 1, irOffset: -2, noise: 0.2, quantum: 16},
		"IR_097": {ir: 1, irOffset: -25, noise: 0.2, quantum: 16},
		"IR_108": {ir: 1, noise: 0.2, quantum: 16},
		"IR_120": {ir: 1, irOffset: -1.5, noise: 0.2, quantum: 16},
		"IR_134": {ir: 1, irOffset: -12, noise: 0.2, quantum: 16},
	}
	chans := make([]channelModel, len(satChannels))
	for i, name := range satChannels {
		chans[i] = models[name]
	}
	err = data.FillChunks(ctx, func(idx []int64, shard []byte) error {
		t0, y0, x0 := idx[0]*s.satShardT, idx[2]*s.satShardY, idx[3]*s.satShardX
		ys := gridKM(demoY0, -satStep, y0, min(s.satShardY, s.satY-y0))
		xs := gridKM(demoX0, satStep, x0, min(s.satShardX, s.satX-x0))
		rng := chunkNoise(2, idx)
		c := make([]float64, len(ys)*len(xs))
		wv := make([]float64, len(ys)*len(xs))
		plane := int(s.satShardY * s.satShardX)
		for t := t0; t < min(t0+s.satShardT, s.satTimes); t++ {
			hours := float64(t) / 12
			field(cloud, hours, ys, xs, c)
			field(vapour, hours, ys, xs, wv)
			sun := daylight(math.Mod(hours, 24))
			for j, y := range ys {
				surface := 285 + 8*sun - 0.008*(y-700)
				for i := range xs {
					k := j*len(xs) + i
					cl := min(1, max(0, 0.45+1.2*c[k]))
					window := surface*(1-cl) + 225*cl
					at := j*int(s.satShardX) + i
					// Rare missing pixels, as in real scans.
					missing := rng.uint64()%uint64(s.satMissingEvery) == 0
					for ch, m := range chans {
						v := quantize(m.vis*sun*(0.08+0.75*cl)+m.wvBase+m.wvGain*wv[k]+
							m.ir*(window+m.irOffset+m.solar*sun*(1-cl))+m.noise*rng.normal(), m.quantum)
						if m.vis > 0 {
							v = max(v, 0) // no negative reflectance, whatever the noise
						}
						if missing {
							v = float32(math.NaN())
						}
						putF32(shard, (int(t-t0)*int(nc)+ch)*plane+at, v)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	minutes := make([]int64, s.satTimes)
	for i := range minutes {
		minutes[i] = int64(i) * 5
	}
	coords := []demoCoord{
		{"time", "<i8", s.satTimes, int64Bytes(minutes), map[string]any{"units": "minutes since 2020-04-01 00:00:00",
			"calendar": "proleptic_gregorian", "standard_name": "time"}},
		{"channel", "<U6", nc, utf32Labels(satChannels, 6), map[string]any{"long_name": "SEVIRI channel"}},
		{"y", "<f8", s.satY, float64Bytes(gridM(demoY0, -satStep, 0, s.satY)), osgbAttrs("y")},
		{"x", "<f8", s.satX, float64Bytes(gridM(demoX0, satStep, 0, s.satX)), osgbAttrs("x")},
	}
	if err := writeCoords(ctx, g, coords); err != nil {
		return err
	}
	return g.Close()
}

// demoCoord is one 1-D coordinate array, named after its dimension.
type demoCoord struct {
	name, dtype string
	n           int64
	data        []byte
	attrs       map[string]any
}

func writeCoords(ctx context.Context, g *zarrwrite.GroupWriter, coords []demoCoord) error {
	for _, c := range coords {
		var fill any
		if c.dtype == "<f8" {
			fill = math.NaN()
		}
		w, err := g.CreateArray(c.name, zarrwrite.ArrayMeta{DType: c.dtype, Shape: []int64{c.n}, ChunkShape: []int64{c.n},
			Dims: []string{c.name}, Attrs: c.attrs, Fill: fill})
		if err != nil {
			return err
		}
		if err := w.WriteArray(ctx, c.data); err != nil {
			return err
		}
	}
	return nil
}

func osgbAttrs(axis string) map[string]any {
	return map[string]any{"units": "m", "standard_name": "projection_" + axis + "_coordinate",
		"long_name": "OSGB36 / British National Grid (EPSG:27700) " + axis}
}

func int64Bytes(v []int64) []byte {
	out := make([]byte, 0, 8*len(v))
	for _, x := range v {
		out = binary.LittleEndian.AppendUint64(out, uint64(x))
	}
	return out
}

func float64Bytes(v []float64) []byte {
	out := make([]byte, 0, 8*len(v))
	for _, x := range v {
		out = binary.LittleEndian.AppendUint64(out, math.Float64bits(x))
	}
	return out
}

// utf32Labels encodes labels as numpy "<U<width>".
func utf32Labels(labels []string, width int) []byte {
	out := make([]byte, 4*width*len(labels))
	for i, s := range labels {
		for j, r := range []rune(s)[:min(width, len([]rune(s)))] {
			binary.LittleEndian.PutUint32(out[4*(i*width+j):], uint32(r))
		}
	}
	return out
}
