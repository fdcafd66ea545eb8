package synth

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/lsio-loader/lsio-loader/internal/zarrwrite"
	"github.com/lsio-loader/lsio-loader/zarr"
)

// benchSize is one size of the benchmark workloads (see bench/gen.py, the
// zarr-python twin of this generator, for the layout's rationale).
type benchSize struct {
	SatTimes, NWPInits, NWPSteps int64
}

var benchSizes = map[string]benchSize{
	// About 2.6 GB raw, 1.7 GB on disk: fits this class of machine's page
	// cache and generates in well under a minute on 2 cores.
	"small": {SatTimes: 128, NWPInits: 3, NWPSteps: 13},
	// About 60 GB raw: bigger than RAM, for cold-read runs on real machines.
	"large": {SatTimes: 2880, NWPInits: 16, NWPSteps: 37},
}

var (
	benchSatChannels = []string{"HRV", "IR_016", "IR_039", "IR_087", "IR_097", "IR_108", "IR_120",
		"IR_134", "VIS006", "VIS008", "WV_062", "WV_073"}
	benchNWPVariables = []string{"t2m", "u10", "v10", "prmsl", "tcc", "dswrf", "dlwrf", "hcc", "mcc",
		"lcc", "sde", "r", "vis", "si10", "wdir10", "prate", "t500"}
)

const (
	benchSatSide          = 512
	benchSatInner         = 128
	benchNWPY, benchNWPX  = 704, 548
	benchNWPChunkY        = 176
	benchNWPChunkX        = 137
	benchGeneratorVersion = "loader bench gen v2"
)

// BenchSizes names the benchmark workload sizes, for flags and messages.
const BenchSizes = "small or large"

// WriteBench writes the benchmark workloads of the named size into dir:
// satellite.zarr, nwp.zarr and, last, a COMPLETE.json marker. It does
// nothing and reports fresh false when dir already holds those workloads;
// otherwise it calls wrote after each store, and progress (when not nil;
// from several goroutines at once) as chunks are generated, with the raw
// bytes done and in all.
func WriteBench(ctx context.Context, dir, sizeName string, seed uint64, wrote func(Written), progress func(done, total int64)) (fresh bool, err error) {
	s, ok := benchSizes[sizeName]
	if !ok {
		return false, fmt.Errorf("bench size %q: want %s", sizeName, BenchSizes)
	}
	marker := filepath.Join(dir, "COMPLETE.json")
	want := map[string]any{"size": sizeName, "seed": seed, "generator": benchGeneratorVersion, "layout": s}
	if done, err := os.ReadFile(marker); err == nil {
		var have, wantJSON map[string]any
		b, _ := json.Marshal(want)
		if json.Unmarshal(done, &have) == nil && json.Unmarshal(b, &wantJSON) == nil && reflect.DeepEqual(have, wantJSON) {
			return false, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("bench gen: %w", err)
	}
	if err := os.Remove(marker); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("bench gen: %w", err)
	}
	made := &chunkCounter{total: s.rawBytes(), report: progress}
	for _, w := range []struct {
		name  string
		write func(context.Context, string, benchSize, uint64, *chunkCounter) error
	}{{"satellite.zarr", writeBenchSatellite}, {"nwp.zarr", writeBenchNWP}} {
		start := time.Now()
		path := filepath.Join(dir, w.name)
		if err := os.RemoveAll(path); err != nil {
			return false, fmt.Errorf("bench gen: %w", err)
		}
		if err := w.write(ctx, path, s, seed, made); err != nil {
			return false, fmt.Errorf("bench gen %s: %w", path, err)
		}
		n, err := dirBytes(path)
		if err != nil {
			return false, fmt.Errorf("bench gen: %w", err)
		}
		wrote(Written{Path: path, Bytes: n, Took: time.Since(start)})
	}
	b, err := json.Marshal(want)
	if err != nil {
		return false, fmt.Errorf("bench gen: %w", err)
	}
	if err := os.WriteFile(marker, b, 0o644); err != nil {
		return false, fmt.Errorf("bench gen: %w", err)
	}
	return true, nil
}

// rawBytes is what the workloads' chunks hold before compression, edge
// chunks whole.
func (s benchSize) rawBytes() int64 {
	sat := s.SatTimes * int64(len(benchSatChannels)) * benchSatSide * benchSatSide * 4
	yChunks := int64((benchNWPY + benchNWPChunkY - 1) / benchNWPChunkY)
	xChunks := int64((benchNWPX + benchNWPChunkX - 1) / benchNWPChunkX)
	nwp := s.NWPInits * s.NWPSteps * yChunks * xChunks * int64(len(benchNWPVariables)) * benchNWPChunkY * benchNWPChunkX * 4
	return sat + nwp
}

// chunkCounter sums the raw bytes of the chunks generated so far.
type chunkCounter struct {
	done   atomic.Int64
	total  int64
	report func(done, total int64)
}

