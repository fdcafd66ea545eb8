"""Launching `loader serve` next to the trainer, and connecting to a server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import pyarrow.flight as flight

__all__ = ["Server", "connect", "find_binary", "flight_location"]

# The line `loader serve` prints on stdout once it accepts connections.
_READY_PREFIX = "lsio-loader listening on "


# Where `make wheel` puts the binary inside the package.
_PACKAGED_BIN = Path(__file__).resolve().parent / "bin" / "loader"


def find_binary() -> str:
    """The `loader` binary: $LSIO_LOADER_BIN when set (an explicit choice
    wins, as environment overrides do elsewhere), else the one an installed
    wheel carries (built from the same commit as this client), else
    bin/loader of the source checkout this package lives in, else `loader`
    on PATH. Server(binary=...) overrides all."""
    env = os.environ.get("LSIO_LOADER_BIN")
    if env:
        if not os.access(env, os.X_OK):
            raise FileNotFoundError(f"LSIO_LOADER_BIN={env} is not an executable file")
        return env
    if os.access(_PACKAGED_BIN, os.X_OK):
        return str(_PACKAGED_BIN)
    repo_bin = Path(__file__).resolve().parents[2] / "bin" / "loader"
    if os.access(repo_bin, os.X_OK):
        return str(repo_bin)
    found = shutil.which("loader")
    if found:
        return found
    raise FileNotFoundError(
        "no lsio-loader binary: install the platform wheel (make wheel), set LSIO_LOADER_BIN, "
        "run `make build` in the checkout, or put `loader` on PATH (go install ./cmd/loader)"
    )


def flight_location(address: str) -> str:
    """A pyarrow.flight location for an lsio-loader address:
    unix:///path.sock, tcp://host:port or grpc://host:port."""
    if address.startswith("unix://"):
        return "grpc+unix://" + address[len("unix://"):]
    if address.startswith("tcp://"):
        return "grpc+tcp://" + address[len("tcp://"):]
    if address.startswith(("grpc://", "grpc+tcp://", "grpc+unix://", "grpc+tls://")):
        return address
    raise ValueError(f"address {address!r}: want unix:///path.sock, tcp://host:port or grpc://host:port")


# gRPC keepalive: a ping every 10 s that must be answered within 10 s, so
# that a frozen server (SIGSTOP, a hung host, a dropped network) fails the
# read within about 20 s instead of never. gRPC's own ping timeout (60 s by
# default) bounds the keepalive's, so it is set too. The server permits
# pings this often (flight/auth.go).
KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.ping_timeout_ms", 10_000),
]


class _BearerToken(flight.ClientMiddlewareFactory):
    """Sends "authorization: Bearer <token>" with every call."""

    def __init__(self, token: str) -> None:
        self._headers = {"authorization": f"Bearer {token}"}

    def start_call(self, info: flight.CallInfo) -> flight.ClientMiddleware:
        return _Headers(self._headers)


class _Headers(flight.ClientMiddleware):
    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def sending_headers(self) -> dict[str, str]:
        return self._headers


def connect(
    address: str,
    *,
    tls_root_certs: Union[bytes, str, os.PathLike, None] = None,
    token: str | None = None,
) -> flight.FlightClient:
    """A Flight client for a running server. tls_root_certs (PEM bytes, or
    a PEM file's path) makes the connection TLS, trusting those roots; token
    (default $LSIO_LOADER_TOKEN) is sent as a bearer token with every call."""
    location = flight_location(address)
    kwargs: dict = {"generic_options": KEEPALIVE_OPTIONS}
    if tls_root_certs is not None:
        if not isinstance(tls_root_certs, bytes):
            tls_root_certs = Path(tls_root_certs).read_bytes()
        kwargs["tls_root_certs"] = tls_root_certs
        location = location.replace("grpc+tcp://", "grpc+tls://", 1).replace("grpc://", "grpc+tls://", 1)
    token = token if token is not None else os.environ.get("LSIO_LOADER_TOKEN") or None
    if token is not None:
        kwargs["middleware"] = [_BearerToken(token)]
    return flight.FlightClient(location, **kwargs)


def _terminate(proc: subprocess.Popen, socket_dir: str | None, timeout: float) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if socket_dir is not None:
        shutil.rmtree(socket_dir, ignore_errors=True)
    return proc.returncode


class Server:
    """`loader serve` running as a child process on a private unix socket.

    Closed (SIGTERM, then wait) by close(), on leaving a `with` block, or at
    interpreter exit, whichever comes first. allow lists the only stores and
    files (directories, s3://bucket/prefix, https://host/prefix) its specs
    may name; None: whatever this user can read. metrics ("HOST:PORT")
    serves Prometheus text at http://HOST:PORT/metrics (`serve -metrics`).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        binary: str | None = None,
        log_level: str = "warn",
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        allow: Sequence[str] | None = None,
        metrics: str | None = None,
    ) -> None:
        self._socket_dir = None
        if address is None:
            self._socket_dir = tempfile.mkdtemp(prefix="lsio-loader-")
            address = "unix://" + os.path.join(self._socket_dir, "loader.sock")
        self.address = address
        self.location = flight_location(address)
        cmd = [binary or find_binary(), "serve", "--listen", address, "--log-level", log_level]
        for root in allow or ():
            cmd += ["--allow", root]
        if metrics is not None:
            cmd += ["--metrics", metrics]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self._finalizer = weakref.finalize(self, _terminate, self._proc, self._socket_dir, stop_timeout)
        try:
            self._wait_ready(startup_timeout)
        except BaseException:
            self.close()
            raise

    def _wait_ready(self, timeout: float) -> None:
        ready = threading.Event()
        assert self._proc.stdout is not None
        stdout = self._proc.stdout

        def drain() -> None:
            # Keep reading so that the server never blocks on a full pipe.
            for line in stdout:
                if line.startswith(_READY_PREFIX):
                    ready.set()
            ready.set()

        threading.Thread(target=drain, name="lsio-loader-stdout", daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                break
        if self._proc.poll() is not None:
            raise RuntimeError(f"loader serve exited with status {self._proc.returncode} before it was ready")
        if not ready.is_set():
            raise TimeoutError(f"loader serve not ready on {self.address} after {timeout:.0f}s")

    @property
    def pid(self) -> int:
        return self._proc.pid

    def connect(self) -> flight.FlightClient:
        return connect(self.address)

    def close(self) -> int | None:
        """Stops the server and returns its exit status (0 on a clean stop)."""
        return self._finalizer() if self._finalizer.alive else self._proc.returncode

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self._proc.poll() is None else f"exited {self._proc.returncode}"
        return f"Server({self.address!r}, pid={self._proc.pid}, {state})"
