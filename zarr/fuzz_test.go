package zarr

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/bufpool"
	"github.com/lsio-loader/lsio-loader/store/mem"
)

// memStore is an in-memory store of objects, for fuzzing without touching
// the disk.
func memStore(objects map[string][]byte) Store { return mem.New("test", objects) }

// realMetadata returns every array's .zarray document and a few of their
// chunks from the real stores, as fuzz seeds.
func realMetadata(tb testing.TB) (zarrays [][]byte, chunks map[string][][]byte) {
	tb.Helper()
	chunks = map[string][][]byte{}
	for _, dir := range realStores(tb) {
		raw, err := os.ReadFile(filepath.Join(dir, ".zmetadata"))
		if err != nil {
			tb.Fatal(err)
		}
		var cm struct {
			Metadata map[string]json.RawMessage `json:"metadata"`
		}
		if err := unmarshalJSON(raw, &cm); err != nil {
			tb.Fatal(err)
		}
		for k, v := range cm.Metadata {
			if !strings.HasSuffix(k, ".zarray") {
				continue
			}
			doc := []byte(v)
			zarrays = append(zarrays, doc)
			first, _ := filepath.Glob(filepath.Join(dir, filepath.Dir(k), "0*"))
			if len(first) > 0 {
				if b, err := os.ReadFile(first[0]); err == nil && len(b) < 64<<10 {
					chunks[string(doc)] = append(chunks[string(doc)], b)
				}
			}
		}
	}
	return zarrays, chunks
}

// readSome reads a small region at the origin, and one at the far corner,
// of any array the fuzzer managed to open.
func readSome(a *Array) {
	ctx := context.Background()
	for _, far := range []bool{false, true} {
		start := make([]int64, len(a.Shape))
		shape := make([]int64, len(a.Shape))
		n := int64(a.DType.Size)
		for d, s := range a.Shape {
			shape[d] = min(s, 3)
			if far {
				start[d] = s - shape[d]
			}
			n *= shape[d]
		}
		if n > 1<<20 {
			return
		}
		_ = a.Read(ctx, start, shape, make([]byte, n))
	}
}

func FuzzParseV2Meta(f *testing.F) {
	zarrays, chunks := realMetadata(f)
	for _, z := range zarrays {
		var chunk []byte
		if c := chunks[string(z)]; len(c) > 0 {
			chunk = c[0]
		}
		f.Add(z, chunk)
	}
	f.Add([]byte(`{"zarr_format":2,"shape":[4,4],"chunks":[2,2],"dtype":">f8","fill_value":NaN,"order":"F","filters":[{"id":"delta","dtype":"<f8"}],"compressor":null,"dimension_separator":"/"}`), []byte{})
	f.Add([]byte(`{"zarr_format":2,"shape":[4,4],"chunks":[2,2],"dtype":">i2","fill_value":0,"order":"C","filters":[{"id":"delta","dtype":">i2","astype":">i2"}],"compressor":null}`), []byte{0, 1, 0, 2, 255, 255, 0, 3, 0, 1, 0, 2, 255, 255, 0, 3})
	f.Add([]byte(`{"zarr_format":2,"shape":[4],"chunks":[4],"dtype":">f8","fill_value":0,"order":"C","filters":[{"id":"fixedscaleoffset","scale":10,"offset":1000,"dtype":">f8","astype":">i4"}],"compressor":null}`), []byte{0, 0, 0, 1, 0, 0, 0, 2, 255, 255, 255, 255, 128, 0, 0, 0})
	f.Fuzz(func(t *testing.T, zarray, chunk []byte) {
		store := memStore(map[string][]byte{"a/.zarray": zarray, "a/0.0": chunk, "a/0.0.0.0": chunk, "a/0": chunk, "a/0.0.0": chunk, "a/0.0.0.0.0": chunk})
		a, err := OpenArray(context.Background(), store, "a")
		if err != nil {
			return
		}
		readSome(a)
	})
}

// v3Seeds are realistic zarr.json documents of the kinds zarr-python writes.
var v3Seeds = []string{
	`{"zarr_format":3,"node_type":"array","shape":[50,37],"data_type":"float32","chunk_grid":{"name":"regular","configuration":{"chunk_shape":[20,20]}},"chunk_key_encoding":{"name":"default","configuration":{"separator":"/"}},"fill_value":"NaN","codecs":[{"name":"sharding_indexed","configuration":{"chunk_shape":[5,10],"codecs":[{"name":"bytes","configuration":{"endian":"little"}},{"name":"zstd","configuration":{"level":1,"checksum":false}}],"index_codecs":[{"name":"bytes","configuration":{"endian":"little"}},{"name":"crc32c"}],"index_location":"end"}}],"attributes":{},"dimension_names":["y","x"]}`,
	`{"zarr_format":3,"node_type":"array","shape":[13,9,5],"data_type":"int64","chunk_grid":{"name":"regular","configuration":{"chunk_shape":[4,3,5]}},"chunk_key_encoding":{"name":"v2","configuration":{"separator":"."}},"fill_value":0,"codecs":[{"name":"transpose","configuration":{"order":[2,0,1]}},{"name":"bytes","configuration":{"endian":"big"}},{"name":"gzip","configuration":{"level":5}},{"name":"crc32c"}],"attributes":{"_FillValue":"AAAAAAAA+H8="}}`,
	`{"zarr_format":3,"node_type":"array","shape":[],"data_type":{"name":"numpy.datetime64","configuration":{"unit":"s","scale_factor":1}},"chunk_grid":{"name":"regular","configuration":{"chunk_shape":[]}},"chunk_key_encoding":{"name":"default"},"fill_value":-9223372036854775808,"codecs":[{"name":"bytes"}]}`,
	`{"zarr_format":3,"node_type":"array","shape":[8],"data_type":"uint16","chunk_grid":{"name":"regular","configuration":{"chunk_shape":[8]}},"chunk_key_encoding":{"name":"default"},"fill_value":"0x0003","codecs":[{"name":"sharding_indexed","configuration":{"chunk_shape":[4],"codecs":[{"name":"bytes"}],"index_codecs":[{"name":"bytes"}],"index_location":"start"}}]}`,
	`{"zarr_format":3,"node_type":"array","shape":[6],"data_type":"float32","chunk_grid":{"name":"regular","configuration":{"chunk_shape":[6]}},"chunk_key_encoding":{"name":"default"},"fill_value":0,"codecs":[{"name":"bytes"},{"name":"blosc","configuration":{"cname":"lz4","clevel":5,"shuffle":"shuffle","typesize":4,"blocksize":0}}]}`,
	`{"zarr_format":3,"node_type":"array","shape":[8],"data_type":"int8","chunk_grid":{"name":"regular","configuration":{"chunk_shape":[8]}},"chunk_key_encoding":{"name":"default"},"fill_value":-1,"codecs":[{"name":"sharding_indexed","configuration":{"chunk_shape":[4],"codecs":[{"name":"sharding_indexed","configuration":{"chunk_shape":[2],"codecs":[{"name":"bytes"}],"index_codecs":[{"name":"bytes"}],"index_location":"start"}}],"index_codecs":[{"name":"bytes"},{"name":"crc32c"}]}}]}`,
}

