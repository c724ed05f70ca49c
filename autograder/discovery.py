"""Which file of a student's folder is their submission: one rule for every entry point.

`grade`, `grade-all`, `nbgrader-autograde` and the Gradescope run all call
`find_submission_file(folder)`. The rule:

* The submission is **the one regular file named exactly** ``decoding.py`` anywhere in the
  folder (at the top or nested, e.g. ``sub/decoding.py`` from a zipped folder).
* **Never searched**: hidden folders (``.git``, ``.ipynb_checkpoints``, ...), ``__pycache__``,
  ``__MACOSX`` (a Mac's zip metadata), virtual environments (``venv``, ``site-packages``),
  folders passed as `exclude` (the grading output), anything deeper than `MAX_DEPTH`
  folders. Symbolic links are never followed, as folders or as files: a link named
  ``decoding.py`` is not accepted (it could point at the reference, a FIFO, a device).
* Otherwise there is **no submission**, and `Found.problem` says which case it is, lists
  what was found (at most `MAX_LISTED` names) and what to rename:

  - none: ``No decoding.py found; found: Decoding.py, notes.txt. Rename Decoding.py to
    decoding.py (names are case-sensitive).``
  - several: ``2 files named decoding.py: a/decoding.py, b/decoding.py — submit one``
    (``upload one`` on Gradescope).

  Near misses (another case, a browser's `` (1)`` suffix, an added ``.txt``, no ``.py``)
  are named in the message and never accepted.

The walk looks at no more than `MAX_ENTRIES` files and folders, so a huge folder cannot
stall a batch. Only the standard library is used: this runs before torch is imported.
"""

from __future__ import annotations

import os
import re
import stat
from collections import deque
from dataclasses import dataclass
from pathlib import Path

DEFAULT_NAME = "decoding.py"  # the default assignment's file; callers pass `Assignment.submission_file`
from .submission_file import file_kind

MAX_LISTED = 20  # names a message lists
MAX_ENTRIES = 10_000  # files and folders looked at in one folder tree
MAX_DEPTH = 8  # folders below the submission folder that are searched
MAX_NAME_CHARS = 100  # of one name in a message
# Folder names never searched (besides every name that starts with a dot).
SKIPPED_FOLDERS = frozenset({"__pycache__", "__MACOSX", "venv", "site-packages", "node_modules"})
NOTEBOOK_SUFFIX = ".ipynb"


@dataclass(frozen=True)
class Found:
    """What `find_submission_file` found: `path` (the submission), or None and a `problem`."""

    folder: Path
    path: Path | None
    problem: str | None = None  # why there is no submission (None when `path` is set)
    files: tuple[str, ...] = ()  # relative names of the files seen (at most MAX_LISTED), for messages
    candidates: tuple[str, ...] = ()  # relative paths of every regular decoding.py seen
    complete: bool = True  # False when the walk stopped at MAX_ENTRIES
    wanted: str = DEFAULT_NAME  # the file name that was looked for

    @property
    def relative(self) -> str | None:
        """The submission's path relative to `folder` (``decoding.py``, ``sub/decoding.py``)."""
        return self.path.relative_to(self.folder).as_posix() if self.path is not None else None

    @property
    def nested(self) -> bool:
        return self.path is not None and self.path.parent != self.folder


def show(name: str) -> str:
    """A file name as a message shows it: one line, printable, at most MAX_NAME_CHARS."""
    text = name.encode("utf-8", "backslashreplace").decode("utf-8")  # undecodable bytes (surrogateescape)
    text = re.sub(r"[\x00-\x1f\x7f\u2028\u2029]", lambda m: f"\\x{ord(m.group()):02x}", text)
    return text if len(text) <= MAX_NAME_CHARS else text[: MAX_NAME_CHARS - 3] + "..."


def _skipped(name: str) -> bool:
    return name.startswith(".") or name in SKIPPED_FOLDERS


# What a browser or a file manager appends to a second copy: " (1)", "-1", "_2", " copy", " - Copy".
_COPY_SUFFIX = re.compile(r"(\s*\(\d+\)|\s*-\s*copy(\s*\(\d+\))?|\s+copy(\s+\d+)?|_copy|-\d+|_\d+)$", re.IGNORECASE)
_ADDED_EXTENSIONS = (".txt", ".download", ".crdownload")


def near_miss(name: str, wanted: str = DEFAULT_NAME) -> str | None:
    """Why `name` (a file's own name, not a path) looks like a mistyped `wanted` (e.g.
    ``decoding.py``: another case, a copy suffix, an added extension, no ``.py``), or None."""
    if name == wanted:
        return None
    wanted_stem = wanted.removesuffix(".py")
    reasons = []
    text = name
    for extra in _ADDED_EXTENSIONS:
        if text.casefold().endswith(extra) and len(text) > len(extra):
            text = text[: -len(extra)]
            reasons.append(f"it ends in {name[len(text):]}")
    if text.casefold().endswith(".py.py"):
        text = text[:-3]
        reasons.append("it ends in .py.py")
    if text.casefold().endswith(".py"):
        stem, ending = text[:-3], text[-3:]
    elif text.casefold() == wanted_stem.casefold():
        stem, ending = text, ".py"
        reasons.append("it has no .py at the end")
    else:
        return None
    copy = _COPY_SUFFIX.search(stem)
    if copy and copy.start() > 0:
        reasons.append(f'the name has "{copy.group().strip()}" added, as browsers and file managers do to a second copy')
        stem = stem[: copy.start()]
    if stem.casefold() != wanted_stem.casefold():
        return None
    if stem != wanted_stem or ending != ".py":
        reasons.insert(0, "names are case-sensitive")
    return "; ".join(reasons) or None


