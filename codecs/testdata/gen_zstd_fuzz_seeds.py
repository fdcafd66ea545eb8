"""Writes the committed seed corpus of FuzzZstdDecoder: small buffers
compressed by libzstd through numcodecs (levels, checksums, concatenated
frames) over float fields, byte-shuffled floats, text and zeros.

Run from the module root: .venv/bin/python codecs/testdata/gen_zstd_fuzz_seeds.py
"""
import os
import numpy as np
import numcodecs

here = os.path.dirname(os.path.abspath(__file__))
out_dir = os.path.join(here, 'fuzz', 'FuzzZstdDecoder')


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


def seed(name, data):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, name), 'w') as f:
        f.write('go test fuzz v1\n[]byte(%s)\n' % go_quote(bytes(data)))


rng = np.random.default_rng(7)
n = 1500
e = np.arange(n)
field = (280 + 10 * np.sin(e / 40) + rng.normal(0, 0.3, n)).astype('<f4')
shuffled = field.view('u1').reshape(-1, 4).T.copy().tobytes()
text = b' '.join(rng.choice([b'wind', b'cloud', b'grid', b'chunk', b'the', b'of'], 400))
inputs = {'field': field.tobytes(), 'shuffled': shuffled, 'text': text, 'zeros': bytes(700), 'one': b'x'}
for name, raw in inputs.items():
    for level in (-5, 1, 19):
        seed(f'libzstd-{name}-l{level}', numcodecs.Zstd(level=level).encode(raw))
    seed(f'libzstd-{name}-crc', numcodecs.Zstd(level=3, checksum=True).encode(raw))
seed('libzstd-concatenated', numcodecs.Zstd(level=3).encode(text[:900]) + numcodecs.Zstd(level=1).encode(shuffled[:800]))