func FuzzParseV3Meta(f *testing.F) {
	for _, s := range v3Seeds {
		f.Add([]byte(s), []byte{})
	}
	// numcodecs filters before a big-endian bytes codec.
	f.Add([]byte(`{"zarr_format":3,"node_type":"array","shape":[4],"data_type":"float64","chunk_grid":{"name":"regular","configuration":{"chunk_shape":[4]}},"chunk_key_encoding":{"name":"default"},"fill_value":0,"codecs":[{"name":"numcodecs.astype","configuration":{"encode_dtype":"<f4","decode_dtype":"<f8"}},{"name":"bytes","configuration":{"endian":"big"}},{"name":"numcodecs.shuffle","configuration":{"elementsize":4}}]}`),
		[]byte{63, 128, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 192, 0, 0, 0})
	f.Fuzz(func(t *testing.T, doc, chunk []byte) {
		store := memStore(map[string][]byte{"a/zarr.json": doc, "a/c/0": chunk, "a/c/0/0": chunk, "a/c": chunk, "a/0": chunk, "a/0.0.0": chunk})
		a, err := OpenArray(context.Background(), store, "a")
		if err != nil {
			return
		}
		readSome(a)
		_, _ = a.CFPacking()
	})
}

func FuzzShardIndex(f *testing.F) {
	conf := json.RawMessage(`{"chunk_shape":[2,2],"codecs":[{"name":"bytes"}],"index_codecs":[{"name":"bytes","configuration":{"endian":"little"}},{"name":"crc32c"}],"index_location":"end"}`)
	sc, err := newShardCodec(conf, DType{Kind: KindUint, Size: 1}, []int64{4, 4})
	if err != nil {
		f.Fatal(err)
	}
	// A valid index: chunks 0 and 2 stored, 1 and 3 empty.
	valid := make([]byte, 0, sc.indexBytes)
	for _, e := range []uint64{0, 4, emptyEntry, emptyEntry, 4, 4, emptyEntry, emptyEntry} {
		valid = appendUint64(valid, e)
	}
	valid = appendUint32(valid, crc32c(valid))
	f.Add(valid)
	f.Add(make([]byte, sc.indexBytes))
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := sc.parseIndex(b)
		if err != nil {
			return
		}
		for i := range sc.n {
			if off, n, ok := x.entry(i); ok && (off < 0 || n < 0) {
				t.Fatalf("entry %d: negative range %d+%d accepted", i, off, n)
			}
		}
		// Read the array over a shard holding these bytes and the index.
		shard := append(make([]byte, 16), b...)
		store := memStore(map[string][]byte{"a/zarr.json": []byte(v3Seeds[3]), "a/c/0": shard, "a/c/1": shard})
		if a, err := OpenArray(context.Background(), store, "a"); err == nil {
			readSome(a)
		}
	})
}

func FuzzDecodeChunk(f *testing.F) {
	zarrays, chunks := realMetadata(f)
	var metas []*Array
	for _, z := range zarrays {
		a, err := arrayFromV2(memStore(map[string][]byte{}), "a", z, nil)
		if err != nil {
			f.Fatal(err)
		}
		metas = append(metas, a)
		for _, c := range chunks[string(z)] {
			f.Add(uint8(len(metas)-1), c)
		}
	}
	for _, s := range v3Seeds {
		a, err := arrayFromV3(memStore(map[string][]byte{}), "a", []byte(s))
		if err != nil {
			f.Fatal(err)
		}
		metas = append(metas, a)
	}
	f.Fuzz(func(t *testing.T, which uint8, chunk []byte) {
		a := metas[int(which)%len(metas)]
		chain := a.chain
		for sc := chain.shard; sc != nil; sc = sc.inner.shard {
			chain = sc.inner
		}
		pool := new(bufpool.Sized)
		out, held, _, err := chain.decode(append([]byte(nil), chunk...), pool)
		if err != nil {
			return
		}
		if int64(len(out)) != chain.nbytes {
			t.Fatalf("decoded %d bytes, want %d", len(out), chain.nbytes)
		}
		pool.Put(held)
	})
}
