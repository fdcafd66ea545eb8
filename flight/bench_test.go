package flight

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/metrics"
)

// BenchmarkDoGet streams one epoch of 64 crops of 4×4×64×64 float32
// (256 KiB each, 4 MiB batches) from uncompressed chunks, so that the
// transport rather than decoding dominates, through the zero-copy framing
// and, as the reference, through arrow-go's flight.Writer; and the
// zero-copy framing with `serve -metrics` counting every batch, against
// the zero-copy run as its reference.
func BenchmarkDoGet(b *testing.B) {
	dir := b.TempDir()
	testenv.RunPython(b, `
import sys, numpy as np, zarr
values = np.random.default_rng(1).standard_normal((8, 4, 256, 256)).astype("<f4")
g = zarr.open_group(sys.argv[1], mode="w", zarr_format=3)
z = g.create_array("data", shape=values.shape, chunks=(4, 4, 64, 64), dtype="f4", compressors=None,
                   dimension_names=["time", "channel", "y", "x"])
z[...] = values
`, filepath.Join(dir, "field.zarr"))
	const spec = `
seed: 3
batch_size: 16
samples_per_epoch: 64
streams: 1
sources:
  field:
    store: field.zarr
    array: data
    crop: {time: 4, channel: 4, y: 64, x: 64}
`
	for _, mode := range []struct {
		name             string
		copying, metrics bool
	}{{"zerocopy", false, false}, {"arrow-go-writer", true, false}, {"zerocopy-metrics", false, true}} {
		b.Run(mode.name, func(b *testing.B) {
			opts := Options{Open: openDir, Logger: slog.New(slog.DiscardHandler)}
			if mode.metrics {
				opts.Observer = metrics.New()
			}
			srv := New(opts)
			srv.copying = mode.copying
			client := startServerWith(b, srv)
			info, err := client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(b, spec, dir, nil)})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(64 * 4 * 4 * 64 * 64 * 4)
			b.ReportAllocs()
			for b.Loop() {
				for _, rec := range readAll(b, client, info.Endpoint[0]) {
					rec.Release()
				}
			}
		})
	}
}
