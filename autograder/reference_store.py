"""Everything the reference computed for one (model revision, reference code, library
versions): its answers to the hidden suite's calls and the model's next-token logits
after every token prefix it saw. Computed once, reused for the whole class and kept on
disk for the next batch.

The file lives under the model cache, readable by its owner only, and the folder is
covered up inside every student's sandbox: it holds the hidden tests' expected answers.
Student workers see rows only through `client.Worker`'s memo answers.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch

from . import assignment
from .models import cache_dir

FORMAT = 3  # 3: with the seconds each answer took (2: no seconds; 1: (value, forward passes))
Prefix = tuple[int, ...]


STORE_ENV_VAR = "AUTOGRADER_REFERENCE_STORE"


def store_dir() -> Path:
    """Where stores live: $AUTOGRADER_REFERENCE_STORE, else beside the model cache."""
    return Path(os.environ.get(STORE_ENV_VAR) or cache_dir() / "reference-answers")


def fingerprint(model_revision: str, versions: dict) -> str:
    """What the stored values depend on; any change starts a fresh store."""
    reference = hashlib.sha256(assignment.REFERENCE_PATH.read_bytes()).hexdigest()
    key = [FORMAT, model_revision, reference, versions.get("torch"), versions.get("transformers")]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:20]


class ReferenceStore:
    """Reference answers by call key, logits rows by token prefix; `save` persists them."""

    def __init__(self, path: Path | None):
        self.path = path
        self.answers: dict[str, object] = {}
        self.seconds: dict[str, float] = {}  # how long the reference took for each answer
        self.rows: dict[Prefix, torch.Tensor] = {}
        self._dirty = False
        if path is not None and path.exists():
            try:
                # mmap: the rows stay in the page cache, not in this process's own memory.
                saved = torch.load(path, mmap=True, weights_only=True)
                if saved.get("format") == FORMAT:
                    self.answers = dict(saved["answers"])
                    self.seconds = {str(k): float(v) for k, v in saved["seconds"].items()}
                    self.rows = {tuple(prefix): row for prefix, row in zip(saved["prefixes"], saved["rows"])}
            except Exception:  # noqa: BLE001 - a damaged store is only a slower batch
                self.answers, self.seconds, self.rows = {}, {}, {}

    def add_rows(self, prefixes, rows) -> None:
        for prefix, row in zip(prefixes, rows):
            prefix = tuple(int(i) for i in prefix)
            if prefix not in self.rows:
                self.rows[prefix] = row.detach().clone()  # its own storage: saved alone
                self._dirty = True

    def add_answer(self, key: str, value, seconds: float) -> None:
        self.answers[key] = value
        self.seconds[key] = float(seconds)
        self._dirty = True

    def row(self, prefix: Prefix) -> torch.Tensor | None:
        return self.rows.get(prefix)

    def logits(self, token_ids: list[int]) -> torch.Tensor | None:
        """Rows after every prefix of `token_ids` (shape (len, vocab)), if all are known."""
        rows = [self.rows.get(tuple(token_ids[: i + 1])) for i in range(len(token_ids))]
        return torch.stack(rows) if rows and all(r is not None for r in rows) else None

    def save(self) -> None:
        """Write atomically (readers see the old file or the new one), owner-only."""
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".partial-")
        try:
            os.fchmod(handle, 0o600)
            with os.fdopen(handle, "wb") as file:
                torch.save({"format": FORMAT, "answers": self.answers, "seconds": self.seconds, "prefixes": [list(p) for p in self.rows],
                            "rows": list(self.rows.values())}, file)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self._dirty = False
