"""Write the zarr-python conformance matrix for zarr/conformance_test.go.

usage: make_matrix.py OUTDIR SEED

zarr-python 3 and numcodecs write small arrays covering dtypes x codecs x
memory orders x edge chunks x missing chunks x key encodings into
OUTDIR/v2.zarr and OUTDIR/v3.zarr (both consolidated). For each array,
zarr-python's own read of the whole array and of a few seeded random regions
is saved as little-endian C-order .npy under OUTDIR/expected/, and
OUTDIR/manifest.json lists what the Go side must reproduce.
"""

import json
import os
import sys
import warnings

import numcodecs
import numcodecs.zarr3
import numpy as np
import zarr
from zarr.codecs import (
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    ShardingCodec,
    TransposeCodec,
    ZstdCodec,
)

warnings.filterwarnings("ignore")

OUT = sys.argv[1]
RNG = np.random.default_rng(int(sys.argv[2]))
MANIFEST = []


def values(dtype, shape):
    """Random values spanning the dtype's range, with NaN/inf for floats."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if dt.kind == "b":
        v = RNG.integers(0, 2, n).astype(bool)
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        v = RNG.integers(info.min, info.max, n, dtype=dt.newbyteorder("="), endpoint=True)
    elif dt.kind == "f":
        v = (RNG.standard_normal(n) * 1000).astype(dt.newbyteorder("="))
        if n > 4:
            v[RNG.integers(0, n, 3)] = np.nan
            v[RNG.integers(0, n)] = np.inf
            v[RNG.integers(0, n)] = -np.inf
    elif dt.kind in "Mm":
        v = RNG.integers(-(2**62), 2**62, n).astype(dt.newbyteorder("="))
        v[RNG.integers(0, n)] = np.datetime64("NaT") if dt.kind == "M" else np.timedelta64("NaT")
    elif dt.kind == "U":
        letters = np.array(list("abcdefghijklmnopqrstuvwxyzÅß€😀"))
        v = np.array(["".join(RNG.choice(letters, RNG.integers(0, dt.itemsize // 4 + 1))) for _ in range(n)], dtype=dt)
    else:
        raise ValueError(dtype)
    return v.astype(dt).reshape(shape)


def regions(shape, k):
    out = []
    for _ in range(k):
        start = [int(RNG.integers(0, s)) for s in shape]
        size = [int(RNG.integers(1, s - b + 1)) for s, b in zip(shape, start)]
        out.append((start, size))
    return out


def save_expected(name, arr, group_name):
    """Reads back through zarr-python and records the expected bytes."""
    edir = os.path.join(OUT, "expected", group_name, name)
    os.makedirs(edir, exist_ok=True)
    ref = zarr.open_array(os.path.join(OUT, group_name), path=name, mode="r")
    want_dtype = ref.dtype.newbyteorder("<") if ref.dtype.byteorder == ">" else ref.dtype
    regs = [([0] * len(ref.shape), list(ref.shape))] + regions(ref.shape, 3)
    entries = []
    for i, (start, size) in enumerate(regs):
        sel = tuple(slice(b, b + s) for b, s in zip(start, size))
        got = np.ascontiguousarray(ref[sel]).astype(want_dtype)
        f = os.path.join("expected", group_name, name, f"r{i}.npy")
        np.save(os.path.join(OUT, f), got)
        entries.append({"start": start, "shape": size, "file": f})
    MANIFEST.append(
        {
            "store": group_name,
            "array": name,
            "dtype": want_dtype.str,
            "shape": list(ref.shape),
            "regions": entries,
        }
    )


def write(group_name, name, dtype, shape, chunks, partial=False, fill=..., **kw):
    """Creates one array, fills it (whole, or a region when partial so that
    some chunks are never written) and records zarr-python's reads."""
    path = os.path.join(OUT, group_name)
    args = dict(name=name, shape=shape, chunks=chunks, dtype=dtype, overwrite=True)
    if fill is not ...:
        args["fill_value"] = fill
    args.update(kw)
    a = zarr.create_array(path, **args)
    data = values(dtype, shape)
    if partial:
        # The first chunk along every dim and the region beyond the middle
        # stay unwritten, so reads meet both missing and partly written chunks.
        sel = tuple(slice(min(c, s - 1), max(min(c, s - 1) + 1, (s * 2) // 3)) for s, c in zip(shape, chunks))
        a[sel] = data[sel]
    else:
        a[...] = data
    save_expected(name, a, group_name)


def v2_matrix():
    g = "v2.zarr"
    zarr.open_group(os.path.join(OUT, g), mode="w", zarr_format=2)
    v2 = dict(zarr_format=2)
    dtypes = ["|b1", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8", "<f2", "<f4", "<f8",
              ">i2", ">i4", ">i8", ">u2", ">u4", ">u8", ">f2", ">f4", ">f8", "<M8[ns]", "<M8[s]", "<m8[ns]", "<U5"]
    for dt in dtypes:
        tag = np.dtype(dt).str.replace("<", "le").replace(">", "be").replace("|", "").replace("[", "_").replace("]", "")
        for order in "CF":
            write(g, f"dtype_{tag}_{order}", dt, (7, 9), (3, 4), order=order,
                  compressors=numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE), **v2)
        # Missing chunks with a non-default fill value.
        fill = {"b": True, "i": -3, "u": 7, "f": np.nan, "M": np.datetime64(5, "s"), "m": np.timedelta64(-7, "ns"), "U": "fill"}[np.dtype(dt).kind]
        write(g, f"missing_{tag}", dt, (10, 11), (4, 3), partial=True, fill=fill, compressors=None, **v2)
    for dt in ["<f4", "<i2", "<f8", "|u1"]:
        for cname in ["lz4", "lz4hc", "zstd", "zlib", "blosclz"]:
            for shuffle in [0, 1, 2]:
                comp = numcodecs.Blosc(cname, 3, shuffle, blocksize=256)
                write(g, f"blosc_{cname}_s{shuffle}_{dt[1:]}", dt, (33, 50), (16, 24), compressors=comp, **v2)
    others = {
        "none": None,
        "zstd": numcodecs.Zstd(level=3),
        "zstd_checksum": numcodecs.Zstd(level=1, checksum=True),
        "zlib": numcodecs.Zlib(level=6),
        "gzip": numcodecs.GZip(level=6),
        "bz2": numcodecs.BZ2(level=9),
        "lz4": numcodecs.LZ4(acceleration=1),
    }
    for cname, comp in others.items():
        for dt in ["<f4", "<i8", "|u1", ">f8"]:
            write(g, f"comp_{cname}_{dt[1:]}_{'be' if dt[0] == '>' else 'le'}", dt, (21, 17), (8, 8),
                  compressors=comp, **v2)
    filt = {
        "delta": ("<i4", [numcodecs.Delta(dtype="<i4")], numcodecs.Zstd()),
        "delta_u2": ("<u2", [numcodecs.Delta(dtype="<u2")], None),
        "delta_be": (">i2", [numcodecs.Delta(dtype=">i2")], numcodecs.Zstd()),
        "delta_be_astype": (">i4", [numcodecs.Delta(dtype=">i4", astype=">i2")], None),
        "fixedscaleoffset_be": (">f8", [numcodecs.FixedScaleOffset(offset=1000, scale=10, dtype=">f8", astype=">i4")], None),
        "astype_be": (">f8", [numcodecs.AsType(encode_dtype=">f4", decode_dtype=">f8")], numcodecs.Zlib()),
        "fixedscaleoffset": ("<f8", [numcodecs.FixedScaleOffset(offset=1000, scale=10, dtype="<f8", astype="<i4")], numcodecs.Blosc("zstd", 5, 1)),
        "fixedscaleoffset_u1": ("<f4", [numcodecs.FixedScaleOffset(offset=0, scale=1, dtype="<f4", astype="|u1")], None),
        "shuffle": ("<f4", [numcodecs.Shuffle(elementsize=4)], numcodecs.Zlib()),
        "shuffle_delta": ("<i8", [numcodecs.Delta(dtype="<i8"), numcodecs.Shuffle(elementsize=8)], numcodecs.LZ4()),
    }
    for name, (dt, filters, comp) in filt.items():
        for order in "CF":
            shape = (19, 23)
            a = zarr.create_array(os.path.join(OUT, g), name=f"filter_{name}_{order}", shape=shape, chunks=(8, 8), dtype=dt,
                                  filters=filters, compressors=comp, order=order, overwrite=True, **v2)
            if "fixedscaleoffset" in name:
                data = RNG.uniform(0, 200, shape).astype(dt)
                if name.endswith("u1"):
                    data = RNG.integers(0, 255, shape).astype(dt)
            elif dt == "<u2":
                data = RNG.integers(0, 65535, shape, dtype="<u2")
            elif name == "delta_be_astype":  # deltas that fit the encoded >i2
                data = RNG.integers(0, 30000, shape).astype(dt)
            else:
                data = values(dt, shape)
            a[...] = data
            save_expected(f"filter_{name}_{order}", a, g)
    for sep in "./":
        for dt in ["<f4", "<i2"]:
            tag = "dot" if sep == "." else "slash"
            write(g, f"sep_{tag}_{dt[1:]}_3d", dt, (5, 7, 9), (2, 3, 4), partial=sep == "/",
                  chunk_key_encoding={"name": "v2", "separator": sep},
                  compressors=numcodecs.Blosc("zstd", 1, 2), **v2)
    write(g, "shape_1d", "<f8", (100,), (7,), compressors=numcodecs.Zstd(), **v2)
    write(g, "chunk_bigger_than_array", "<f4", (3, 5), (17, 37), compressors=numcodecs.Blosc("lz4", 5, 1), **v2)
    write(g, "fill_null_missing", "<f4", (9, 9), (4, 4), partial=True, fill=None, compressors=None, **v2)
    write(g, "shape_4d", "<i2", (3, 4, 5, 6), (2, 3, 2, 4), partial=True, fill=-1,
          compressors=numcodecs.Blosc("zstd", 5, 1), **v2)
    zarr.consolidate_metadata(os.path.join(OUT, g))


def v3_matrix():
    g = "v3.zarr"
    zarr.open_group(os.path.join(OUT, g), mode="w", zarr_format=3)
    dtypes = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "float16", "float32", "float64", "M8[ns]", "M8[s]"]
    for dt in dtypes:
        tag = dt.replace("[", "_").replace("]", "")
        for endian in ["little", "big"]:
            if np.dtype(dt).itemsize == 1 and endian == "big":
                continue
            write(g, f"dtype_{tag}_{endian}", dt, (7, 9), (3, 4), serializer=BytesCodec(endian=endian),
                  compressors=ZstdCodec(level=1))
        fill = {"b": True, "i": -3, "u": 7, "f": np.nan, "M": np.datetime64(5, "s")}[np.dtype(dt).kind]
        write(g, f"missing_{tag}", dt, (10, 11), (4, 3), partial=True, fill=fill, compressors=None)
    comps = {
        "none": dict(compressors=None),
        "gzip": dict(compressors=GzipCodec(level=5)),
        "zstd": dict(compressors=ZstdCodec(level=3)),
        "zstd_checksum": dict(compressors=ZstdCodec(level=3, checksum=True)),
        "blosc_lz4_shuffle": dict(compressors=BloscCodec(cname="lz4", clevel=5, shuffle="shuffle", blocksize=256)),
        "blosc_zstd_bitshuffle": dict(compressors=BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle", blocksize=256)),
        "blosc_blosclz_noshuffle": dict(compressors=BloscCodec(cname="blosclz", clevel=5, shuffle="noshuffle")),
        "crc32c": dict(compressors=Crc32cCodec()),
        "zstd_crc32c": dict(compressors=[ZstdCodec(level=1), Crc32cCodec()]),
        "transpose_zstd": dict(filters=[TransposeCodec(order=(1, 0))], compressors=ZstdCodec()),
        "transpose_big_gzip": dict(filters=[TransposeCodec(order=(1, 0))], serializer=BytesCodec(endian="big"),
                                   compressors=GzipCodec()),
    }
    for name, kw in comps.items():
        for dt in ["float32", "int16"]:
            write(g, f"codec_{name}_{dt}", dt, (21, 17), (8, 8), **kw)
    # numcodecs filters in v3 (under a big-endian bytes codec zarr-python's
    # own reads are wrong; TestNumcodecsFiltersBigEndianV3 checks those).
    write(g, "numcodecs_delta", "int16", (21, 17), (8, 8), filters=[numcodecs.zarr3.Delta(dtype="<i2")],
          compressors=[numcodecs.zarr3.Shuffle(elementsize=2), numcodecs.zarr3.Zstd()])
    write(g, "numcodecs_astype", "float64", (21, 17), (8, 8),
          filters=[numcodecs.zarr3.AsType(encode_dtype="<f4", decode_dtype="<f8")], compressors=numcodecs.zarr3.Zstd())
    write(g, "transpose_3d", "float64", (5, 6, 7), (2, 4, 3), partial=True, fill=1.5,
          filters=[TransposeCodec(order=(2, 0, 1))], compressors=ZstdCodec())
    inner = {
        "bytes": [BytesCodec()],
        "zstd": [BytesCodec(), ZstdCodec(level=1)],
        "gzip": [BytesCodec(endian="big"), GzipCodec()],
        "blosc": [TransposeCodec(order=(1, 0)), BytesCodec(), BloscCodec(cname="lz4", shuffle="shuffle")],
        "crc32c": [BytesCodec(), Crc32cCodec()],
    }
    for iname, codecs in inner.items():
        for loc in ["end", "start"]:
            for partial in [False, True]:
                shard = ShardingCodec(chunk_shape=(3, 4), codecs=codecs, index_location=loc)
                write(g, f"shard_{iname}_{loc}{'_missing' if partial else ''}", "float32", (14, 19), (6, 8),
                      partial=partial, fill=np.nan if partial else ..., serializer=shard, compressors=None)
    write(g, "shard_index_zstd", "int16", (10, 10), (4, 4), partial=True, fill=-9,
          serializer=ShardingCodec(chunk_shape=(2, 2), codecs=[BytesCodec(), ZstdCodec()],
                                   index_codecs=[BytesCodec(), Crc32cCodec()]), compressors=None)
    write(g, "shards_api_3d", "uint16", (4, 20, 30), (1, 5, 6), shards=(2, 10, 12), partial=True, fill=11,
          compressors=ZstdCodec())
    for enc_name, sep in [("default", "/"), ("default", "."), ("v2", "."), ("v2", "/")]:
        tag = f"{enc_name}_{'slash' if sep == '/' else 'dot'}"
        write(g, f"keys_{tag}", "float32", (5, 7, 9), (2, 3, 4), partial=True, fill=0.25,
              chunk_key_encoding={"name": enc_name, "separator": sep}, compressors=ZstdCodec(),
              dimension_names=["a", "b", "c"])
    write(g, "shape_1d", "float64", (100,), (7,))
    write(g, "chunk_bigger_than_array", "float32", (3, 5), (17, 37))
    write(g, "shape_4d", "int16", (3, 4, 5, 6), (2, 3, 2, 4), partial=True, fill=-1, compressors=GzipCodec())
    zarr.consolidate_metadata(os.path.join(OUT, g))


v2_matrix()
v3_matrix()
with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump(MANIFEST, f, indent=1)
print(len(MANIFEST))
