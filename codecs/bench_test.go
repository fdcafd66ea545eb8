package codecs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// benchFieldSize is the size of the float32 weather-like benchmark chunk.
const benchFieldSize = 4 << 20

// benchDecode times dec into a buffer with the slack real callers give
// (decodeSlack), which lets decoders use their wide copy loops.
func benchDecode(b *testing.B, dec func(dst, src []byte, size int) ([]byte, error), enc []byte, n int) {
	b.Helper()
	dst := make([]byte, n, n+decodeSlack)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	cpu0, loops := processCPU(), 0
	for b.Loop() {
		if _, err := dec(dst, enc, n); err != nil {
			b.Fatal(err)
		}
		loops++
	}
	if cpu := processCPU() - cpu0; cpu > 0 {
		b.ReportMetric(float64(n)*float64(loops)/cpu.Seconds()/1e6, "cpuMB/s")
	}
}

func BenchmarkBloscDecode(b *testing.B) {
	bl := NewBlosc()
	src := weatherField(benchFieldSize, 1)
	for _, o := range []BloscOptions{
		{Compressor: "lz4", Level: 5, Shuffle: ByteShuffle, TypeSize: 4},
		{Compressor: "zstd", Level: 5, Shuffle: ByteShuffle, TypeSize: 4},
		{Compressor: "lz4", Level: 5, Shuffle: BitShuffle, TypeSize: 4},
		{Compressor: "zlib", Level: 5, Shuffle: ByteShuffle, TypeSize: 4},
		{Compressor: "snappy", Level: 5, Shuffle: ByteShuffle, TypeSize: 4},
	} {
		enc, err := bl.Encode(nil, src, o)
		if err != nil {
			b.Fatal(err)
		}
		name := o.Compressor + map[Shuffle]string{NoShuffle: "", ByteShuffle: "-shuffle", BitShuffle: "-bitshuffle"}[o.Shuffle]
		b.Run(name, func(b *testing.B) { benchDecode(b, bl.Decode, enc, len(src)) })
	}
}

// BenchmarkBloscDecodeRealUKV decodes a real UKV chunk (blosc zstd with
// byte shuffle, 6.5 MB decoded, mostly NaN padding past the one variable).
func BenchmarkBloscDecodeRealUKV(b *testing.B) {
	enc, err := os.ReadFile(filepath.Join(testenv.RealData(b), "ocf-nowcasting-2023", "ukv_nwp.zarr", "UKV", "0.0.0.0.0"))
	if err != nil {
		b.Fatal(err)
	}
	bl := NewBlosc()
	n, _, _, err := BloscInfo(enc)
	if err != nil {
		b.Fatal(err)
	}
	benchDecode(b, bl.Decode, enc, n)
}

func BenchmarkStreamDecode(b *testing.B) {
	src := weatherField(benchFieldSize, 2)
	z := NewZstd()
	for name, c := range map[string]byteCodec{"zstd": z, "lz4": LZ4{}, "gzip": NewGzip(), "zlib": NewZlib()} {
		enc, err := c.Encode(nil, src, 3)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) { benchDecode(b, c.Decode, enc, len(src)) })
	}
}

// realSEVIRIChunks are bz2 chunks of the real SEVIRI stores (int16,
// numcodecs BZ2 level 5): HRV decodes to 1.4 MB, non-HRV to 0.6 MB.
var realSEVIRIChunks = []struct{ name, path string }{
	{"hrv", "seviri_hrv.zarr/data/0.0.0"},
	{"nonhrv", "seviri_nonhrv.zarr/data/0.0.0.0"},
}

func readRealSEVIRI(b *testing.B, path string) []byte {
	b.Helper()
	enc, err := os.ReadFile(filepath.Join(testenv.RealData(b), "ocf-nowcasting-2023", filepath.FromSlash(path)))
	if err != nil {
		b.Fatal(err)
	}
	return enc
}

// BenchmarkBz2DecodeReal decodes real SEVIRI chunks.
func BenchmarkBz2DecodeReal(b *testing.B) {
	bz := NewBz2()
	for _, c := range realSEVIRIChunks {
		enc := readRealSEVIRI(b, c.path)
		out, err := bz.Decode(nil, enc, -1<<30)
		if err != nil {
			b.Fatalf("%s: %v", c.path, err)
		}
		b.Run(c.name, func(b *testing.B) { benchDecode(b, bz.Decode, enc, len(out)) })
	}
}

// BenchmarkStreamDecodeReal decodes the real SEVIRI HRV chunk recompressed
// with gzip and zlib at numcodecs' default level 1: no real store here uses
// them, and their pixels are what flate would see in one.
func BenchmarkStreamDecodeReal(b *testing.B) {
	raw, err := NewBz2().Decode(nil, readRealSEVIRI(b, realSEVIRIChunks[0].path), -1<<30)
	if err != nil {
		b.Fatal(err)
	}
	for name, c := range map[string]byteCodec{"gzip": NewGzip(), "zlib": NewZlib()} {
		enc, err := c.Encode(nil, raw, 1)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) { benchDecode(b, c.Decode, enc, len(raw)) })
	}
}

func BenchmarkUnshuffle(b *testing.B) {
	src := weatherField(256<<10, 3)
	dst := make([]byte, len(src))
	for _, ts := range []int{2, 4, 8, 3} {
		b.Run("typesize"+string(rune('0'+ts)), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				unshuffle(dst, src, ts)
			}
		})
	}
}

// BenchmarkDecodeFiles decodes the chunks that bench/codecs/compare.py
// writes (numcodecs-encoded), named in $LSIO_CODEC_BENCH_DIR/manifest.json,
// so that the script can compare Go with numcodecs on identical bytes.
func BenchmarkDecodeFiles(b *testing.B) {
	dir := os.Getenv("LSIO_CODEC_BENCH_DIR")
	if dir == "" {
		b.Skip("LSIO_CODEC_BENCH_DIR is unset: bench/codecs/compare.py sets it")
	}
	manifest, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		b.Fatal(err)
	}
	var files []struct {
		Name  string `json:"name"`
		Codec string `json:"codec"`
		Enc   string `json:"enc"`
		Size  int    `json:"size"`
	}
	if err := json.Unmarshal(manifest, &files); err != nil {
		b.Fatalf("%s: %v", dir, err)
	}
	dec := newDecoders()
	for _, f := range files {
		enc, err := os.ReadFile(filepath.Join(dir, f.Enc))
		if err != nil {
			b.Fatal(err)
		}
		run := func(b *testing.B) {
			benchDecode(b, func(dst, src []byte, size int) ([]byte, error) {
				return decodeByName(b, dec, f.Codec, dst, src, size)
			}, enc, f.Size)
		}
		if !usesZstd(f.Codec, enc) {
			b.Run(f.Name, run)
			continue
		}
		// Each zstd decoder in turn, for zstd chunks and blosc's zstd
		// streams alike.
		for _, v := range zstdVariants(dec.zstd) {
			dec.zstd.override, dec.blosc.zstd.override = v.fn, v.fn
			b.Run(f.Name+"/"+v.name, run)
		}
		dec.zstd.override, dec.blosc.zstd.override = nil, nil
	}
}

// usesZstd reports whether a chunk of the numcodecs codec decodes zstd
// frames: a zstd chunk, or a blosc chunk whose internal codec is zstd.
func usesZstd(codec string, enc []byte) bool {
	if codec == "zstd" {
		return true
	}
	h, err := parseBloscHeader(enc)
	return codec == "blosc" && err == nil && !h.memcpyed() && h.format() == bloscFormatZstd
}
