#!/usr/bin/env bash
# Creates bench/ocf/.venv: ocf-data-sampler (the reference tool our users run
# today) in its own venv, so that its pins never touch the project's .venv.
# Idempotent: a venv whose marker matches the pin is left alone. Packages come
# through uv (the project's .venv/bin/uv, else one on PATH), sharing its cache.
set -euo pipefail
OCF_VERSION=1.0.24
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$(dirname "$here")")"
venv="$here/.venv"
marker="$venv/.installed-ocf-data-sampler-$OCF_VERSION"
[[ -e $marker ]] && exit 0
uv="$root/.venv/bin/uv"
[[ -x $uv ]] || uv="$(command -v uv)" || { echo "bench/ocf/setup.sh: no uv (run make venv first)" >&2; exit 1; }
"${PYTHON:-python3}" -m venv "$venv"
# The same torch/numpy/xarray/zarr/tensorstore pins as the project's venv
# (already in uv's cache), so the two venvs differ only in ocf's own deps.
"$uv" pip install -q --python "$venv/bin/python" "ocf-data-sampler==$OCF_VERSION" \
  -c "$root/python/requirements.lock"
touch "$marker"
