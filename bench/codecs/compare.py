"""Compare the Go codecs' decode speed with numcodecs' (the C libraries).

Writes the same realistic chunks, encoded by numcodecs, to a directory;
times numcodecs' single-threaded decode of each (best of several timeit
repeats); runs `go test ./codecs -bench BenchmarkDecodeFiles` on the same
files with GOMAXPROCS=1; alternates the two a few rounds keeping each best;
prints numcodecs MB/s, Go MB/s and their ratio, per wall second and per CPU
second (the fair figure on a shared, loaded machine).

Run from the module root:
    .venv/bin/python bench/codecs/compare.py [--benchtime 1s] [--dir DIR]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import timeit

import numpy as np
import numcodecs
from numcodecs import blosc

MB = 1e6


def weather_field(nbytes, seed=1):
    """A smooth float32 field plus noise: compressible, not trivially."""
    rng = np.random.default_rng(seed)
    n = nbytes // 4
    e = np.arange(n)
    x, y = e % 548, e // 548
    v = 280 + 10 * np.sin(x / 40) * np.cos(y / 25) + rng.normal(0, 0.3, n)
    return v.astype('<f4')


def cases(real_dir):
    field = weather_field(4 << 20)
    raw = field.tobytes()
    out = [
        ('blosc-lz4-shuffle', 'blosc', numcodecs.Blosc('lz4', 5, 1, 0), field),
        ('blosc-zstd-shuffle', 'blosc', numcodecs.Blosc('zstd', 5, 1, 0), field),
        ('blosc-lz4-bitshuffle', 'blosc', numcodecs.Blosc('lz4', 5, 2, 0), field),
        ('blosc-blosclz-shuffle', 'blosc', numcodecs.Blosc('blosclz', 5, 1, 0), field),
        ('blosc-zlib-shuffle', 'blosc', numcodecs.Blosc('zlib', 5, 1, 0), field),
        ('zstd-3', 'zstd', numcodecs.Zstd(level=3), raw),
        ('lz4', 'lz4', numcodecs.LZ4(), raw),
        ('zlib-5', 'zlib', numcodecs.Zlib(level=5), raw),
        ('gzip-5', 'gzip', numcodecs.GZip(level=5), raw),
        ('bz2-9', 'bz2', numcodecs.BZ2(level=9), raw[:1 << 20]),
    ]
    encoded = [(name, codec_id, codec, codec.encode(data), len(bytes(memoryview(data).cast('B'))))
               for name, codec_id, codec, data in out]
    # Real chunks, compressed as the stores hold them.
    for name, path in [
        ('real-ukv-blosc-zstd', 'ocf-nowcasting-2023/ukv_nwp.zarr/UKV/0.0.0.0.0'),
        ('real-seviri21-blosc-zstd', 'ocf-nowcasting-2021/seviri_nonhrv_stacked.zarr/stacked_eumetsat_data/0.0.0.0'),
        ('real-ecmwf-blosc-lz4', 'ecmwf-earthkit/ecmwf_pl_analysis.zarr/t/0.0.0.0'),
        ('real-seviri-bz2', 'ocf-nowcasting-2023/seviri_hrv.zarr/data/0.0.0'),
    ]:
        full = os.path.join(real_dir, path)
        meta = json.load(open(os.path.join(os.path.dirname(full), '.zarray')))
        codec = numcodecs.get_codec(meta['compressor'])
        enc = open(full, 'rb').read()
        encoded.append((name, meta['compressor']['id'], codec, enc, len(codec.decode(enc))))
    return encoded


def numcodecs_mbps(codec, enc, size, repeats):
    """Best-of decode throughput per wall second and per CPU second."""
    out = np.empty(size, dtype='u1')
    codec.decode(enc, out=out)  # warm up; also checks that out= works
    result = []
    for clock in (time.perf_counter, time.process_time):
        timer = timeit.Timer(lambda: codec.decode(enc, out=out), timer=clock)
        number, _ = timer.autorange()
        best = min(timer.repeat(repeat=repeats, number=number)) / number
        result.append(size / best / MB)
    return result


def go_mbps(workdir, benchtime, test_bin=None):
    """Go decode throughput per wall second and per CPU second, by case."""
    env = dict(os.environ, GOMAXPROCS='1', LSIO_CODEC_BENCH_DIR=os.path.abspath(workdir))
    if test_bin:  # `go test -c ./codecs`, for a machine without Go
        cmd = [test_bin, '-test.run', '^$', '-test.bench', '^BenchmarkDecodeFiles$',
               '-test.benchtime', benchtime, '-test.count', '1']
    else:
        cmd = ['go', 'test', './codecs', '-run', '^$', '-bench', '^BenchmarkDecodeFiles$',
               '-benchtime', benchtime, '-count', '1']
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit('go test failed:\n' + res.stdout + res.stderr)
    got = {}
    for line in res.stdout.splitlines():
        m = re.match(r'BenchmarkDecodeFiles/(\S+)\s+\d+\s+[\d.]+ ns/op\s+([\d.]+) MB/s\s+([\d.]+) cpuMB/s', line)
        if m:
            got[m.group(1)] = [float(m.group(2)), float(m.group(3))]
    return got, res.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--dir', help='where to write the chunks (default: a temporary directory)')
    ap.add_argument('--benchtime', default='1s', help='go test -benchtime')
    ap.add_argument('--repeats', type=int, default=5, help='timeit repeats (best is kept)')
    ap.add_argument('--rounds', type=int, default=3, help='alternations of numcodecs and Go (best is kept)')
    ap.add_argument('--real', default=os.path.join('..', 'shared', 'data', 'real'))
    ap.add_argument('--go-test-bin', help='a codecs test binary (go test -c ./codecs) to run instead of go test')
    args = ap.parse_args()

    blosc.set_nthreads(1)
    blosc.use_threads = False
    workdir = args.dir or tempfile.mkdtemp(prefix='codec-bench-')
    os.makedirs(workdir, exist_ok=True)
    encoded = cases(args.real)
    manifest = []
    for name, codec_id, _, enc, size in encoded:
        fname = name + '.bin'
        with open(os.path.join(workdir, fname), 'wb') as f:
            f.write(bytes(enc))
        manifest.append(dict(name=name, codec=codec_id, enc=fname, size=size))
    with open(os.path.join(workdir, 'manifest.json'), 'w') as f:
        json.dump(manifest, f)

    # Alternate the two sides and keep each one's best, so that load from
    # other processes on a shared machine penalises both alike.
    ref, got = {}, {}
    for _ in range(args.rounds):
        for name, _, codec, enc, size in encoded:
            ref[name] = [max(a, b) for a, b in zip(ref.get(name, [0, 0]), numcodecs_mbps(codec, enc, size, args.repeats))]
        round_got, stdout = go_mbps(workdir, args.benchtime, args.go_test_bin)
        for name, _, _, _, _ in encoded:
            if name not in round_got:
                sys.exit(f'no Go result for {name}:\n{stdout}')
            got[name] = [max(a, b) for a, b in zip(got.get(name, [0, 0]), round_got[name])]

    print(f'{"case":24} {"decoded":>9} | {"wall MB/s: numcodecs":>20} {"Go":>6} {"ratio":>5} |'
          f' {"CPU MB/s: numcodecs":>19} {"Go":>6} {"ratio":>5}')
    for name, _, _, _, size in encoded:
        (rw, rc), (gw, gc) = ref[name], got[name]
        print(f'{name:24} {size:9d} | {rw:20.0f} {gw:6.0f} {gw / rw:5.2f} | {rc:19.0f} {gc:6.0f} {gc / rc:5.2f}')


if __name__ == '__main__':
    main()
