"""Everything the reference computed for one (model revision, reference code, library
versions): its answers to the hidden suite's calls and the model's next-token logits
after every token prefix it saw. Computed once, reused for the whole class and kept on
disk for the next batch.

The file lives under the model cache, readable by its owner only, and the folder is
covered up inside every student's sandbox: it holds the hidden tests' expected answers.
Student workers see rows only through `client.Worker`'s memo answers.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections import ChainMap
import json
import os
import tempfile
from pathlib import Path

import torch

from .assignment import Assignment
from .models import cache_dir

FORMAT = 4  # 4: rows in a side file read on demand (3: rows as tensors; 2: no seconds; 1: (value, forward passes))
Prefix = tuple[int, ...]


STORE_ENV_VAR = "AUTOGRADER_REFERENCE_STORE"


def store_dir() -> Path:
    """Where stores live: $AUTOGRADER_REFERENCE_STORE, else beside the model cache."""
    return Path(os.environ.get(STORE_ENV_VAR) or cache_dir() / "reference-answers")


def fingerprint(assignment: Assignment, model_revision: str, versions: dict) -> str:
    """What the stored values depend on; any change starts a fresh store. Each assignment
    has its own (its name and its reference's bytes are in the key)."""
    reference = hashlib.sha256(assignment.reference_path.read_bytes()).hexdigest()
    key = [FORMAT, assignment.name, model_revision, reference, versions.get("torch"), versions.get("transformers")]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:20]


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"not a torch dtype: {name!r}")
    return dtype


