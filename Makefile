# lsio-loader: `make demo` and `make test` are all a fresh clone needs.
# Everything they depend on is installed here: Go modules, a Python venv with
# pinned dependencies (uv, sharing its download cache between runs), MinIO.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

GO      ?= go
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
UV      := $(VENV)/bin/uv
BIN     := bin/loader
CACHE   := $(HOME)/.cache/lsio-loader
MINIO   := $(CACHE)/bin/minio
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
UV_VERSION    := 0.13.9
SAMPLE  := data/sample

# With a C compiler the loader links libzstd through cgo (DataDog/zstd
# builds it from source), which decodes zstd about 1.5x as fast as the Go
# decoders; without one it builds pure Go with those decoders.
ifeq ($(shell command -v $(CC) 2>/dev/null),)
export CGO_ENABLED := 0
$(warning no C compiler ($(CC)) found: building pure Go, whose zstd decoding is slower. For libzstd, install one: apt-get install gcc (or set CC))
endif

export LSIO_PYTHON := $(CURDIR)/$(PY)
export LSIO_LOADER_BIN := $(CURDIR)/$(BIN)
export LSIO_MINIO := $(MINIO)

GO_SOURCES := $(shell find . -name '*.go' -not -path './.venv/*' 2>/dev/null) go.mod go.sum

.PHONY: all build wheel venv minio demo test test-go test-python fuzz bench bench-readers bench-codecs bench-io bench-gpu fio clean

all: build

build: $(BIN)

$(BIN): $(GO_SOURCES)
	$(GO) build -o $(BIN) ./cmd/loader

# A platform wheel of python/ carrying a static `loader` (lsio_loader/bin/loader,
# which the client finds first), staged in bin/wheel-src so the tree stays clean.
# A static Go binary needs no system library, hence the manylinux tag.
WHEEL_DIR  ?= dist
WHEEL_PLAT ?= manylinux_2_17_$(shell uname -m)
WHEEL_SRC  := bin/wheel-src

wheel: venv
	rm -rf $(WHEEL_SRC) && mkdir -p $(WHEEL_SRC) $(WHEEL_DIR)
	cp python/pyproject.toml python/setup.py $(WHEEL_SRC)/
	cp -r python/lsio_loader $(WHEEL_SRC)/
	find $(WHEEL_SRC) -name __pycache__ -prune -exec rm -rf {} +
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(WHEEL_SRC)/lsio_loader/bin/loader ./cmd/loader
	LSIO_LOADER_WHEEL_PLAT=$(WHEEL_PLAT) $(UV) build -q --wheel -o $(WHEEL_DIR) $(WHEEL_SRC)
	ls $(WHEEL_DIR)/lsio_loader-*-$(WHEEL_PLAT).whl

venv: $(VENV)/.installed

$(VENV)/.installed: python/requirements.lock python/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip install -q --python $(PY) -r python/requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps -e python
	touch $@

minio: $(MINIO)

# Built from source (about 3 minutes) once per machine and kept in the cache.
$(MINIO):
	GOBIN=$(CACHE)/bin $(GO) install github.com/minio/minio@$(MINIO_VERSION)

# `loader demo` skips a sample dataset it already wrote completely.
demo: build venv
	$(BIN) demo --out $(SAMPLE)
	$(PY) examples/demo.py --data $(SAMPLE)

test: build venv minio
	$(GO) vet ./...
	$(MAKE) test-go test-python

# The codecs again without cgo (the Go decoders, as a machine without a C
# compiler builds them), and the pure-Go loader build.
test-go:
	$(GO) test -count=1 -timeout 30m ./...
	CGO_ENABLED=0 $(GO) test -count=1 ./codecs/
	CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/loader

test-python:
	$(PY) -m pytest -q python/tests

# Each fuzz target for a while; `make test` already runs their seed corpora.
FUZZTIME ?= 60s
fuzz:
	for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    $(GO) test $$pkg -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME); \
	  done; \
	done

# The benchmarks (not part of `make test`): the crop workloads against
# zarr-python + xarray and tensorstore and the hardware limits, with the
# stats job against xarray + dask (writes bench/RESULTS.md); decode speed
# against numcodecs; the I/O backends against fio and boto3.
bench: bench-readers bench-codecs bench-io

bench-readers: build venv fio
	bash bench/ocf/setup.sh
	$(PY) bench/run.py
	$(PY) bench/delivery.py && $(PY) bench/first_batch.py

bench-codecs: venv
	$(PY) bench/codecs/compare.py

bench-io: build venv minio fio
	bash bench/io/run.sh

# On a machine with an NVIDIA GPU (and torch built for it): the workloads
# into CUDA tensors, ours next to tensorstore (writes bench/GPU_RESULTS.md).
bench-gpu: build venv
	$(PY) bench/gpu.py

fio:
	command -v fio >/dev/null || { apt-get update -qq && apt-get install -y -qq fio; }

clean:
	rm -rf bin $(SAMPLE)
