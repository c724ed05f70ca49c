"""Reading a student's decoding.py safely, with the grader's (often root's) rights.

A submission folder is the student's: its ``decoding.py`` may be a symbolic link (to the
reference, to ``/etc/shadow``, to a FIFO whose ``open`` blocks forever), a folder, a
device, or a file of gigabytes. `read_submission_bytes` reads it only if it is a plain,
regular file of at most `MAX_SUBMISSION_BYTES`, opened without following a final symlink
and without blocking, and otherwise raises `SubmissionFileError` with a message meant
for the student (and the TA).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

# Far above any honest decoding.py (the reference is a few KB), far below a memory problem.
MAX_SUBMISSION_BYTES = 1 << 20


class SubmissionFileError(ValueError):
    """The submitted file cannot be graded as it is; the message says why, for the student."""


def file_kind(mode: int) -> str:
    """What a file of this mode is, in words (for a student's message)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _too_large(name: str, size: int, limit: int) -> SubmissionFileError:
    return SubmissionFileError(f"{name} is too large ({size:,} bytes; the limit is {limit:,} bytes). "
                               f"Submit only your code.")


def read_submission_bytes(path: str | os.PathLike, max_bytes: int = MAX_SUBMISSION_BYTES) -> bytes:
    """The bytes of the regular file at `path` (at most `max_bytes` of them).

    Raises `SubmissionFileError` (a `ValueError`) when `path` is missing, a symbolic
    link, a folder, a FIFO, a device or a socket, unreadable, or larger than
    `max_bytes`. Only the last component is checked for a symlink: the folders above it
    are the grader's (or the caller checks them)."""
    path = Path(path)
    name = path.name
    try:
        before = os.lstat(path)
    except FileNotFoundError:
        raise SubmissionFileError(f"no {name} in the submission") from None
    except OSError as error:
        raise SubmissionFileError(f"{name} cannot be read ({error.strerror or type(error).__name__})") from None
    if not stat.S_ISREG(before.st_mode):
        # Never opened: opening a FIFO or a device can block or have side effects.
        raise SubmissionFileError(f"{name} is {file_kind(before.st_mode)}, not a regular file: submit the file itself")
    if before.st_size > max_bytes:
        raise _too_large(name, before.st_size, max_bytes)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise SubmissionFileError(f"no {name} in the submission") from None
    except OSError as error:  # it was swapped for a symlink (ELOOP) or a FIFO nobody writes to (ENXIO)...
        reason = "it is a symbolic link" if error.errno == errno.ELOOP else (error.strerror or type(error).__name__)
        raise SubmissionFileError(f"{name} cannot be read ({reason})") from None
    try:
        info = os.fstat(fd)  # what was opened, not what the path named a moment ago
        if not stat.S_ISREG(info.st_mode):
            raise SubmissionFileError(f"{name} is {file_kind(info.st_mode)}, not a regular file: submit the file itself")
        if info.st_size > max_bytes:
            raise _too_large(name, info.st_size, max_bytes)
        chunks, total = [], 0
        while total <= max_bytes:  # the file may grow while it is read: never more than the cap + 1
            try:
                chunk = os.read(fd, min(1 << 16, max_bytes + 1 - total))
            except OSError as error:
                raise SubmissionFileError(f"{name} cannot be read ({error.strerror or type(error).__name__})") from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise _too_large(name, total, max_bytes)
        return b"".join(chunks)
    finally:
        os.close(fd)
