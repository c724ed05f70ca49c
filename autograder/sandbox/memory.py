"""Give freed heap memory back to the operating system between calls."""

from __future__ import annotations

import ctypes
import ctypes.util

try:
    _malloc_trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
    _malloc_trim = None


def release_free_memory() -> None:
    """glibc keeps what a forward pass freed (activations, logits: large blocks served
    from its arenas once its mmap threshold has adapted) for reuse; between calls that is
    memory no one uses but the whole grading tree is charged for. `malloc_trim` returns it."""
    if _malloc_trim is not None:
        _malloc_trim(0)
