"""Assignments as data: what the engine needs to know about one graded assignment.

An assignment is one folder of the hidden suite holding an ``assignment.toml``
(``autograder/suites/<name>/assignment.toml`` for the course's own; any folder for one
of your own, given as ``--assignment PATH``)::

    name = "basic_prompting"
    title = "Basic prompting: softmax, decoding loops, stop sequences"
    submission = "decoding.py"                  # the one file students submit
    student_folder = "../../../assignments/basic_prompting"   # what students get
    reference = "../../../solutions/basic_prompting/decoding.py"
    helpers = ["softmax", "temperature_distribution"]          # see `swapped_helpers`

    [points]                                    # in the order the assignment introduces them
    softmax = 15
    greedy_decode = 15

Paths are relative to the ``assignment.toml``. The hidden suite is the folder itself
(its ``test_*.py``, with ``grades`` markers naming these functions). The engine takes an
`Assignment` as a value everywhere (grading, sandbox, reference store, batch, reports,
nbgrader, Gradescope, the command line); nothing in it names an assignment.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent
SUITES_DIR = Path(__file__).resolve().parent / "suites"
DESCRIPTOR = "assignment.toml"
DEFAULT = "basic_prompting"  # what every command grades when no --assignment is given
# The course's model loader (shared by every assignment's student folder).
COURSE_MODEL_PATH = REPO_ROOT / "assignments" / DEFAULT / "course_model.py"
# Folders a student's worker must not see (where the OS allows hiding them): the whole
# checkout (the reference, the hidden suites, their history in .git, caches, outputs);
# a Python environment inside it stays readable (see `isolation._hide`).
HIDDEN_FROM_STUDENTS = (REPO_ROOT,)

# The command line's exit status when grading ran but the grader itself failed somewhere
# (`grade`, `grade-all`): those grades are not final.
GRADER_ERROR_EXIT = 3


class AssignmentError(ValueError):
    """An assignment that cannot be found or whose assignment.toml is wrong."""


@dataclass(frozen=True)
class Assignment:
    name: str
    title: str
    submission_file: str  # e.g. "decoding.py"
    student_dir: Path  # what students get: skeleton, notebook, public tests
    reference_path: Path  # the reference solution (never released)
    suite_dir: Path  # the hidden suite, holding assignment.toml
    points: dict  # function -> points, in the order the assignment introduces them
    helpers: tuple[str, ...] = ()  # pure functions answered by the reference (see swapped_helpers)

    @property
    def contract(self) -> tuple[str, ...]:
        """The functions students implement, in the order the assignment introduces them."""
        return tuple(self.points)

    @property
    def total_points(self) -> float:
        return float(sum(self.points.values()))

    @property
    def module_name(self) -> str:
        """The name the submission is imported as (its file name without .py)."""
        return Path(self.submission_file).stem

    @property
    def skeleton_path(self) -> Path:
        return self.student_dir / self.submission_file

    def swapped_helpers(self, function: str) -> tuple[str, ...]:
        """The helpers answered by the reference while `function` is graded.

        A function that is not a helper gets all of them. A helper gets only those
        introduced before it (temperature may lean on softmax), never one after it:
        otherwise a `softmax` that just calls `temperature_distribution` would be graded
        on the reference's answer, and two helpers that call each other would both score
        without either being written."""
        if function not in self.helpers:
            return self.helpers
        return self.helpers[: self.helpers.index(function)]

    def load_reference(self) -> ModuleType:
        return load_module(self.reference_path, f"{self.name}_reference")


def from_descriptor(path: str | Path) -> Assignment:
    """The assignment described by `path` (an assignment.toml, or the folder holding one)."""
    path = Path(path).expanduser().resolve()
    if path.is_dir():
        path = path / DESCRIPTOR
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AssignmentError(f"{path}: no such file (an assignment is a folder with an {DESCRIPTOR})") from None
    except tomllib.TOMLDecodeError as error:
        raise AssignmentError(f"{path}: not valid TOML: {error}") from None
    where = path.parent

    def need(key: str, kind: type):
        value = data.get(key)
        if not isinstance(value, kind):
            raise AssignmentError(f"{path}: `{key}` must be a {kind.__name__}, got {value!r}")
        return value

    points = need("points", dict)
    if not points or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                             for v in points.values()):
        raise AssignmentError(f"{path}: [points] must give each function a positive number of points, got {points!r}")
    helpers = tuple(data.get("helpers", ()))
    unknown = [h for h in helpers if h not in points]
    if unknown:
        raise AssignmentError(f"{path}: helpers {unknown} are not functions in [points] ({', '.join(points)})")
    assignment = Assignment(
        name=need("name", str), title=str(data.get("title", data["name"])), submission_file=need("submission", str),
        student_dir=(where / need("student_folder", str)).resolve(), reference_path=(where / need("reference", str)).resolve(),
        suite_dir=where, points=dict(points), helpers=helpers)
    if Path(assignment.submission_file).name != assignment.submission_file or not assignment.submission_file.endswith(".py"):
        raise AssignmentError(f"{path}: `submission` must be a file name ending in .py, got {assignment.submission_file!r}")
    for what, file in (("reference", assignment.reference_path), ("skeleton", assignment.skeleton_path)):
        if not file.is_file():
            raise AssignmentError(f"{path}: the {what} {file} does not exist")
    return assignment


def available() -> list[str]:
    """The course's own assignments (folders under autograder/suites with an assignment.toml)."""
    return sorted(p.parent.name for p in SUITES_DIR.glob(f"*/{DESCRIPTOR}"))


def load(name_or_path: str | Path | Assignment | None = None) -> Assignment:
    """An assignment by name (one of `available()`), by folder/descriptor path, or the
    default one; an `Assignment` is returned as it is."""
    if isinstance(name_or_path, Assignment):
        return name_or_path
    name = str(name_or_path or DEFAULT)
    if (SUITES_DIR / name / DESCRIPTOR).is_file() and "/" not in name:
        return _load_named(name)
    if "/" in name or name.endswith(".toml") or Path(name).is_dir():
        return from_descriptor(name)
    raise AssignmentError(f"no assignment called {name!r}; the course has: {', '.join(available()) or 'none'} "
                          f"(or give the folder of your own assignment.toml)")


_named: dict[str, Assignment] = {}


def _load_named(name: str) -> Assignment:
    if name not in _named:
        _named[name] = from_descriptor(SUITES_DIR / name)
    return _named[name]


def load_module(path: str | Path, name: str) -> ModuleType:
    """Import the Python file at `path` as a fresh module called `name`."""
    spec = importlib.util.spec_from_file_location(name, str(path))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
