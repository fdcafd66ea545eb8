"""Writes the committed fuzz seed corpus: small buffers compressed by the
reference C libraries through numcodecs, plus small real chunks; for
FuzzZstdDecoder, libzstd frames (levels, checksums, concatenated frames)
over float fields, byte-shuffled floats, text and zeros.

Run from the module root: .venv/bin/python codecs/testdata/gen_fuzz_seeds.py
"""
import os
import numpy as np
import numcodecs
from numcodecs import blosc

blosc.set_nthreads(1)
here = os.path.dirname(os.path.abspath(__file__))
real = os.path.join(here, '..', '..', '..', 'shared', 'data', 'real')


def seed(fuzzer, name, *values):
    d = os.path.join(here, 'fuzz', fuzzer)
    os.makedirs(d, exist_ok=True)
    lines = ['go test fuzz v1']
    for v in values:
        if isinstance(v, (bytes, bytearray)):
            lines.append('[]byte(%s)' % go_quote(bytes(v)))
        else:
            lines.append('uint32(%d)' % v)
    with open(os.path.join(d, name), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def go_quote(b):
    out = []
    for c in b:
        if c == 0x22:
            out.append('\\"')
        elif c == 0x5c:
            out.append('\\\\')
        elif 0x20 <= c < 0x7f:
            out.append(chr(c))
        else:
            out.append('\\x%02x' % c)
    return '"' + ''.join(out) + '"'


rng = np.random.default_rng(3)
e = np.arange(600)
field = (280 + 10 * np.sin(e / 40) + rng.normal(0, 0.3, e.size)).astype('<f4')
for cname in blosc.list_compressors():
    for shuffle in (0, 1, 2):
        enc = numcodecs.Blosc(cname, 5, shuffle, 256).encode(field)
        seed('FuzzBloscDecode', f'{cname}-shuffle{shuffle}', enc)
        seed('FuzzBloscDecodeRange', f'{cname}-shuffle{shuffle}', enc, 300, 1000)
seed('FuzzBloscDecode', 'memcpyed', numcodecs.Blosc('lz4', 0, 1, 0).encode(field))
small = os.path.join(real, 'ecmwf-earthkit', 'ecmwf_pl_forecast.zarr', 't', '0.0.0.0.0')
seed('FuzzBloscDecode', 'real-ecmwf-forecast-t', open(small, 'rb').read())
seed('FuzzBloscDecodeRange', 'real-ecmwf-forecast-t', open(small, 'rb').read(), 100, 2000)

raw = field.tobytes()
seed('FuzzZstdDecode', 'numcodecs-level3', numcodecs.Zstd(level=3).encode(raw))
seed('FuzzGzipDecode', 'numcodecs-level5', numcodecs.GZip(level=5).encode(raw))
seed('FuzzZlibDecode', 'numcodecs-level5', numcodecs.Zlib(level=5).encode(raw))
seed('FuzzBz2Decode', 'numcodecs-level9', numcodecs.BZ2(level=9).encode(raw))
seed('FuzzLZ4Decode', 'numcodecs-accel1', numcodecs.LZ4().encode(raw))

# FuzzZstdDecoder: our own zstd decoder against klauspost's.
rng = np.random.default_rng(7)
n = 1500
e = np.arange(n)
field = (280 + 10 * np.sin(e / 40) + rng.normal(0, 0.3, n)).astype('<f4')
shuffled = field.view('u1').reshape(-1, 4).T.copy().tobytes()
text = b' '.join(rng.choice([b'wind', b'cloud', b'grid', b'chunk', b'the', b'of'], 400))
inputs = {'field': field.tobytes(), 'shuffled': shuffled, 'text': text, 'zeros': bytes(700), 'one': b'x'}
for name, raw in inputs.items():
    for level in (-5, 1, 19):
        seed('FuzzZstdDecoder', f'libzstd-{name}-l{level}', numcodecs.Zstd(level=level).encode(raw))
    seed('FuzzZstdDecoder', f'libzstd-{name}-crc', numcodecs.Zstd(level=3, checksum=True).encode(raw))
seed('FuzzZstdDecoder', 'libzstd-concatenated', numcodecs.Zstd(level=3).encode(text[:900]) + numcodecs.Zstd(level=1).encode(shuffled[:800]))