def find_submission_file(folder: str | os.PathLike, *, exclude: tuple | list = (), upload: bool = False,
                         name: str = DEFAULT_NAME) -> Found:
    """The student's file called `name` (the assignment's ``submission_file``, e.g.
    ``decoding.py``) below `folder` by the module's rule, or why there is none.

    `exclude`: folders never searched (the grading output, when it lies inside). `upload`:
    word the messages for Gradescope (``upload one``) instead of ``submit one``. Never
    raises for anything in the folder (unreadable folders are skipped); a `folder` that is
    not a folder is a problem too."""
    folder = Path(folder)
    excluded = set()
    for path in exclude:
        try:
            excluded.add(os.path.realpath(path))
        except (OSError, ValueError):
            continue
    verb = "upload" if upload else "submit"
    try:
        top = os.lstat(folder)
    except OSError:
        return Found(folder, None, f"No {name} found: {show(str(folder))} does not exist.", wanted=name)
    if not stat.S_ISDIR(top.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(top.st_mode) else "not a folder"
        return Found(folder, None, f"No {name} found: {show(str(folder))} is {what}.", wanted=name)

    files: list[str] = []  # every file's relative name (for the listing; counted beyond MAX_LISTED)
    file_count = 0
    candidates: list[str] = []
    refused: list[tuple[str, str]] = []  # (relative path, what it is) of non-regular entries named decoding.py
    misses: list[tuple[str, str]] = []  # (relative path, why)
    notebooks: list[str] = []
    skipped: list[str] = []
    seen = 0
    complete = True
    pending = deque([(os.fspath(folder), "", 0)])  # breadth first: shallow names are listed first
    while pending and complete:
        here, prefix, depth = pending.popleft()
        try:
            with os.scandir(here) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > MAX_ENTRIES:
                complete = False
                break
            relative = prefix + entry.name
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError:
                continue
            if stat.S_ISDIR(mode):
                if _skipped(entry.name):
                    skipped.append(relative + "/")
                elif os.path.realpath(entry.path) in excluded:
                    continue
                elif depth + 1 <= MAX_DEPTH:
                    pending.append((entry.path, relative + "/", depth + 1))
                if entry.name == name:
                    refused.append((relative, "a folder"))
                continue
            file_count += 1
            if len(files) < MAX_LISTED:
                files.append(relative if stat.S_ISREG(mode) else f"{relative} ({file_kind(mode)})")
            if entry.name == name:
                if stat.S_ISREG(mode):
                    candidates.append(relative)
                else:
                    refused.append((relative, file_kind(mode)))
                continue
            why = near_miss(entry.name, name)
            if why:
                misses.append((relative, why))
            elif entry.name.casefold().endswith(NOTEBOOK_SUFFIX):
                notebooks.append(relative)

    def listing() -> str:
        if not file_count:
            return "no files"
        shown = ", ".join(show(name) for name in files)
        more = file_count - len(files)
        return shown + (f" and {more} more" if more > 0 else "") + (" (the search stopped there)" if not complete else "")

    found = dict(folder=folder, files=tuple(files), candidates=tuple(candidates), complete=complete, wanted=name)
    if len(candidates) == 1 and complete:
        return Found(path=folder / candidates[0], **found)
    if len(candidates) > 1:
        names = ", ".join(show(name) for name in candidates[:MAX_LISTED])
        more = f" and {len(candidates) - MAX_LISTED} more" if len(candidates) > MAX_LISTED else ""
        return Found(path=None, problem=f"{len(candidates)} files named {name}: {names}{more} — {verb} one", **found)
    if not complete:
        return Found(path=None, problem=(
            f"No single {name} found: the submission holds more than {MAX_ENTRIES:,} files and folders, too "
            f"many to search; found: {listing()}. {verb.capitalize()} {name} alone."), **found)
    if not file_count and not refused:
        where = " (hidden folders, caches and virtual environments are not searched: " + ", ".join(
            show(name) for name in skipped[:MAX_LISTED]) + ")" if skipped else ""
        return Found(path=None, problem=f"No {name} found: the submission holds no files{where}.", **found)
    hints = []
    for relative, what in refused[:5]:
        hints.append(f"{show(relative)} is {what}, which is never followed or read: {verb} the file itself."
                     if what == "a symbolic link" else f"{show(relative)} is {what}, not a regular file: {verb} the file itself.")
    for relative, why in misses[:5]:
        hints.append(f"Rename {show(relative)} to {name} ({why}).")
    if notebooks and not misses and not refused:
        hints.append(f"The notebook is not graded: put your code in a file named {name} and {verb} it.")
    if not hints:
        hints.append(f"Put your code in a file named exactly {name} and {verb} it.")
    return Found(path=None, problem=f"No {name} found; found: {listing()}. " + " ".join(hints), **found)


def folders_between(found: Found) -> list[Path]:
    """The folders from `found.folder` down to the submission's own folder (not the first)."""
    if found.path is None:
        return []
    parts = Path(found.relative).parts[:-1]
    return [found.folder.joinpath(*parts[: i + 1]) for i in range(len(parts))]


def still_plain(found: Found) -> bool:
    """Whether every folder between `found.folder` and the submission is still a real folder
    (no symbolic link was swapped in since the walk), checked right before it is read."""
    try:
        return all(stat.S_ISDIR(os.lstat(path).st_mode) for path in folders_between(found))
    except OSError:
        return False
