"""One malloc arena for the process, set before anything starts threads.

glibc gives threads their own malloc arenas, whose heaps are 64 MiB at
most. The client receives batches of tens of MB in several threads at once
(gRPC's and its own), so each such arena grows a second heap for every batch
and unmaps it again once the batch is freed: every batch then costs a page
fault and a zeroed page per 4 KiB. With one arena the freed memory is
reused: receiving 72 MB batches on 2 streams fell from 1.1 to 0.4 CPU-s
per GB. glibc fixes an arena count when threads first
allocate, so this helps fully only if lsio_loader is imported before numpy,
pyarrow or torch start their thread pools (or with MALLOC_ARENA_MAX=1 in the
environment), and partly otherwise. LSIO_LOADER_MALLOC=system leaves malloc
alone.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_ARENA_MAX = -8


def limit_arenas() -> bool:
    """Asks glibc for a single arena; False where it cannot."""
    if os.environ.get("LSIO_LOADER_MALLOC", "") == "system" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(M_ARENA_MAX, 1) == 1
