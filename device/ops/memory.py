"""Keep the gate's resident memory flat (glibc): large buffers (camera frames, GrabCut and
Gabor maps, onnxruntime outputs) go to mmap and back to the OS when freed, instead of
raising the heap's high-water mark, and worker threads share few malloc arenas. The gallery
dominates the budget (216 MB at 10,000 users x 3 templates); this keeps the rest from growing
with every presentation. A no-op off glibc.

The mmap threshold is 2 MiB, not lower: every buffer above it is mapped afresh and its pages
faulted in at each use, and the onnxruntime sessions run without an arena, so their
intermediate tensors (up to ~16 MB a run for the segmentation network) come and go through
malloc at every run. At 256 KiB a 3-view presentation took ~38,000 page faults and ~50 ms of
system CPU (179 ms CPU, peak RSS 249 MB at 10,000 users); at 2 MiB 139 ms CPU and 274 MB; at
8 MiB 307 MB, over the 300 MB budget (``palmgate bench --users 10000 --views 3``, 2026-12-06,
docs/results.md "Gate latency")."""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8


def tune_malloc(mmap_threshold: int = 2 * 1024 * 1024, arenas: int = 2) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1     # also stops the dynamic raise
    ok &= mallopt(M_TRIM_THRESHOLD, 4 * mmap_threshold) == 1
    ok &= mallopt(M_ARENA_MAX, arenas) == 1
    return bool(ok)


def trim() -> None:
    """Return free heap pages to the OS (after enrolment, after a gallery reload)."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
