package flight

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/lsio-loader/lsio-loader/internal/dirstore"
	"github.com/lsio-loader/lsio-loader/internal/testenv"
	"github.com/lsio-loader/lsio-loader/pool"
	"github.com/lsio-loader/lsio-loader/zarr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// writeField has zarr-python write a (time, y, x) float32 array "data" of
// random values into a v3 zstd store (a group) at path, and the same values raw
// (little-endian, C order) beside it as the reference.
func writeField(t testing.TB, path string, shape [3]int) []float32 {
	t.Helper()
	const script = `
import sys, numpy as np, zarr
from zarr.codecs import ZstdCodec
path, nt, ny, nx = sys.argv[1], *map(int, sys.argv[2:5])
values = np.random.default_rng(3).standard_normal((nt, ny, nx)).astype("<f4")
g = zarr.open_group(path, mode="w", zarr_format=3)
z = g.create_array("data", shape=values.shape, chunks=(2, 8, 8), dtype="f4",
                   compressors=[ZstdCodec(level=3)], dimension_names=["time", "y", "x"])
z[...] = values
np.asarray(zarr.open_array(path, path="data", mode="r")[...], dtype="<f4").tofile(path + ".raw")
`
	testenv.RunPython(t, script, path, fmt.Sprint(shape[0]), fmt.Sprint(shape[1]), fmt.Sprint(shape[2]))
	raw, err := os.ReadFile(path + ".raw")
	if err != nil {
		t.Fatal(err)
	}
	values := make([]float32, len(raw)/4)
	for i := range values {
		values[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return values
}

func openDir(ctx context.Context, url string) (zarr.Store, error) {
	if _, err := os.Stat(url); err != nil {
		return nil, fmt.Errorf("store %q: %w", url, err)
	}
	return dirstore.New(url), nil
}

// startServer serves on a unix socket in a temp dir until the test ends,
// and returns a client for it.
func startServer(t testing.TB) flight.Client {
	return startServerWith(t, New(Options{Open: openDir}))
}

func startServerWith(t testing.TB, srv *Server) flight.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "loader.sock")
	lis, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	client, err := flight.NewClientWithMiddleware("unix://"+sock, nil, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket %s left behind after shutdown: %v", sock, err)
		}
	})
	return client
}

func envelope(t testing.TB, spec, dir string, extra map[string]any) []byte {
	t.Helper()
	env := map[string]any{"spec": spec, "spec_dir": dir}
	for k, v := range extra {
		env[k] = v
	}
	data, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

const genericSpec = `
seed: %d
batch_size: 4
samples_per_epoch: 23
streams: 3
sources:
  field:
    store: field.zarr
    array: data
    crop: {time: 2, y: 3, x: 5}
`

func readAll(t testing.TB, client flight.Client, ep *flight.FlightEndpoint) []arrow.RecordBatch {
	t.Helper()
	stream, err := client.DoGet(context.Background(), ep.Ticket)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := flight.NewRecordReader(stream)
	if err != nil {
		t.Fatalf("DoGet: %v", err)
	}
	defer reader.Release()
	var recs []arrow.RecordBatch
	for reader.Next() {
		rec := reader.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
	}
	if err := reader.Err(); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("DoGet: %v", err)
	}
	return recs
}

func TestServeGenericCrops(t *testing.T) {
	// With a chunk cache the epoch is read twice: the second time from the
	// cache, which must not change a value. A blocked experiment keeps its
	// chunks in its own pool, shared by its streams, whether or not the
	// server has a cache.
	for _, tc := range []struct {
		name   string
		cache  *pool.Chunks
		passes int
		order  string
	}{
		{"uncached", nil, 1, ""},
		{"cached", pool.NewChunks(1 << 20), 2, ""},
		{"blocked", nil, 1, "order: {mode: blocked, pool: 1MiB}\n"},
		{"blocked-cached", pool.NewChunks(1 << 20), 2, "order: {mode: blocked, pool: 1MiB}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			shape := [3]int{6, 16, 20}
			want := writeField(t, filepath.Join(dir, "field.zarr"), shape)
			srv := New(Options{Open: openDir, Cache: tc.cache})
			client := startServerWith(t, srv)
			for range tc.passes {
				checkGenericCrops(t, client, dir, fmt.Sprintf(genericSpec, 7)+tc.order, shape, want)
			}
			if tc.order == "" {
				if tc.cache != nil && tc.cache.Hits() == 0 {
					t.Errorf("the second pass found no chunk in the cache")
				}
				return
			}
			if used, n := srv.pools.Used(); n != 1 || used != 1 {
				t.Fatalf("%d chunk pools for one blocked experiment", n)
			}
			key := (&Request{Spec: fmt.Sprintf(genericSpec, 7) + tc.order, SpecDir: dir}).planKey()
			chunks, ok := srv.pools.Get(key)
			if !ok || chunks.Hits() == 0 || chunks.Budget() != 1<<20 {
				t.Errorf("the blocked experiment's pool: found %v, %d hits", ok, chunks.Hits())
			}
			if tc.cache != nil && tc.cache.Hits() != 0 {
				t.Errorf("the blocked experiment read through the server's cache")
			}
		})
	}
}

