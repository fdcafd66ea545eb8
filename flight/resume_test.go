package flight

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// servedBatch is what a test compares of a served batch: its epoch
// positions and crops.
type servedBatch struct {
	index []int64
	crops []float32
}

func servedBatches(t *testing.T, client flight.Client, ep *flight.FlightEndpoint) []servedBatch {
	t.Helper()
	var out []servedBatch
	for _, rec := range readAll(t, client, ep) {
		idx := rec.Column(rec.Schema().FieldIndices(colEpochIndex)[0]).(*array.Int64).Int64Values()
		crops := rec.Column(rec.Schema().FieldIndices("field")[0]).(*array.FixedSizeList).ListValues().(*array.Float32).Float32Values()
		out = append(out, servedBatch{slices.Clone(idx), slices.Clone(crops)})
		rec.Release()
	}
	return out
}

func endpointMetaOf(t *testing.T, ep *flight.FlightEndpoint) endpointMeta {
	t.Helper()
	var m endpointMeta
	if err := json.Unmarshal(ep.AppMetadata, &m); err != nil {
		t.Fatalf("endpoint app_metadata %q: %v", ep.AppMetadata, err)
	}
	return m
}

// TestServeSkip checks that a request's skip list starts each stream after
// its first skip[i] batches, serving exactly the tail of the full stream
// (same positions, same crops), for the iid and blocked orders and two
// ranks; that the endpoints' app_metadata counts each stream's batches and
// records over the whole epoch; and that a skip list of the wrong length
// or past a stream's end is refused as InvalidArgument naming it.
func TestServeSkip(t *testing.T) {
	dir := t.TempDir()
	writeField(t, filepath.Join(dir, "field.zarr"), [3]int{6, 16, 20})
	client := startServer(t)
	ctx := context.Background()
	info := func(t *testing.T, spec string, extra map[string]any) *flight.FlightInfo {
		t.Helper()
		fi, err := client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, spec, dir, extra)})
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	for _, order := range []string{"", "order: {mode: blocked, pool: 1MiB}\n"} {
		spec := fmt.Sprintf(genericSpec, 11) + order
		for _, world := range []int{1, 2} {
			for rank := range world {
				name := fmt.Sprintf("order %q rank %d of %d", strings.TrimSpace(order), rank, world)
				t.Run(name, func(t *testing.T) {
					base := map[string]any{"rank": rank, "world_size": world, "epoch": 2}
					full := info(t, spec, base)
					var fullBatches [][]servedBatch
					var skip []int64
					var remaining int64
					for i, ep := range full.Endpoint {
						b := servedBatches(t, client, ep)
						fullBatches = append(fullBatches, b)
						m := endpointMetaOf(t, ep)
						var records int64
						for _, x := range b {
							records += int64(len(x.index))
						}
						if m.Stream != i || m.Batches != int64(len(b)) || m.Records != records || m.Skip != 0 {
							t.Fatalf("stream %d app_metadata %+v; served %d batches, %d records", i, m, len(b), records)
						}
						// A different cut per stream: none, one, all.
						k := int64(min(i, len(b)))
						skip = append(skip, k)
						for _, x := range b[k:] {
							remaining += int64(len(x.index))
						}
					}
					resumed := info(t, spec, with(base, "skip", skip))
					if resumed.TotalRecords != remaining {
						t.Errorf("resumed TotalRecords %d, want the %d records not skipped", resumed.TotalRecords, remaining)
					}
					for i, ep := range resumed.Endpoint {
						if m := endpointMetaOf(t, ep); m.Skip != skip[i] || m.Batches != int64(len(fullBatches[i])) {
							t.Errorf("resumed stream %d app_metadata %+v, want skip %d of %d batches", i, m, skip[i], len(fullBatches[i]))
						}
						got := servedBatches(t, client, ep)
						want := fullBatches[i][skip[i]:]
						if len(got) != len(want) {
							t.Fatalf("stream %d from batch %d: %d batches, want %d", i, skip[i], len(got), len(want))
						}
						for b := range got {
							if !slices.Equal(got[b].index, want[b].index) || !slices.Equal(got[b].crops, want[b].crops) {
								t.Fatalf("stream %d from batch %d: batch %d is %v, want %v", i, skip[i], b, got[b].index, want[b].index)
							}
						}
					}
				})
			}
		}
	}

	spec := fmt.Sprintf(genericSpec, 11)
	// 23 samples over 3 streams: 8, 8 and 7, so 2 batches of 4 each.
	for _, tc := range []struct {
		name  string
		extra map[string]any
		want  string
	}{
		{"too few counts", map[string]any{"skip": []int64{0, 1}}, "skip has 2 counts, want one per stream (3)"},
		{"past the end", map[string]any{"skip": []int64{0, 3, 0}}, "skip[1] = 3, but stream 1 has only 2 batches"},
		{"negative", map[string]any{"skip": []int64{0, -1, 0}}, "skip[1] = -1 is negative"},
		{"not one per explicit stream", map[string]any{"streams": 2, "skip": []int64{0}}, "want one per stream (2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, spec, dir, tc.extra)})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want InvalidArgument containing %q", err, tc.want)
			}
		})
	}

	t.Run("forged ticket past the end", func(t *testing.T) {
		req, err := ParseCommand(envelope(t, spec, dir, nil))
		if err != nil {
			t.Fatal(err)
		}
		tk := ticket{PlanKey: req.planKey(), Request: req, Stream: 0, Streams: 3, Skip: 9}
		stream, err := client.DoGet(ctx, &flight.Ticket{Ticket: tk.encode()})
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "skip 9, but stream 0 has only 2 batches") {
			t.Fatalf("error %v, want InvalidArgument naming the skip", err)
		}
	})
}

func with(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{k: v}
	for key, val := range m {
		out[key] = val
	}
	return out
}
