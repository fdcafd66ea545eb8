package sampler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

func TestPermutationIsBijective(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 7, 64, 100, 1000, 4097} {
		p := newPermutation(n, 12345)
		seen := make([]bool, n)
		moved := 0
		for i := range n {
			j := p.at(i)
			if j >= n || seen[j] {
				t.Fatalf("n=%d: %d maps to %d, out of range or seen before", n, i, j)
			}
			seen[j] = true
			if j != i {
				moved++
			}
		}
		if n >= 64 && moved < int(n)/2 {
			t.Errorf("n=%d: only %d of %d positions moved: not shuffled", n, moved, n)
		}
	}
}

func TestShardsPartitionTheEpoch(t *testing.T) {
	p, err := NewPlan(context.Background(), loadSpec(t, "real_ukv_seviri.yaml"), dirOpener)
	if err != nil {
		t.Fatal(err)
	}
	n, err := p.EpochLen("train")
	if err != nil {
		t.Fatal(err)
	}
	var reference map[int64]Sample
	for _, shards := range []int{1, 2, 4} {
		got := map[int64]Sample{}
		for s := range shards {
			for b := range p.Batches("train", 5, s, shards) {
				if len(b) > p.BatchSize {
					t.Fatalf("batch of %d > batch size %d", len(b), p.BatchSize)
				}
				for _, smp := range b {
					if smp.Index%int64(shards) != int64(s) {
						t.Fatalf("shard %d/%d got position %d", s, shards, smp.Index)
					}
					if _, dup := got[smp.Index]; dup {
						t.Fatalf("%d shards: position %d twice", shards, smp.Index)
					}
					got[smp.Index] = smp
				}
			}
		}
		if int64(len(got)) != n {
			t.Fatalf("%d shards: %d positions, epoch has %d", shards, len(got), n)
		}
		if reference == nil {
			reference = got
			continue
		}
		if !reflect.DeepEqual(got, reference) {
			t.Errorf("%d shards: samples differ from 1 shard", shards)
		}
	}
	// Another epoch is another order.
	a, _ := p.Sample("train", 0, 0)
	b, _ := p.Sample("train", 1, 0)
	c, _ := p.Sample("train", 0, 0)
	if _, err := p.Sample("train", 0, n); err == nil {
		t.Error("a position past the epoch gave no error")
	}
	if _, err := p.Sample("test", 0, 0); err == nil {
		t.Error("an unknown split gave no error")
	}
	if !reflect.DeepEqual(a, c) {
		t.Error("the same position gave different samples")
	}
	if reflect.DeepEqual(a, b) {
		t.Error("epochs 0 and 1 start with the same sample")
	}
}

