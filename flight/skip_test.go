package flight

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
)

// One corrupt chunk, served over Flight: on_error raise fails the stream
// naming the chunk; skip serves full batches of every other sample, each
// equal to zarr-python's, and logs and counts the skipped ones.
func TestServeOnError(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "field.zarr")
	shape := [3]int{6, 16, 20}
	want := writeField(t, store, shape)
	// Chunks are (2, 8, 8): chunk c/1/1/1 holds t 2-3, y 8-15, x 8-15.
	corrupt := filepath.Join(store, "data", "c", "1", "1", "1")
	if err := os.WriteFile(corrupt, []byte("\x28\xb5\x2f\xfd garbage, not a zstd frame"), 0o644); err != nil {
		t.Fatal(err)
	}
	hitsCorrupt := func(box []int64) bool {
		return box[0] < 4 && box[1] > 2 && box[2] < 16 && box[3] > 8 && box[4] < 16 && box[5] > 8
	}
	const epoch = 60
	spec := strings.Replace(fmt.Sprintf(genericSpec, 5), "samples_per_epoch: 23", fmt.Sprintf("samples_per_epoch: %d", epoch), 1)
	ctx := context.Background()

	t.Run("raise", func(t *testing.T) {
		client := startServer(t)
		info, err := client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, spec+"on_error: raise\n", dir, nil)})
		if err != nil {
			t.Fatal(err)
		}
		var failures []string
		for _, ep := range info.Endpoint {
			if err := drain(ctx, client, ep); err != nil {
				failures = append(failures, err.Error())
			}
		}
		if len(failures) == 0 {
			t.Fatal("every stream succeeded over a corrupt chunk")
		}
		for _, f := range failures {
			if !strings.Contains(f, "c/1/1/1") {
				t.Errorf("error %q does not name the corrupt chunk c/1/1/1", f)
			}
		}
	})

	t.Run("skip", func(t *testing.T) {
		logs := &lockedBuffer{}
		srv := New(Options{Open: openDir, Logger: slog.New(slog.NewTextHandler(logs, nil))})
		client := startServerWith(t, srv)
		info, err := client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, spec+"on_error: skip\n", dir, nil)})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int64]bool{}
		for _, ep := range info.Endpoint {
			recs := readAll(t, client, ep)
			for i, rec := range recs {
				if i < len(recs)-1 && rec.NumRows() != 4 {
					t.Errorf("batch %d of %d has %d samples: skipped ones must be replaced", i, len(recs), rec.NumRows())
				}
				schema := rec.Schema()
				idx := rec.Column(schema.FieldIndices(colEpochIndex)[0]).(*array.Int64)
				crops := rec.Column(schema.FieldIndices("field")[0]).(*array.FixedSizeList).ListValues().(*array.Float32).Float32Values()
				isel := rec.Column(schema.FieldIndices("field.isel")[0]).(*array.FixedSizeList).ListValues().(*array.Int64).Int64Values()
				for r := range int(rec.NumRows()) {
					if seen[idx.Value(r)] {
						t.Fatalf("epoch_index %d served twice", idx.Value(r))
					}
					seen[idx.Value(r)] = true
					box := isel[r*6 : r*6+6]
					if hitsCorrupt(box) {
						t.Fatalf("sample %d at %v overlaps the corrupt chunk, yet was served", idx.Value(r), box)
					}
					k := 0
					for ti := box[0]; ti < box[1]; ti++ {
						for yi := box[2]; yi < box[3]; yi++ {
							for xi := box[4]; xi < box[5]; xi++ {
								if ref := want[(int(ti)*shape[1]+int(yi))*shape[2]+int(xi)]; crops[r*30+k] != ref {
									t.Fatalf("sample %d element %d = %v, zarr-python has %v", idx.Value(r), k, crops[r*30+k], ref)
								}
								k++
							}
						}
					}
				}
				rec.Release()
			}
		}
		skipped := srv.SkippedSamples()
		if skipped == 0 {
			t.Fatal("no sample skipped, though the corrupt chunk lies in the field")
		}
		if got := int64(len(seen)) + skipped; got != epoch {
			t.Errorf("%d served + %d skipped = %d, want the epoch's %d", len(seen), skipped, got, epoch)
		}
		if n := int64(strings.Count(logs.String(), "sample skipped")); n != skipped {
			t.Errorf("%d skip log lines for %d skipped samples", n, skipped)
		}
		if !strings.Contains(logs.String(), "c/1/1/1") {
			t.Errorf("the skip log does not name the chunk: %s", logs)
		}
	})
}

// drain reads a whole stream, returning its error.
func drain(ctx context.Context, client flight.Client, ep *flight.FlightEndpoint) error {
	stream, err := client.DoGet(ctx, ep.Ticket)
	if err != nil {
		return err
	}
	reader, err := flight.NewRecordReader(stream)
	if err != nil {
		return err
	}
	defer reader.Release()
	for reader.Next() {
	}
	return reader.Err()
}
