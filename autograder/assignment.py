"""Where the assignment's files live, and the contract every submission must meet."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "basic_prompting"
SUBMISSION_FILE = "decoding.py"
SKELETON_PATH = REPO_ROOT / "assignments" / ASSIGNMENT / SUBMISSION_FILE
REFERENCE_PATH = REPO_ROOT / "solutions" / ASSIGNMENT / SUBMISSION_FILE
COURSE_MODEL_PATH = SKELETON_PATH.parent / "course_model.py"
# Folders a student's worker must not see (where the OS allows hiding them): the whole
# checkout (the reference, the hidden suites, their history in .git, caches, outputs);
# a Python environment inside it stays readable (see `isolation._hide`).
HIDDEN_FROM_STUDENTS = (REPO_ROOT,)

# The command line's exit status when grading ran but the grader itself failed somewhere
# (`grade`, `grade-all`): those grades are not final.
GRADER_ERROR_EXIT = 3

# The functions students implement, in the order the assignment introduces them.
CONTRACT = (
    "softmax",
    "temperature_distribution",
    "top_p_filter",
    "greedy_decode",
    "sample_decode",
    "truncate_at_stop",
    "generate_text",
)
# Pure functions (no model): when another function is graded, the student's versions
# of these are swapped for the reference's, so one bug costs points only once.
HELPERS = ("softmax", "temperature_distribution", "top_p_filter", "truncate_at_stop")


def swapped_helpers(function: str) -> tuple[str, ...]:
    """The helpers answered by the reference while `function` is graded.

    A decoding function gets all of them. A helper gets only those introduced before it
    (temperature may lean on softmax), never one after it: otherwise a `softmax` that
    just calls `temperature_distribution` would be graded on the reference's answer, and
    two helpers that call each other would both score without either being written."""
    if function not in HELPERS:
        return HELPERS
    return HELPERS[: HELPERS.index(function)]


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


def load_reference() -> ModuleType:
    return load_module(REFERENCE_PATH, "basic_prompting_reference")