func (c *chunkCounter) add(n int) {
	done := c.done.Add(int64(n))
	if c.report != nil {
		c.report(done, c.total)
	}
}

// benchFields holds, per channel, a smooth base field and a pattern that
// drifts with time, both precomputed once: chunks then cost a few flops
// per element, so generation is bound by compression, not by the fields.
type benchFields struct {
	h, w        int
	base, drift [][]float32
	noise       []float32 // standard normal samples, len a power of two
}

func newBenchFields(rng *rand.Rand, n, h, w int, mean, spread float64) *benchFields {
	f := &benchFields{h: h, w: w, noise: make([]float32, 1<<20)}
	for i := range f.noise {
		f.noise[i] = float32(rng.NormFloat64())
	}
	wave := func() []float32 {
		out := make([]float32, h*w)
		for range 6 {
			ky, kx := rng.Float64()*16-8, rng.Float64()*16-8
			amp, phase := 0.2+0.8*rng.Float64(), rng.Float64()*2*math.Pi
			for y := range h {
				for x := range w {
					out[y*w+x] += float32(amp * math.Sin(2*math.Pi*(ky*float64(y)/float64(h)+kx*float64(x)/float64(w))+phase))
				}
			}
		}
		return out
	}
	for range n {
		b := wave()
		for i := range b {
			b[i] = float32(mean) + float32(spread)*b[i]
		}
		f.base = append(f.base, b)
		f.drift = append(f.drift, wave())
	}
	return f
}

// fill writes rows [y0, y0+ny) × cols [x0, x0+nx) of channel c at phase
// into dst (float32 little-endian, row stride nx), with noise and values
// quantised to 0.01 as sensors and NWP post-processing quantise.
func (f *benchFields) fill(dst []byte, c, y0, ny, x0, nx int, phase, noise float32, rng *rand.Rand) {
	base, drift := f.base[c], f.drift[c]
	mask := len(f.noise) - 1
	off := rng.IntN(len(f.noise))
	for y := range ny {
		row := (y0+y)*f.w + x0
		for x := range nx {
			v := base[row+x] + phase*drift[row+x] + noise*f.noise[(off+y*nx+x)&mask]
			v = float32(math.Round(float64(v)*100) / 100)
			binary.LittleEndian.PutUint32(dst[4*(y*nx+x):], math.Float32bits(v))
		}
	}
}

func writeBenchSatellite(ctx context.Context, dir string, s benchSize, seed uint64, made *chunkCounter) error {
	g, err := zarrwrite.CreateGroup(dir, 3)
	if err != nil {
		return err
	}
	g.Attrs["title"] = "lsio-loader benchmark: satellite-like, SEVIRI channels on a 512 px grid"
	g.Attrs["source"] = benchGeneratorVersion
	nc := int64(len(benchSatChannels))
	a, err := g.CreateArray("data", zarrwrite.ArrayMeta{DType: "<f4", Shape: []int64{s.SatTimes, nc, benchSatSide, benchSatSide},
		ChunkShape: []int64{1, nc, benchSatInner, benchSatInner}, ShardShape: []int64{1, nc, benchSatSide, benchSatSide},
		Fill: math.NaN(), Dims: []string{"time", "channel", "y", "x"}, Compressor: zarrwrite.Compressor{Name: "zstd", Level: 1}})
	if err != nil {
		return err
	}
	fields := newBenchFields(rand.New(rand.NewPCG(seed, 1)), int(nc), benchSatSide, benchSatSide, 270, 20)
	plane := benchSatSide * benchSatSide * 4
	err = a.FillChunks(ctx, func(idx []int64, shard []byte) error {
		t := idx[0]
		rng := rand.New(rand.NewPCG(seed, uint64(t)+100))
		phase := float32(5 * math.Sin(float64(t)/48*math.Pi))
		for c := range int(nc) {
			dst := shard[c*plane : (c+1)*plane]
			fields.fill(dst, c, 0, benchSatSide, 0, benchSatSide, phase, 0.5, rng)
			if t%7 == 1 { // a scan-line dropout, as real imagery has
				for y := 100; y < 104; y++ {
					for x := 200; x < 260; x++ {
						binary.LittleEndian.PutUint32(dst[4*(y*benchSatSide+x):], math.Float32bits(float32(math.NaN())))
					}
				}
			}
		}
		made.add(len(shard))
		return nil
	})
	if err != nil {
		return err
	}
	minutes := make([]int64, s.SatTimes)
	for i := range minutes {
		minutes[i] = int64(i) * 5
	}
	if err := writeBenchCoords(ctx, g, []benchCoord{
		{"time", "<i8", int64LE(minutes), map[string]any{"units": "minutes since 2023-06-01 00:00:00", "calendar": "proleptic_gregorian"}},
		{"channel", "<U6", utf32LE(benchSatChannels, 6), nil},
		{"y", "<f8", float64LE(linspace(1_200_000, -3000, benchSatSide)), nil},
		{"x", "<f8", float64LE(linspace(-200_000, 3000, benchSatSide)), nil},
	}); err != nil {
		return err
	}
	return g.Close()
}

