"""Compare the Go codecs' decode speed with numcodecs' (the C libraries).

Writes the same realistic chunks, encoded by numcodecs, to a directory;
times numcodecs' single-threaded decode of each (best of several timeit
repeats); runs `go test ./codecs -bench BenchmarkDecodeFiles` on the same
files with GOMAXPROCS=1; alternates the two a few rounds keeping each best;
prints numcodecs MB/s, Go MB/s and their ratio, per wall second and per CPU
second (the fair figure on a shared, loaded machine).

Chunks that hold zstd frames (zstd, blosc-zstd) are decoded by each zstd
decoder in turn: ours, klauspost's, "go" (the pure-Go build's per-frame
choice of the two), libzstd through DataDog/zstd (what the cgo build links)
and through valyala/gozstd (built with -tags gozstd for this comparison
only). The cases include the bench workloads' chunks (bench/data, from
`loader bench gen`) when present. The per-codec table of single-core GB/s
of decoded output per CPU second goes into bench/RESULTS.md between
`<!-- codecs:begin -->` and `<!-- codecs:end -->` (--results).

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


def bench_chunks(data_dir):
    """The first chunk of each bench workload: the satellite store's first
    inner chunk (zstd, in a shard) and the NWP store's first (blosc-zstd)."""
    out = []
    sat = os.path.join(data_dir, 'satellite.zarr', 'data')
    shard = os.path.join(sat, 'c', '0', '0', '0', '0')
    if os.path.exists(shard):
        meta = json.load(open(os.path.join(sat, 'zarr.json')))
        sharding = meta['codecs'][0]['configuration']
        inner = sharding['chunk_shape']
        n_inner = int(np.prod([s // i for s, i in zip(meta['chunk_grid']['configuration']['chunk_shape'], inner)]))
        data = open(shard, 'rb').read()
        index = np.frombuffer(data[len(data) - 16 * n_inner - 4:len(data) - 4], dtype='<u8').reshape(-1, 2)
        off, n = (int(v) for v in index[0])
        size = int(np.prod(inner)) * np.dtype(meta['data_type']).itemsize
        out.append(('bench-satellite-zstd', 'zstd', numcodecs.Zstd(), data[off:off + n], size))
    nwp = os.path.join(data_dir, 'nwp.zarr', 'UKV')
    if os.path.exists(os.path.join(nwp, '0.0.0.0.0')):
        meta = json.load(open(os.path.join(nwp, '.zarray')))
        codec = numcodecs.get_codec(meta['compressor'])
        enc = open(os.path.join(nwp, '0.0.0.0.0'), 'rb').read()
        out.append(('bench-nwp-blosc-zstd', 'blosc', codec, enc, len(codec.decode(enc))))
    return out


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
        cmd = ['go', 'test', '-tags', 'gozstd', './codecs', '-run', '^$', '-bench', '^BenchmarkDecodeFiles$',
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


ZSTD_VARIANTS = ['ours', 'klauspost', 'go', 'libzstd-datadog', 'libzstd-gozstd']


def table(encoded, ref, got):
    """The Markdown table: per case, numcodecs and each Go decoder, in GB/s
    of decoded output per CPU second on one core."""
    lines = ['| case | decoded MB | numcodecs | Go (default) | ours | klauspost | go (pure-Go build) '
             '| libzstd DataDog/zstd | libzstd gozstd | best Go ÷ numcodecs |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for name, _, _, _, size in encoded:
        rc = ref[name][1]
        row = [name, f'{size / MB:.1f}', f'{rc / 1e3:.2f}']
        if name in got:  # no per-decoder variants: one Go decoder
            row += [f'{got[name][1] / 1e3:.2f}'] + ['']*5
            best = got[name][1]
        else:
            v = {k: got.get(f'{name}/{k}', [0, 0])[1] for k in ZSTD_VARIANTS}
            row += [f'{v["libzstd-datadog"] / 1e3:.2f}' if v['libzstd-datadog'] else f'{v["go"] / 1e3:.2f}']
            row += [f'{v[k] / 1e3:.2f}' if v[k] else '–' for k in ZSTD_VARIANTS]
            best = max(v.values())
        row.append(f'{best / rc:.2f}')
        lines.append('| ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def write_results(path, body):
    """Replaces (or appends) the codecs section of the results file."""
    begin, end = '<!-- codecs:begin -->', '<!-- codecs:end -->'
    section = f'{begin}\n{body}\n{end}'
    try:
        text = open(path).read()
    except OSError:
        text = ''
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip('\n') + '\n\n' + section + '\n'
    open(path, 'w').write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--dir', help='where to write the chunks (default: a temporary directory)')
    ap.add_argument('--benchtime', default='1s', help='go test -benchtime')
    ap.add_argument('--repeats', type=int, default=5, help='timeit repeats (best is kept)')
    ap.add_argument('--rounds', type=int, default=3, help='alternations of numcodecs and Go (best is kept)')
    ap.add_argument('--real', default=os.path.join('..', 'shared', 'data', 'real'))
    ap.add_argument('--data', default=os.path.join('bench', 'data'), help='the bench workloads (loader bench gen)')
    ap.add_argument('--go-test-bin', help='a codecs test binary (go test -tags gozstd -c ./codecs) to run instead of go test')
    ap.add_argument('--results', default=os.path.join('bench', 'RESULTS.md'), help="where the table goes ('' for nowhere)")
    ap.add_argument('--only', help='comma-separated case names, for a quick look')
    args = ap.parse_args()

    blosc.set_nthreads(1)
    blosc.use_threads = False
    workdir = args.dir or tempfile.mkdtemp(prefix='codec-bench-')
    os.makedirs(workdir, exist_ok=True)
    encoded = bench_chunks(args.data) + cases(args.real)
    if args.only:
        encoded = [e for e in encoded if e[0] in args.only.split(',')]
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
            if not any(k == name or k.startswith(name + '/') for k in round_got):
                sys.exit(f'no Go result for {name}:\n{stdout}')
        for k, v in round_got.items():
            got[k] = [max(a, b) for a, b in zip(got.get(k, [0, 0]), v)]

    print(f'{"case":38} {"decoded":>9} | {"wall MB/s: numcodecs":>20} {"Go":>6} {"ratio":>5} |'
          f' {"CPU MB/s: numcodecs":>19} {"Go":>6} {"ratio":>5}')
    for name, _, _, _, size in encoded:
        (rw, rc) = ref[name]
        for k in sorted(k for k in got if k == name or k.startswith(name + '/')):
            gw, gc = got[k]
            print(f'{k:38} {size:9d} | {rw:20.0f} {gw:6.0f} {gw / rw:5.2f} | {rc:19.0f} {gc:6.0f} {gc / rc:5.2f}')
    body = ('## Decode speed per codec\n\n'
            f'Load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: on a shared machine, '
            'compare columns of one row rather than rows of different runs. '
            'Single-core decode speed, GB/s of decoded output per CPU second (GOMAXPROCS=1, one blosc thread; '
            'best of the rounds; `make bench-codecs`, bench/codecs/compare.py). "Go (default)" is what the '
            'loader uses: libzstd through DataDog/zstd for zstd frames when built with cgo.\n\n'
            + table(encoded, ref, got))
    print(body)
    if args.results:
        write_results(args.results, body)


if __name__ == '__main__':
    main()
