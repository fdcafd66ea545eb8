package codecs

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/lsio-loader/lsio-loader/internal/testenv"
)

// zstdBenchCase is one encoded input with its decoded size.
type zstdBenchCase struct {
	name string
	enc  []byte
	size int
}

// satelliteInner returns the first inner chunk of the benchmark satellite
// store's first shard (zstd level 1 over float32, 12x128x128), or a
// synthetic float field at level 3 when `loader bench gen` has not run.
func satelliteInner(b *testing.B, z *Zstd) ([]byte, int) {
	const inner = 12 * 128 * 128 * 4
	shard, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(b), "bench", "data", "satellite.zarr", "data", "c", "0", "0", "0", "0"))
	if err == nil && len(shard) > 16*16+4 {
		index := shard[len(shard)-16*16-4:]
		off, n := binary.LittleEndian.Uint64(index), binary.LittleEndian.Uint64(index[8:])
		if off < uint64(len(shard)) && n <= uint64(len(shard))-off {
			return shard[off : off+n], inner
		}
	}
	enc, err := z.Encode(nil, weatherField(inner, 21), 3)
	if err != nil {
		b.Fatal(err)
	}
	return enc, inner
}

// nwpBlock returns the zstd stream of a 32 KiB byte-shuffled float32 block
// of the benchmark NWP store (libzstd via c-blosc), or of a synthetic one.
func nwpBlock(b *testing.B) ([]byte, int) {
	chunk, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(b), "bench", "data", "nwp.zarr", "UKV", "0.0.0.0.0"))
	if err != nil {
		bl := NewBlosc()
		if chunk, err = bl.Encode(nil, weatherField(1<<20, 22), BloscOptions{Compressor: "zstd", Level: 1, Shuffle: ByteShuffle, TypeSize: 4, BlockSize: 32 << 10}); err != nil {
			b.Fatal(err)
		}
	}
	streams, sizes := bloscZstdStreams(b, chunk)
	if len(streams) < 3 {
		b.Fatalf("only %d zstd streams in the NWP chunk", len(streams))
	}
	return streams[2], sizes[2]
}

// zstdBenchStart returns both decoders (klauspost's closed when b ends) and
// the satellite and NWP-block cases every zstd benchmark measures.
func zstdBenchStart(b *testing.B) (*Zstd, *zstd.Decoder, []zstdBenchCase) {
	z := NewZstd()
	ref, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ref.Close)
	enc, n := satelliteInner(b, z)
	cases := []zstdBenchCase{{"satellite", enc, n}}
	enc, n = nwpBlock(b)
	return z, ref, append(cases, zstdBenchCase{"nwp-blosc-block", enc, n})
}

// BenchmarkZstdDecoder compares our decoder with klauspost's on the same
// inputs, and Zstd.Decode, which picks one per frame ("switched").
func BenchmarkZstdDecoder(b *testing.B) {
	z, ref, cases := zstdBenchStart(b)
	for _, in := range []zstdInput{{"shuffled-f32", shuffledField(1<<20, 23)}, {"text", textLike(1<<20, 24)}} {
		enc, err := z.Encode(nil, in.data, 3)
		if err != nil {
			b.Fatal(err)
		}
		cases = append(cases, zstdBenchCase{in.name, enc, len(in.data)})
	}
	ours := func(dst, src []byte, size int) ([]byte, error) {
		out, err := z.decodeOurs(dst[:0:size+decodeSlack], src)
		if err == nil && len(out) != size {
			err = fmt.Errorf("decoded %d bytes, want %d", len(out), size)
		}
		return out, err
	}
	klauspost := func(dst, src []byte, size int) ([]byte, error) {
		out, err := ref.DecodeAll(src, dst[:0:size+decodeSlack])
		if err == nil && len(out) != size {
			err = fmt.Errorf("decoded %d bytes, want %d", len(out), size)
		}
		return out, err
	}
	for _, dec := range []struct {
		name string
		fn   func(dst, src []byte, size int) ([]byte, error)
	}{{"ours", ours}, {"klauspost", klauspost}, {"switched", z.Decode}} {
		for _, c := range cases {
			b.Run(dec.name+"/"+c.name, func(b *testing.B) { benchDecode(b, dec.fn, c.enc, c.size) })
		}
	}
}

// BenchmarkZstdCutoff times both decoders on frames of varied average match
// length (reported as match/seq), the measure preferOurs switches on:
// zstdMinMatchPerSeq sits where ours starts to win.
func BenchmarkZstdCutoff(b *testing.B) {
	z, ref, cases := zstdBenchStart(b)
	real := testenv.RealData(b)
	for _, src := range []struct{ name, key string }{
		{"real-ukv", "ocf-nowcasting-2023/ukv_nwp.zarr/UKV/0.0.0.0.0"},
		{"real-seviri21", "ocf-nowcasting-2021/seviri_nonhrv_stacked.zarr/stacked_eumetsat_data/0.0.0.0"},
	} {
		chunk, err := os.ReadFile(filepath.Join(real, src.key))
		if err != nil {
			b.Fatal(err)
		}
		streams, sizes := bloscZstdStreams(b, chunk)
		for i := range streams {
			// The first, middle and last streams.
			if i == 0 || i == len(streams)/2 || i == len(streams)-1 {
				cases = append(cases, zstdBenchCase{fmt.Sprintf("%s-%d", src.name, i), streams[i], sizes[i]})
			}
		}
	}
	for _, in := range []struct {
		name   string
		data   []byte
		levels []int
	}{
		{"shuffled-f32", shuffledField(1<<20, 23), []int{1, 3, 5, 9}},
		{"text", textLike(1<<20, 24), []int{3}},
	} {
		for _, level := range in.levels {
			enc, err := z.Encode(nil, in.data, level)
			if err != nil {
				b.Fatal(err)
			}
			cases = append(cases, zstdBenchCase{fmt.Sprintf("%s-zstd%d", in.name, level), enc, len(in.data)})
		}
	}
	for _, c := range cases {
		nseq, matched, ok := zstdFrameMatches(c.enc)
		if !ok || nseq == 0 {
			b.Fatalf("%s: no sequence statistics", c.name)
		}
		for _, dec := range []struct {
			name string
			fn   func(dst, src []byte) ([]byte, error)
		}{
			{"ours", func(dst, src []byte) ([]byte, error) { return z.decodeOurs(dst, src) }},
			{"klauspost", func(dst, src []byte) ([]byte, error) { return ref.DecodeAll(src, dst) }},
		} {
			b.Run(c.name+"/"+dec.name, func(b *testing.B) {
				dst := make([]byte, 0, c.size+decodeSlack)
				b.SetBytes(int64(c.size))
				for b.Loop() {
					out, err := dec.fn(dst, c.enc)
					if err != nil || len(out) != c.size {
						b.Fatalf("decoded %d bytes, want %d: %v", len(out), c.size, err)
					}
				}
				b.ReportMetric(float64(matched)/float64(nseq), "match/seq")
				b.ReportMetric(float64(int64(c.size)-matched)/float64(nseq), "lit/seq")
			})
		}
	}
}