func checkGenericCrops(t *testing.T, client flight.Client, dir, spec string, shape [3]int, want []float32) {
	ctx := context.Background()

	info, err := client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, spec, dir, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Endpoint) != 3 || info.TotalRecords != 23 {
		t.Fatalf("FlightInfo: %d endpoints, %d records; want 3 (the spec's streams) and 23", len(info.Endpoint), info.TotalRecords)
	}
	schema, err := flight.DeserializeSchema(info.Schema, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	field, ok := schema.FieldsByName("field")
	if !ok {
		t.Fatalf("schema %s has no column for source field", schema)
	}
	// Unregistered in this process, the extension arrives as its storage
	// plus the canonical name and metadata.
	md := field[0].Metadata
	if name, _ := md.GetValue("ARROW:extension:name"); name != tensorExtensionName {
		t.Fatalf("field column extension name %q, want %q", name, tensorExtensionName)
	}
	var ext struct {
		Shape    []int64  `json:"shape"`
		DimNames []string `json:"dim_names"`
	}
	extMeta, _ := md.GetValue("ARROW:extension:metadata")
	if err := json.Unmarshal([]byte(extMeta), &ext); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ext.Shape, []int64{2, 3, 5}) || !slices.Equal(ext.DimNames, []string{"time", "y", "x"}) {
		t.Fatalf("tensor metadata %s, want shape [2 3 5] dims [time y x]", extMeta)
	}
	if !arrow.TypeEqual(field[0].Type, arrow.FixedSizeListOfNonNullable(30, arrow.PrimitiveTypes.Float32)) {
		t.Fatalf("field storage %s, want fixed_size_list<float32>[30]", field[0].Type)
	}
	sources, _ := schema.Metadata().GetValue(metaSources)
	if !strings.Contains(sources, `"store":"`+filepath.Join(dir, "field.zarr")+`"`) || !strings.Contains(sources, `"array":"data"`) {
		t.Fatalf("schema metadata %s names neither store nor array", sources)
	}

	seen := map[int64]bool{}
	for _, ep := range info.Endpoint {
		for _, rec := range readAll(t, client, ep) {
			if !rec.Schema().Equal(schema) {
				t.Fatalf("DoGet schema %s differs from GetFlightInfo's %s", rec.Schema(), schema)
			}
			idx := rec.Column(schema.FieldIndices(colEpochIndex)[0]).(*array.Int64)
			crops := rec.Column(schema.FieldIndices("field")[0]).(*array.FixedSizeList).ListValues().(*array.Float32).Float32Values()
			isel := rec.Column(schema.FieldIndices("field.isel")[0]).(*array.FixedSizeList).ListValues().(*array.Int64).Int64Values()
			for i := range int(rec.NumRows()) {
				if seen[idx.Value(i)] {
					t.Fatalf("epoch_index %d served twice", idx.Value(i))
				}
				seen[idx.Value(i)] = true
				box := isel[i*6 : i*6+6]
				crop := crops[i*30 : i*30+30]
				k := 0
				for ti := box[0]; ti < box[1]; ti++ {
					for yi := box[2]; yi < box[3]; yi++ {
						for xi := box[4]; xi < box[5]; xi++ {
							if ref := want[(int(ti)*shape[1]+int(yi))*shape[2]+int(xi)]; crop[k] != ref {
								t.Fatalf("sample %d at isel %v: element %d = %v, zarr-python has %v", idx.Value(i), box, k, crop[k], ref)
							}
							k++
						}
					}
				}
			}
			rec.Release()
		}
	}
	if len(seen) != 23 {
		t.Fatalf("served %d distinct samples, want the epoch's 23", len(seen))
	}
}

func TestServeErrors(t *testing.T) {
	dir := t.TempDir()
	writeField(t, filepath.Join(dir, "field.zarr"), [3]int{4, 8, 8})
	client := startServer(t)
	ctx := context.Background()
	good := fmt.Sprintf(genericSpec, 1)
	tests := []struct {
		name string
		cmd  []byte
		code codes.Code
		want []string // all in the message
	}{
		{name: "missing store", cmd: envelope(t, strings.Replace(good, "field.zarr", "nowhere.zarr", 1), dir, nil), code: codes.NotFound, want: []string{"nowhere.zarr"}},
		{name: "unknown array", cmd: envelope(t, strings.Replace(good, "array: data", "array: nothing", 1), dir, nil), want: []string{"nothing"}},
		{name: "malformed spec", cmd: envelope(t, strings.Replace(good, "crop:", "krop:", 1), dir, nil), code: codes.InvalidArgument, want: []string{"krop"}},
		{name: "unknown dim in crop", cmd: envelope(t, strings.Replace(good, "x: 5", "z: 5", 1), dir, nil), code: codes.InvalidArgument, want: []string{"field"}},
		{name: "bad envelope", cmd: envelope(t, good, "relative/dir", nil), code: codes.InvalidArgument, want: []string{"spec_dir"}},
		{name: "unknown split", cmd: envelope(t, good, dir, map[string]any{"split": "test"}), code: codes.InvalidArgument, want: []string{"test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: tt.cmd})
			st, _ := status.FromError(err)
			if err == nil || (tt.code != codes.OK && st.Code() != tt.code) {
				t.Fatalf("GetFlightInfo error %v, want code %v", err, tt.code)
			}
			if st.Code() != codes.NotFound && st.Code() != codes.InvalidArgument {
				t.Fatalf("GetFlightInfo error %v: a request error must be NotFound or InvalidArgument", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(st.Message(), w) {
					t.Fatalf("GetFlightInfo error %q does not say %q", st.Message(), w)
				}
			}
		})
	}
	t.Run("forged ticket", func(t *testing.T) {
		stream, err := client.DoGet(ctx, &flight.Ticket{Ticket: []byte(`{"plan_key":"x","request":{"spec":"a","split":"train","world_size":1},"stream":0,"streams":1}`)})
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "plan_key") {
			t.Fatalf("DoGet of a forged ticket: %v, want InvalidArgument about plan_key", err)
		}
	})
	// The server is still up and serves a good spec.
	info, err := client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, good, dir, nil)})
	if err != nil {
		t.Fatalf("after bad requests: %v", err)
	}
	if recs := readAll(t, client, info.Endpoint[0]); len(recs) == 0 {
		t.Fatal("after bad requests: no record batches")
	}
}