// TestInvalidSpecs checks that each broken spec fails with an error naming
// the field at fault.
func TestInvalidSpecs(t *testing.T) {
	real := testenv.RealData(t)
	base, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "examples", "real_ukv_seviri.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	baseDir := filepath.Join(testenv.ModuleRoot(t), "examples")
	_ = real
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"unknown field", "crop: {height: 24, width: 24}", "crop: {hieght: 24, width: 24}", "sources.nwp.crop.hieght: unknown field"},
		{"unknown top field", "seed: 42", "seeed: 42", "seeed: unknown field"},
		{"unknown nested", "normalise: {mean: [281.0]", "normalise: {avg: [281.0]", "sources.nwp.normalise.avg: unknown field"},
		{"missing channel", "channels: [IR_016]", "channels: [VIS006]", "sources.sat.channels[0]"},
		{"crop too large", "crop: {height: 16, width: 16}", "crop: {height: 400, width: 16}", "sources.sat.crop"},
		{"impossible window", "time: {start: -30m, end: 0m, resolution: 5m}", "time: {start: -300m, end: 0m, resolution: 5m}", "sources.sat.time"},
		{"window never available", "max_staleness: 6h", "max_staleness: 10m", "splits.train"},
		{"bad resolution", "end: 0m, resolution: 5m", "end: 0m, resolution: 7m", "sources.sat.time"},
		{"resolution off the data's", "start: -30m, end: 0m, resolution: 5m", "start: -30m, end: 0m, resolution: 6m", "sources.sat.time.resolution"},
		{"resolution finer than the data's", "time: {start: 0m, end: 60m, resolution: 60m}", "time: {start: 0m, end: 60m, resolution: 30m}", "sources.nwp.time.resolution"},
		{"end before start", "start: -30m, end: 0m", "start: 30m, end: 0m", "sources.sat.time.end"},
		{"bad duration", "resolution: 5m", "resolution: five", "duration"},
		{"bad dtype", "output_dtype: float32", "output_dtype: int8", "output_dtype"},
		{"bad crs", "crs: osgb\n    crop: {height: 24", "crs: mercator\n    crop: {height: 24", "sources.nwp.crs"},
		{"unknown dim", "dims: {channel: variable, init_time: init_time", "dims: {channel: var, init_time: init_time", "sources.nwp.dims.channel"},
		{"missing store", "seviri_nonhrv.zarr", "nothing_here.zarr", "sources.sat.store"},
		{"missing array", "array: UKV", "array: UKX", "sources.nwp.array"},
		{"normalise length", "mean: [281.0], std: [1.3]", "mean: [281.0, 1], std: [1.3, 1]", "sources.nwp.normalise.mean"},
		{"negative std", "std: [1.3]", "std: [-1.3]", "sources.nwp.normalise.std[0]"},
		{"dropout probability", "probability: 0.1", "probability: 1.5", "sources.sat.dropout.probability"},
		{"bad out_of_bounds", "out_of_bounds: resample", "out_of_bounds: wrap", "out_of_bounds"},
		{"bad on_error", "seed: 42", "seed: 42\non_error: ignore", "on_error"},
		{"wrong type", "batch_size: 4", "batch_size: [4]", "batch_size"},
		{"huge batch", "batch_size: 4", "batch_size: 65536", "batch_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := string(base)
			if !strings.Contains(src, tc.old) {
				t.Fatalf("example spec lacks %q", tc.old)
			}
			src = strings.Replace(src, tc.old, tc.new, 1)
			if tc.name == "huge batch" {
				src = strings.Replace(src, "crop: {height: 24, width: 24}", "crop: {height: 700, width: 540}", 1)
			}
			spec, err := ParseSpec([]byte(src), baseDir)
			if err == nil {
				_, err = NewPlan(context.Background(), spec, dirOpener)
			}
			if err == nil {
				t.Fatalf("no error; want one naming %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

func TestParseSpecJSON(t *testing.T) {
	js := `{"seed": 3, "sources": {"a": {"store": "x.zarr", "array": "v", "crop": {"t": 2, "y": 4}}}}`
	s, err := ParseSpec([]byte(js), "/data")
	if err != nil {
		t.Fatal(err)
	}
	if s.Seed != 3 || s.Sources["a"].Store != "/data/x.zarr" || s.Sources["a"].Crop["y"] != 4 || s.BatchSize != 32 || s.Streams != 4 || s.OutputDType != "float32" {
		t.Errorf("parsed %+v, source %+v", s, s.Sources["a"])
	}
	var fe *fieldError
	_, err = ParseSpec([]byte(`{"sources": {"a": {"store": "x", "array": "v", "crop": {"t": -1}}}}`), "")
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "sources.a.crop.t") {
		t.Errorf("negative crop: %v", err)
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, name := range []string{"real_ukv_seviri.yaml", "real_ecmwf.yaml", "sample_data.yaml"} {
		if b, err := os.ReadFile(filepath.Join("..", "examples", name)); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"seed": 3, "sources": {"a": {"store": "x.zarr", "array": "v", "crop": {"t": 2, "y": 4}}}}`))
	f.Add([]byte("sources: {a: &x {store: s}, b: *x}"))
	f.Add([]byte("splits: {train: [{start: 2020-01-01, end: 2019-01-01}]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSpec(data, "/base")
		if err != nil {
			if s != nil {
				t.Fatal("spec and error both returned")
			}
			return
		}
		if s.BatchSize <= 0 || s.Streams <= 0 || len(s.Sources) == 0 {
			t.Fatalf("accepted spec without defaults: %+v", s)
		}
		for name, src := range s.Sources {
			for k, v := range src.Crop {
				if v <= 0 {
					t.Fatal(fmt.Sprintf("source %s crop %s = %d accepted", name, k, v))
				}
			}
		}
	})
}

func FuzzReadSites(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("..", "examples", "sites_uk.csv")); err == nil {
		f.Add(b)
	}
	f.Add([]byte("lat,lon\n51.5,-0.1\n"))
	f.Add([]byte("latitude,longitude,extra\n91,0,x\n"))
	f.Add([]byte("lat,lon\n\"51.5\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "sites.csv")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		sites, err := readSites(path)
		if err != nil {
			return
		}
		for _, s := range sites {
			if math.IsNaN(s.x) || math.IsNaN(s.y) || math.Abs(s.lat) > 90 {
				t.Fatalf("site %+v accepted", s)
			}
		}
	})
}

func BenchmarkBatches(b *testing.B) {
	p, err := NewPlan(context.Background(), loadSpec(b, "real_ukv_seviri.yaml"), dirOpener)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for batch := range p.Batches("train", int64(n), 0, 1) {
			n += len(batch)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/sample")
}

// TestPlanSharedByGoroutines generates the same epoch from several
// goroutines at once (run with -race): a Plan has no mutable state.
func TestPlanSharedByGoroutines(t *testing.T) {
	p, err := NewPlan(context.Background(), loadSpec(t, "real_ukv_seviri.yaml"), dirOpener)
	if err != nil {
		t.Fatal(err)
	}
	collect := func() []Sample {
		var all []Sample
		for b := range p.Batches("val", 2, 0, 1) {
			all = append(all, b...)
		}
		return all
	}
	want := collect()
	results := make(chan []Sample, 4)
	for range 4 {
		go func() { results <- collect() }()
	}
	for range 4 {
		if got := <-results; !reflect.DeepEqual(got, want) {
			t.Fatal("concurrent generation differs")
		}
	}
}

// TestNWPDropoutUsesOlderRun checks ocf-data-sampler's NWP dropout: with
// the dropout drawn, the run is the latest one issued by t0 + offset.
func TestNWPDropoutUsesOlderRun(t *testing.T) {
	base, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "examples", "real_ukv_seviri.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(string(base), "time: {start: 0m, end: 60m, resolution: 60m}",
		"time: {start: 0m, end: 0m, resolution: 60m}\n    dropout: {probability: 1, offsets: [-1h]}", 1)
	spec, err := ParseSpec([]byte(src), filepath.Join(testenv.ModuleRoot(t), "examples"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(context.Background(), spec, dirOpener)
	if err != nil {
		t.Fatal(err)
	}
	const hour = int64(3600e9)
	older := 0
	for b := range p.Batches("train", 0, 0, 1) {
		for _, s := range b {
			w := s.Windows[0]
			init := p.src[0].times[w.Start[p.src[0].initDim]]
			if init > s.T0-hour {
				t.Fatalf("t0 %d: run %d issued after t0 − 1h", s.T0, init)
			}
			// The next run, if issued by t0 − 1h, would have been chosen.
			if k := w.Start[p.src[0].initDim] + 1; int(k) < len(p.src[0].times) && p.src[0].times[k] <= s.T0-hour {
				t.Fatalf("t0 %d: run %d chosen, but %d was issued by the cut", s.T0, init, p.src[0].times[k])
			}
			// The window's one step is t0 rounded down to the hour: never
			// after t0 + end (0), never a whole resolution before t0.
			if labels := p.TimeLabels(0, w); labels[0] > s.T0 || labels[0] <= s.T0-hour {
				t.Fatalf("t0 %d: window starts at %d", s.T0, labels[0])
			}
			if s.T0-init > 3*hour {
				older++
			}
		}
	}
	if older == 0 {
		t.Error("no sample fell back to an older run")
	}
}

// A sites file can be anything the server may read: its errors name the
// file and line, never what the file holds.
func TestReadSitesQuotesNoContents(t *testing.T) {
	const secret = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG"
	dir := t.TempDir()
	files := map[string]string{
		"env-like": "PATH=/usr/bin\x00" + secret + "\x00HOME=/root\x00",
		"bad-row":  "lat,lon\n51.5,-0.1\n" + secret + "," + secret + "\n",
		"wide-row": "lat,lon\n51.5,-0.1," + secret + "\n",
	}
	var paths []string
	for name, text := range files {
		p := filepath.Join(dir, name+".csv")
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	for _, p := range append(paths, "/etc/passwd", "/proc/self/environ") {
		t.Run(filepath.Base(p), func(t *testing.T) {
			content, err := os.ReadFile(p)
			if err != nil {
				t.Skipf("%s unreadable here: %v", p, err)
			}
			_, err = readSites(p)
			if err == nil {
				t.Fatalf("readSites(%s) accepted it", p)
			}
			msg := strings.TrimPrefix(err.Error(), p)
			for _, field := range strings.FieldsFunc(string(content), func(r rune) bool { return r == 0 || r == '\n' || r == ',' }) {
				if len(field) >= 6 && strings.Contains(msg, field) {
					t.Fatalf("readSites(%s) error %q quotes the file's %q", p, err, field)
				}
			}
		})
	}
}