class ReferenceStore:
    """Reference answers by call key, logits rows by token prefix; `save` persists them.

    Two files: `path` (the answers, their seconds and an index prefix -> row offset) and
    `path.with_suffix(".rows")`, the rows themselves, raw, appended to and never
    rewritten. A row is read with `pread` when it is asked for and dropped after use, so
    a class's worth of rows (about 0.6 MB each at Qwen3's vocabulary; ~1,100 for six
    variants) stays in the kernel's page cache, never in the grading process's memory:
    holding them, as mapped tensors, made the grader 0.45 GiB bigger than the model.

    Appending keeps every index ever saved valid, so a reader (another batch, a shard)
    that loaded an older index reads the right bytes while this one adds rows, and a
    crash between an append and `save` leaves only unreferenced bytes at the end.

    `shared`: a store to read and never write (a class's prepared store that many shards
    read at once, perhaps on a read-only mount): what it knows is answered from it, and
    only what it lacks is computed and kept in this one. `read_only`: this store itself
    is only read (`add_*` and `save` refuse)."""

    def __init__(self, path: Path | None, *, shared: Path | None = None, read_only: bool = False):
        self.path = path
        self.read_only = read_only
        self.shared = ReferenceStore(shared, read_only=True) if shared is not None else None
        self.answers: dict[str, object] = {}
        self.seconds: dict[str, float] = {}  # how long the reference took for each answer
        self.index: dict[Prefix, tuple[int, int, str]] = {}  # prefix -> (byte offset, elements, dtype)
        self._unsaved: dict[Prefix, torch.Tensor] = {}  # rows of a store without a file
        self._rows_file: int | None = None
        self._dirty = False
        if path is not None and path.exists():
            try:
                saved = torch.load(path, weights_only=True)
                if saved.get("format") == FORMAT:
                    rows_size = self.rows_path.stat().st_size
                    index = {tuple(prefix): (int(offset), int(count), str(dtype)) for prefix, offset, count, dtype in saved["index"]}
                    if all(offset + count * _dtype(dtype).itemsize <= rows_size for offset, count, dtype in index.values()):
                        self.answers = dict(saved["answers"])
                        self.seconds = {str(k): float(v) for k, v in saved["seconds"].items()}
                        self.index = index
            except Exception:  # noqa: BLE001 - a damaged store is only a slower batch
                self.answers, self.seconds, self.index = {}, {}, {}
        self._layer()

    def _layer(self) -> None:
        """Answers and seconds looked up here first, then in the shared store."""
        if self.shared is not None:
            self.answers = ChainMap(_own(self.answers), self.shared.answers)
            self.seconds = ChainMap(_own(self.seconds), self.shared.seconds)

    @property
    def rows_path(self) -> Path:
        return self.path.with_suffix(".rows")

    def __len__(self) -> int:
        return len(self.index) + len(self._unsaved) + (len(self.shared) if self.shared is not None else 0)

    def _knows(self, prefix: Prefix) -> bool:
        return prefix in self.index or prefix in self._unsaved or (self.shared is not None and self.shared._knows(prefix))

    def _open_rows(self) -> int:
        if self._rows_file is None:
            if self.read_only:
                self._rows_file = os.open(self.rows_path, os.O_RDONLY | os.O_CLOEXEC)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._rows_file = os.open(self.rows_path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        return self._rows_file

    def _refuse_if_read_only(self) -> None:
        if self.read_only:
            raise PermissionError(f"the reference store {self.path} is read-only here")

    def add_rows(self, prefixes, rows) -> None:
        self._refuse_if_read_only()
        for prefix, row in zip(prefixes, rows):
            prefix = tuple(int(i) for i in prefix)
            if self._knows(prefix):
                continue
            row = row.detach().contiguous()
            if self.path is None:
                self._unsaved[prefix] = row.clone()
                continue
            data = row.view(torch.uint8).numpy().tobytes()  # bit for bit, whatever the dtype
            handle = self._open_rows()
            fcntl.lockf(handle, fcntl.LOCK_EX)  # appends of two batches never interleave
            try:
                written = os.write(handle, data)
                end = os.lseek(handle, 0, os.SEEK_CUR)  # this descriptor's own position: after our bytes
            finally:
                fcntl.lockf(handle, fcntl.LOCK_UN)
            if written != len(data):
                raise OSError(f"short write to {self.rows_path}: {written} of {len(data)} bytes")
            self.index[prefix] = (end - len(data), row.numel(), str(row.dtype).removeprefix("torch."))
            self._dirty = True

    def add_answer(self, key: str, value, seconds: float) -> None:
        self._refuse_if_read_only()
        self.answers[key] = value
        self.seconds[key] = float(seconds)
        self._dirty = True

    def row(self, prefix: Prefix) -> torch.Tensor | None:
        if prefix in self._unsaved:
            return self._unsaved[prefix]
        where = self.index.get(prefix)
        if where is None:
            return self.shared.row(prefix) if self.shared is not None else None
        offset, count, dtype = where
        row = torch.empty(count, dtype=_dtype(dtype))
        view = memoryview(row.view(torch.uint8).numpy())
        if os.preadv(self._open_rows(), [view], offset) != len(view):
            return None  # the file was cut short under us: the reference computes it again
        return row

    def logits(self, token_ids: list[int]) -> torch.Tensor | None:
        """Rows after every prefix of `token_ids` (shape (len, vocab)), if all are known."""
        prefixes = [tuple(token_ids[: i + 1]) for i in range(len(token_ids))]
        if not prefixes or not all(self._knows(p) for p in prefixes):
            return None  # known before any row is read
        rows = [self.row(p) for p in prefixes]
        return torch.stack(rows) if all(r is not None for r in rows) else None

    def save(self) -> None:
        """Write the index atomically (readers see the old one or the new one), owner-only,
        merged with what another batch saved meanwhile. Only this store's own part: never
        what is read from the shared store."""
        if self.path is None or not self._dirty:
            return
        self._refuse_if_read_only()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self._open_rows()
        fcntl.lockf(handle, fcntl.LOCK_EX)  # one index writer at a time
        try:
            other = ReferenceStore(self.path)
            other._close()
            answers = other.answers | _own(self.answers)
            seconds = other.seconds | _own(self.seconds)
            index = other.index | self.index
            handle_out, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".partial-")
            try:
                os.fchmod(handle_out, 0o600)
                with os.fdopen(handle_out, "wb") as file:
                    torch.save({"format": FORMAT, "answers": answers, "seconds": seconds,
                                "index": [[list(p), *where] for p, where in index.items()]}, file)
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)
        self.answers, self.seconds, self.index = answers, seconds, index
        self._layer()
        self._dirty = False

    def _close(self) -> None:
        if self._rows_file is not None:
            os.close(self._rows_file)
            self._rows_file = None

    def __del__(self):
        self._close()


def _own(mapping) -> dict:
    """A store's own entries: the first layer of a `ChainMap` over the shared store."""
    return mapping.maps[0] if isinstance(mapping, ChainMap) else mapping
