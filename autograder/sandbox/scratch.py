"""The grader's temporary folders: named after the process that made them, so a later run
removes what a killed one (SIGKILL, a power cut) could not."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

PREFIX = "autograder-"
_OWNED = re.compile(rf"{PREFIX}(?:[a-z]+-)?(\d+)-")


def make(kind: str) -> Path:
    """A fresh folder ``autograder-<kind>-<our pid>-XXXX`` in the temporary directory."""
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-{os.getpid()}-"))


def remove_stale() -> list[str]:
    """Remove the folders of grader processes that are gone; returns their names."""
    root = Path(tempfile.gettempdir())
    removed = []
    for entry in root.glob(f"{PREFIX}*"):
        match = _OWNED.match(entry.name)
        try:
            if not match or not entry.is_dir() or entry.is_symlink() or entry.stat().st_uid != os.geteuid():
                continue
        except OSError:
            continue
        if alive(int(match.group(1))):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry.name)
    return removed


def alive(pid: int) -> bool:
    """Whether a process `pid` exists (one of another user's counts too)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