// A client that goes away mid-stream must not stall the server.
func TestServeCancelledStream(t *testing.T) {
	dir := t.TempDir()
	writeField(t, filepath.Join(dir, "field.zarr"), [3]int{4, 8, 8})
	client := startServer(t)
	spec := strings.Replace(fmt.Sprintf(genericSpec, 1), "samples_per_epoch: 23", "samples_per_epoch: 100000", 1)
	cmd := envelope(t, spec, dir, map[string]any{"streams": 1})
	info, err := client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := client.DoGet(ctx, info.Endpoint[0].Ticket)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := flight.NewRecordReader(stream)
	if err != nil {
		t.Fatal(err)
	}
	if !reader.Next() {
		t.Fatalf("no first batch: %v", reader.Err())
	}
	cancel()
	reader.Release()

	deadline, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	info, err = client.GetFlightInfo(deadline, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, fmt.Sprintf(genericSpec, 1), dir, nil)})
	if err != nil {
		t.Fatalf("after a cancelled stream: %v", err)
	}
	if recs := readAll(t, client, info.Endpoint[0]); len(recs) == 0 {
		t.Fatal("after a cancelled stream: no record batches")
	}
}

func TestTensorTypeSerialize(t *testing.T) {
	tt, err := newTensorType(arrow.PrimitiveTypes.Uint16, []int64{2, 3}, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	back, err := tt.Deserialize(tt.StorageType(), tt.Serialize())
	if err != nil || !tt.ExtensionEquals(back) {
		t.Fatalf("Deserialize(Serialize()) = %v, %v", back, err)
	}
	for _, bad := range []string{`{"shape": [2, 0]}`, `{"shape": [7]}`, `{`, `{"shape": [2, 3], "dim_names": ["a"]}`} {
		if _, err := tt.Deserialize(tt.StorageType(), bad); err == nil {
			t.Errorf("Deserialize(%s) accepted", bad)
		}
	}
}

// A corrupt chunk fails its stream with an error naming store, array and
// chunk; the server keeps serving.
func TestServeCorruptChunk(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "field.zarr")
	writeField(t, store, [3]int{4, 8, 8})
	chunks, err := filepath.Glob(filepath.Join(store, "data", "c", "*", "*", "*"))
	if err != nil || len(chunks) == 0 {
		t.Fatalf("no chunk files under %s: %v", store, err)
	}
	for _, c := range chunks {
		if err := os.WriteFile(c, []byte("\x28\xb5\x2f\xfd garbage, not a zstd frame"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	client := startServer(t)
	ctx := context.Background()
	info, err := client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, fmt.Sprintf(genericSpec, 1), dir, nil)})
	if err != nil {
		t.Fatalf("GetFlightInfo reads no chunks, so it must succeed: %v", err)
	}
	stream, err := client.DoGet(ctx, info.Endpoint[0].Ticket)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := flight.NewRecordReader(stream)
	if err == nil {
		for reader.Next() {
		}
		err = reader.Err()
		reader.Release()
	}
	if err == nil {
		t.Fatal("DoGet over corrupt chunks succeeded")
	}
	msg := err.Error()
	for _, want := range []string{store, "data", "c/"} {
		if !strings.Contains(msg, want) {
			t.Errorf("corrupt-chunk error %q does not name %q", msg, want)
		}
	}

	good := filepath.Join(t.TempDir(), "field.zarr")
	writeField(t, good, [3]int{4, 8, 8})
	info, err = client.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: envelope(t, fmt.Sprintf(genericSpec, 1), filepath.Dir(good), nil)})
	if err != nil {
		t.Fatalf("after a corrupt chunk: %v", err)
	}
	if recs := readAll(t, client, info.Endpoint[0]); len(recs) == 0 {
		t.Fatal("after a corrupt chunk: no record batches")
	}
}
