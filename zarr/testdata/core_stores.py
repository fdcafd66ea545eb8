"""Writes, with zarr-python 3, the small stores the zarr core tests read:
sharding variants, v3 codecs and key encodings, v2 orders, filters and
separators, dtypes and fill values, and partially written arrays so that
missing chunks, empty inner chunks and missing shards all occur.
Usage: core_stores.py OUT_DIR; prints the JSON list of arrays written."""
import json, sys
import numpy as np
import zarr
import numcodecs
from zarr.codecs import (BytesCodec, BloscCodec, Crc32cCodec, GzipCodec, ShardingCodec,
                         TransposeCodec, ZstdCodec)

out = sys.argv[1]
rng = np.random.default_rng(42)
arrays = []


def data(shape, dtype):
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if dt.kind == "b":
        v = rng.integers(0, 2, n).astype(bool)
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        v = rng.integers(max(info.min, -100000), min(info.max, 100000), n, endpoint=True).astype(dt)
    elif dt.kind == "f":
        v = (rng.standard_normal(n) * 100).astype(dt)
        v[::97] = np.nan
    elif dt.kind == "c":
        v = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dt)
    elif dt.kind == "M":
        v = (np.datetime64("2020-04-01T00:00:00", "s") + rng.integers(0, 10**8, n)).astype(dt)
    elif dt.kind == "U":
        words = np.array(["IR_016", "VIS006", "x", "", "WV_073"])
        v = words[rng.integers(0, len(words), n)].astype(dt)
    return v.reshape(shape)


