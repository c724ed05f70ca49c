"""Which grader graded: the checkout's git commit (when there is one) and a digest of
every file that decides a grade, so two runs can be told apart even without git (a
Gradescope bundle) or with uncommitted edits. Merging shards refuses results graded by
different graders (`sharding.merge`)."""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path

from .assignment import REPO_ROOT, Assignment

# What decides a grade: the engine (and its hidden suites), plus each assignment's own
# suite, reference and student-side loader (which may live outside the checkout).
_ENGINE_SUFFIXES = (".py", ".toml", ".ini")


def _files(suite_dir: Path, reference: Path, student_dir: Path, submission_file: str) -> list[Path]:
    def code(folder: Path) -> list[Path]:
        return [p for p in folder.rglob("*") if p.suffix in _ENGINE_SUFFIXES and "__pycache__" not in p.parts]

    student_side = [p for p in student_dir.glob("*.py") if p.name != submission_file]
    return sorted({p.resolve() for p in [*code(REPO_ROOT / "autograder"), *code(suite_dir), *student_side, reference]
                   if p.is_file()})


def _commit() -> str | None:
    try:
        answer = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return answer.stdout.strip() or None if answer.returncode == 0 else None


@functools.lru_cache(maxsize=None)
def _version(*where) -> tuple[str | None, str]:
    digest = hashlib.sha256()
    for path in _files(*where):
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return _commit(), digest.hexdigest()[:16]


def grader_version(assignment: Assignment) -> dict:
    """{"commit": git HEAD or None, "digest": of the files that decide this assignment's grades}."""
    commit, digest = _version(Path(assignment.suite_dir), Path(assignment.reference_path), Path(assignment.student_dir),
                              assignment.submission_file)
    return {"commit": commit, "digest": digest}


@functools.lru_cache(maxsize=None)
def _suite_digest(suite_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in suite_dir.rglob("*.py") if "__pycache__" not in p.parts):
        digest.update(path.relative_to(suite_dir).as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def suite_digest(assignment: Assignment) -> str:
    """A digest of the assignment's hidden suite alone (its .py files)."""
    return _suite_digest(Path(assignment.suite_dir).resolve())
