package zarr

import (
	"encoding/json"

	"github.com/lsio-loader/lsio-loader/codecs"
)

// codecEntry builds one codec from its configuration, for each position of
// a chain it can take (as zarrs does: array→array, array→bytes,
// bytes→bytes). numcodecs' shuffle takes two: a filter of a v2 array, and
// a bytes→bytes codec where zarr-python 3 places it in v3 arrays.
type codecEntry struct {
	// arrayToArray returns nil for codecs that are identities on read.
	arrayToArray func(conf map[string]any, dtype DType, shape []int64) (arrayToArrayCodec, error)
	arrayToBytes func(raw json.RawMessage, conf map[string]any, dtype DType, shape []int64) (arrayToBytesCodec, error)
	bytesToBytes func(conf map[string]any, itemSize int) (bytesToBytesCodec, error)
}

// codecRegistry maps every codec name a Zarr v3 array may list and every
// numcodecs id a v2 array may list to its entry. It is the one place codec
// names live: a new codec is its own file plus one line here. Built once,
// never changed: assigned in init, because sharding_indexed builds its inner
// chain from the registry itself.
var codecRegistry map[string]codecEntry

func init() {
	codecRegistry = newCodecRegistry(map[string]codecEntry{
		// array→array
		"transpose":        {arrayToArray: newTransposeCodec},
		"delta":            {arrayToArray: newDeltaCodec},
		"fixedscaleoffset": {arrayToArray: newScaleOffsetCodec},
		"astype":           {arrayToArray: newAsTypeCodec},
		"quantize":         {arrayToArray: identityOnRead},
		"bitround":         {arrayToArray: identityOnRead},
		"shuffle":          {arrayToArray: newShuffleFilter, bytesToBytes: newShuffleBytes},
		// array→bytes
		"bytes":            {arrayToBytes: newEndianCodec},
		"endian":           {arrayToBytes: newEndianCodec},
		"sharding_indexed": {arrayToBytes: newShardingCodec},
		// bytes→bytes
		"crc32c": {bytesToBytes: newCRC32CCodec},
		"blosc":  {bytesToBytes: newBloscCodec},
		"zstd":   {bytesToBytes: compressor("zstd", func() bytesDecoder { return codecs.NewZstd() }, "level", "checksum")},
		"gzip":   {bytesToBytes: compressor("gzip", func() bytesDecoder { return codecs.NewGzip() }, "level")},
		"zlib":   {bytesToBytes: compressor("zlib", func() bytesDecoder { return codecs.NewZlib() }, "level")},
		"bz2":    {bytesToBytes: compressor("bz2", func() bytesDecoder { return codecs.NewBz2() }, "level")},
		"lz4":    {bytesToBytes: compressor("lz4", func() bytesDecoder { return codecs.LZ4{} }, "acceleration")},
	}, numcodecsNames)
}

// numcodecsNames are the codecs zarr-python 3 also names "numcodecs.<id>"
// in v3 metadata.
var numcodecsNames = []string{"delta", "fixedscaleoffset", "astype", "quantize", "bitround", "shuffle",
	"blosc", "zstd", "gzip", "zlib", "bz2", "lz4"}

func newCodecRegistry(entries map[string]codecEntry, numcodecsAliases []string) map[string]codecEntry {
	r := make(map[string]codecEntry, len(entries)+len(numcodecsAliases))
	for name, e := range entries {
		r[name] = e
	}
	for _, name := range numcodecsAliases {
		r["numcodecs."+name] = entries[name]
	}
	return r
}