func writeBenchNWP(ctx context.Context, dir string, s benchSize, seed uint64, made *chunkCounter) error {
	g, err := zarrwrite.CreateGroup(dir, 2)
	if err != nil {
		return err
	}
	g.Attrs["title"] = "lsio-loader benchmark: NWP-like, the UKV layout"
	g.Attrs["source"] = benchGeneratorVersion
	nv := int64(len(benchNWPVariables))
	a, err := g.CreateArray("UKV", zarrwrite.ArrayMeta{DType: "<f4", Shape: []int64{s.NWPInits, s.NWPSteps, nv, benchNWPY, benchNWPX},
		ChunkShape: []int64{1, 1, nv, benchNWPChunkY, benchNWPChunkX}, Fill: math.NaN(),
		Dims:       []string{"init_time", "step", "variable", "y", "x"},
		Compressor: zarrwrite.Compressor{Name: "blosc", Cname: "zstd", Level: 1, Shuffle: true}})
	if err != nil {
		return err
	}
	fields := newBenchFields(rand.New(rand.NewPCG(seed, 2)), int(nv), benchNWPY, benchNWPX, 280, 10)
	plane := benchNWPChunkY * benchNWPChunkX * 4
	err = a.FillChunks(ctx, func(idx []int64, chunk []byte) error {
		rng := rand.New(rand.NewPCG(seed, uint64(((idx[0]*s.NWPSteps+idx[1])*8+idx[3])*8+idx[4])+1000))
		phase := float32(4 * math.Cos(float64(3*idx[0]+idx[1])/24*math.Pi))
		y0, x0 := int(idx[3])*benchNWPChunkY, int(idx[4])*benchNWPChunkX
		ny, nx := min(benchNWPChunkY, benchNWPY-y0), min(benchNWPChunkX, benchNWPX-x0)
		for v := range int(nv) {
			// Edge chunks: fill the part inside the array, row stride of the
			// full chunk.
			dst := chunk[v*plane : (v+1)*plane]
			row := make([]byte, 4*nx)
			for y := range ny {
				fields.fill(row, v, y0+y, 1, x0, nx, phase, 0.1, rng)
				copy(dst[4*y*benchNWPChunkX:], row)
			}
		}
		made.add(len(chunk))
		return nil
	})
	if err != nil {
		return err
	}
	inits := make([]int64, s.NWPInits)
	t0 := time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for i := range inits {
		inits[i] = t0 + int64(i)*int64(3*time.Hour)
	}
	steps := make([]int64, s.NWPSteps)
	for i := range steps {
		steps[i] = int64(i) * int64(time.Hour)
	}
	if err := writeBenchCoords(ctx, g, []benchCoord{
		{"init_time", "<M8[ns]", int64LE(inits), nil},
		{"step", "<m8[ns]", int64LE(steps), nil},
		{"variable", "<U6", utf32LE(benchNWPVariables, 6), nil},
		{"y", "<f8", float64LE(linspace(1_223_000, -2000, benchNWPY)), nil},
		{"x", "<f8", float64LE(linspace(-239_000, 2000, benchNWPX)), nil},
	}); err != nil {
		return err
	}
	return g.Close()
}

// benchCoord is one 1-D coordinate array, named after its dim.
type benchCoord struct {
	name, dtype string
	data        []byte
	attrs       map[string]any
}

func writeBenchCoords(ctx context.Context, g *zarrwrite.GroupWriter, coords []benchCoord) error {
	for _, c := range coords {
		dt, err := zarr.ParseDType(c.dtype)
		if err != nil {
			return err
		}
		n := int64(len(c.data) / dt.Size)
		w, err := g.CreateArray(c.name, zarrwrite.ArrayMeta{DType: c.dtype, Shape: []int64{n}, ChunkShape: []int64{n},
			Dims: []string{c.name}, Attrs: c.attrs})
		if err != nil {
			return err
		}
		if err := w.WriteArray(ctx, c.data); err != nil {
			return err
		}
	}
	return nil
}

func linspace(start, step float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = start + step*float64(i)
	}
	return out
}

func int64LE(v []int64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return b
}

func float64LE(v []float64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return b
}

func utf32LE(labels []string, width int) []byte {
	b := make([]byte, 4*width*len(labels))
	for i, l := range labels {
		for j, r := range []rune(l) {
			if j < width {
				binary.LittleEndian.PutUint32(b[4*(i*width+j):], uint32(r))
			}
		}
	}
	return b
}