def add(name, shape, dtype, write="all", fmt=3, **kw):
    a = zarr.create_array(store=f"{out}/{name}", shape=shape, dtype=dtype, zarr_format=fmt, **kw)
    v = data(shape, dtype)
    if write == "all":
        a[...] = v
    elif write == "part":
        # leave the tail of every dim unwritten: missing chunks and shards
        sel = tuple(slice(0, max(1, s // 2)) for s in shape)
        a[sel] = v[sel]
    arrays.append(name)


# sharding: index end (crc32c index), inner zstd; partly written
add("shard_end_zstd", (50, 37), "f4", write="part", chunks=(5, 10), shards=(20, 20),
    compressors=ZstdCodec(level=1), fill_value=np.nan)
add("shard_start_gzip", (33, 41), "i2", write="part", chunks=(12, 16), fill_value=-7,
    serializer=ShardingCodec(chunk_shape=(4, 8), codecs=[BytesCodec(), GzipCodec()], index_location="start"),
    compressors=None, filters=None)
add("shard_blosc_big", (24, 30, 7), ">f8", chunks=(3, 5, 7), shards=(12, 15, 7),
    compressors=BloscCodec(cname="lz4", shuffle="shuffle", blocksize=256), serializer=BytesCodec(endian="big"))
add("shard_raw", (40, 40), "u2", write="part", chunks=(8, 8), shards=(16, 40), compressors=None, fill_value=3)
add("shard_crc_inner", (17, 19), "i4", chunks=(4, 4), shards=(8, 8),
    compressors=[ZstdCodec(level=3), Crc32cCodec()])
add("shard_nested", (40, 30), "i4", write="part", chunks=(20, 30), fill_value=-1, compressors=None,
    serializer=ShardingCodec(chunk_shape=(10, 15), codecs=[ShardingCodec(
        chunk_shape=(5, 5), codecs=[BytesCodec(), ZstdCodec()], index_location="start")]))
add("shard_nested_raw", (16, 16), "u2", chunks=(16, 16), compressors=None,
    serializer=ShardingCodec(chunk_shape=(8, 8), codecs=[ShardingCodec(chunk_shape=(4, 4), codecs=[BytesCodec()])]))
# v3 codecs and keys
add("v3_transpose", (13, 9, 5), "i8", chunks=(4, 3, 5), filters=[TransposeCodec(order=(2, 0, 1))],
    compressors=ZstdCodec())
add("v3_big_gzip", (31, 7), ">u4", chunks=(8, 7), serializer=BytesCodec(endian="big"), compressors=GzipCodec())
add("v3_raw", (64, 48), "f4", write="part", chunks=(32, 24), compressors=None, fill_value=1.5)
add("v3_dot_keys", (10, 10), "u1", chunks=(3, 3), chunk_key_encoding={"name": "default", "separator": "."})
add("v3_v2_keys", (10, 10), "i1", chunks=(3, 4), chunk_key_encoding={"name": "v2", "separator": "/"})
add("v3_scalar", (), "f8", chunks=())
add("v3_bool", (20,), "bool", chunks=(6,))
add("v3_f2", (25, 3), "f2", chunks=(7, 2), fill_value=-0.5, write="part")
add("v3_c8", (12,), "c8", chunks=(5,))
add("v3_m8", (15,), "M8[s]", chunks=(4,), write="part")
add("v3_u4", (9,), "<U4", chunks=(4,))
add("v3_hex_fill", (10,), "f4", chunks=(3,), fill_value=np.float32(np.nan), write="none")
from numcodecs.zarr3 import BZ2 as NcBZ2, Delta as NcDelta, FixedScaleOffset as NcFSO, Shuffle as NcShuffle
add("v3_numcodecs_fso", (20, 3), "f8", chunks=(8, 3), filters=[NcFSO(offset=1, scale=100, dtype="f8", astype="i4")],
    compressors=[NcShuffle(elementsize=4), NcBZ2()])
add("v3_numcodecs_delta", (30,), "i2", chunks=(7,), filters=[NcDelta(dtype="i2")], compressors=ZstdCodec())
# v2
add("v2_F_blosc", (30, 20, 3), "f4", fmt=2, order="F", chunks=(7, 6, 2),
    compressors=numcodecs.Blosc(cname="zstd", clevel=3, shuffle=2, blocksize=128))
add("v2_blosc_small_blocks", (200, 300), "f4", fmt=2, chunks=(100, 150),
    compressors=numcodecs.Blosc(cname="lz4", clevel=5, shuffle=1, blocksize=1024))
add("v2_slash", (12, 12), ">i4", fmt=2, chunks=(5, 5), chunk_key_encoding={"name": "v2", "separator": "/"},
    compressors=numcodecs.Zlib(level=1), write="part", fill_value=9)
add("v2_delta", (100,), "i4", fmt=2, chunks=(30,), filters=[numcodecs.Delta(dtype="i4", astype="i8")],
    compressors=numcodecs.LZ4())
add("v2_fso", (50,), "f8", fmt=2, chunks=(20,), filters=[numcodecs.FixedScaleOffset(offset=0, scale=10, dtype="f8", astype="i4")],
    compressors=numcodecs.GZip())
add("v2_shuffle_bz2", (40, 3), "i8", fmt=2, chunks=(16, 3), filters=[numcodecs.Shuffle(elementsize=8)],
    compressors=numcodecs.BZ2())
add("v2_none", (11, 13), "u8", fmt=2, chunks=(4, 4), compressors=None, write="part")
add("v2_u", (7,), "<U3", fmt=2, chunks=(3,), fill_value="ab", write="part")
add("v2_m8ns", (9,), "<M8[ns]", fmt=2, chunks=(4,))
add("v2_nullfill", (6,), "i2", fmt=2, chunks=(2,), fill_value=None, write="part")
add("v2_bool", (13,), "|b1", fmt=2, chunks=(5,))
# groups: v3 consolidated with a nested group, v2 without consolidation
for fmt in (3, 2):
    g = zarr.open_group(f"{out}/group_v{fmt}", mode="w", zarr_format=fmt, attributes={"title": "core", "n": 3})
    sub = g.create_group("sub", attributes={"level": 1})
    a = sub.create_array("temp", shape=(4, 5), dtype="f4", chunks=(2, 5), dimension_names=["y", "x"] if fmt == 3 else None)
    a[...] = data((4, 5), "f4")
    g.create_array("top", shape=(3,), dtype="i8", chunks=(3,))[...] = [1, 2, 3]
    arrays += [f"group_v{fmt}/sub/temp", f"group_v{fmt}/top"]
    if fmt == 3:
        zarr.consolidate_metadata(f"{out}/group_v3")
print(json.dumps(arrays))
