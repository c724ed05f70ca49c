"""The nbgrader course: keep its source in sync with the assignments, and grade collected work.

Each assignment (`autograder.assignment`) is one nbgrader assignment of the same name;
the names below are `basic_prompting`'s (its file is decoding.py, so its points notebook
is ``decoding_points.ipynb``; `few_shot_prompting`'s is ``prompting_points.ipynb``).
Two commands (see docs/TA_GUIDE.md for the whole workflow):

* ``sync`` copies ``assignments/basic_prompting/`` (what students get) into the course's
  ``source/basic_prompting/`` and writes ``decoding_points.ipynb`` there: one locked nbgrader
  *task* cell per contract function, worth that function's points. nbgrader needs a
  notebook to release an assignment at all, and these cells are where the points for
  ``decoding.py`` live in its gradebook, so ``nbgrader export`` sums them.
  ``sync --check`` only reports drift (exit 1). The course's ``nbgrader_config.py`` runs
  the same sync (`sync_on_config_load`) whenever nbgrader loads it, so a fresh clone's
  ``nbgrader generate_assignment basic_prompting`` works with no step of ours first.
* ``autograde`` runs right after ``nbgrader collect``. It grades every collected
  ``submitted/<student>/basic_prompting/decoding.py`` with our `Grader` (never nbgrader's
  own autograde: that would put the source ``decoding.py`` back over the student's, let
  one dying kernel sink the batch, and show hidden tests in the feedback), then

  - writes each function's points as the ``manual_score`` of its task cell (a manual
    score survives a stray ``nbgrader autograde``, which rewrites only ``auto_score``) and
    what failed as the cell's ``auto_comment``, in Markdown without HTML (a TA's own
    comment still wins). A score a TA typed in formgrader (one that differs from what we
    wrote last, remembered in ``gradebook-record.json``) is kept across reruns and
    regrades and reported as an override; a student missing from the roster is added
    with a warning; the course's late-submission plugin sets the late penalty as
    nbgrader's autograde would,
  - fills ``autograded/<student>/basic_prompting/`` the way nbgrader's autograde would:
    the student's own files (notebooks with unknown nbgrader metadata stripped), the
    released points notebook with our full report appended as a last cell, and that
    report as a page of its own (``decoding_feedback.html``),
  - runs nbgrader's feedback generation for the graded students, so
    ``feedback/<student>/basic_prompting/`` holds ``decoding_points.html`` (score and
    comment per function, then the full report: what students get from
    ``nbgrader release_feedback`` / ``fetch_feedback``) and ``decoding_feedback.html``,
  - keeps the raw results (``results.json``, ``feedback.md``) for TAs in
    ``grading-output/basic_prompting/<student>/`` with a ``grades.csv`` (a partial run
    updates its students' rows and keeps the others).

  A submission whose ``decoding.py`` is unchanged since its last grading is not graded
  again (``--regrade`` forces it); its stored results are written to the gradebook again.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import sys
import tempfile
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

from . import models
from .assignment import DEFAULT as DEFAULT_ASSIGNMENT, REPO_ROOT, Assignment, available, load as load_assignment
from .sharding import shard_argument

OUTPUT_DIR = "grading-output"  # below the course root; TAs only
DEFAULT_COURSE = REPO_ROOT / "course"
# Clutter that never belongs in the course's source (nor in autograded/): caches, checkpoints,
# and a virtual environment someone made inside the assignment folder.
IGNORED = ("__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".DS_Store", ".venv", "venv",
           ".mypy_cache", ".ruff_cache", ".hypothesis")
MAX_FAILURES_PER_COMMENT = 3


def is_clutter(relative: str | Path) -> bool:
    """Whether a path (relative to an assignment folder) is clutter that is never copied."""
    return any(part in IGNORED or part.endswith(".pyc") for part in Path(relative).parts)


# Names in nbgrader's gradebook, from the submission file's name ("decoding" for decoding.py):
# the points notebook (decoding_points.ipynb), its task cells, the report page.
def points_notebook(assignment: Assignment) -> str:
    return f"{assignment.module_name}_points"


def feedback_html_name(assignment: Assignment) -> str:
    return f"{assignment.module_name}_feedback.html"


def cell_name(assignment: Assignment, function: str) -> str:
    """grade_id of the task cell that holds `function`'s points."""
    return f"{assignment.module_name}_{function}"


def exclude_overwriting() -> dict[str, list[str]]:
    """nbgrader's ``Autograde.exclude_overwriting`` for every assignment of the course."""
    return {name: [load_assignment(name).submission_file] for name in available()}


# -- sync -------------------------------------------------------------------------------


def points_notebook_text(assignment: Assignment) -> str:
    """The course's points notebook (decoding_points.ipynb for basic_prompting), byte for
    byte (deterministic: fixed cell ids)."""
    file = assignment.submission_file
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    intro = nbformat.v4.new_markdown_cell(
        f"# Points for `{file}`\n\n"
        "You do not need to edit or run this notebook. After the deadline, the course autograder "
        f"grades the `{file}` you submit with hidden tests that compare each function with a "
        "reference on fixed seeds. Each cell below is one function of the contract and the points "
        "it is worth. Each function is graded on its own: a bug costs points in one function only.\n\n"
        "Your feedback shows your score and what differed under each function; the whole report "
        "is at the end of this notebook's feedback page (your course staff release it; "
        "`nbgrader fetch_feedback` or the Assignments tab brings it to you)."
    )
    intro.id = "points-intro"
    intro.metadata["nbgrader"] = {"grade": False, "grade_id": f"{points_notebook(assignment)}_intro", "locked": True,
                                  "schema_version": 3, "solution": False, "task": False}
    nb.cells.append(intro)
    points = assignment.points
    for function in assignment.contract:
        cell = nbformat.v4.new_markdown_cell(
            f"### `{function}`: {points[function]} points\n\n"
            f"Graded from your `{file}` by the course autograder."
        )
        cell.id = f"points-{function.replace('_', '-')}"
        cell.metadata["nbgrader"] = {"grade": False, "grade_id": cell_name(assignment, function), "locked": True,
                                     "points": points[function], "schema_version": 3, "solution": False, "task": True}
        nb.cells.append(cell)
    return nbformat.writes(nb) + "\n"


def _shared_file(path: Path, assignment_dir: Path) -> bool:
    """A symbolic link in the assignment folder that stands for a file the course's
    assignments share (course_model.py): one to a regular file inside the checkout's
    assignments/ folder. Its content is copied; any other link is never followed."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return target.is_file() and (REPO_ROOT / "assignments").resolve() in target.parents and assignment_dir.resolve() != target.parent


def expected_source(assignment: Assignment) -> dict[str, bytes]:
    """{relative path: content} the course's source/<assignment>/ must hold."""
    assignment_dir = assignment.student_dir
    if not (assignment_dir / assignment.submission_file).is_file():
        raise RuntimeError(f"{assignment_dir} holds no {assignment.submission_file}: not the assignment's folder")
    files = {}
    for path in sorted(assignment_dir.rglob("*")):
        if is_clutter(path.relative_to(assignment_dir)):
            continue
        if (path.is_file() and not path.is_symlink()) or (path.is_symlink() and _shared_file(path, assignment_dir)):
            files[path.relative_to(assignment_dir).as_posix()] = path.read_bytes()
    name = f"{points_notebook(assignment)}.ipynb"
    if name in files:
        raise RuntimeError(f"{assignment_dir / name} clashes with the generated points notebook; rename it")
    files[name] = points_notebook_text(assignment).encode()
    return files


def source_dir(course: Path, assignment: Assignment) -> Path:
    return course / "source" / assignment.name


def sync_differences(course: Path, assignment: Assignment) -> list[str]:
    """What differs between the course's source and what `sync` would write (empty: in sync)."""
    target = source_dir(course, assignment)
    wanted = expected_source(assignment)
    have = {p.relative_to(target).as_posix(): p for p in target.rglob("*") if p.is_file() and not p.is_symlink()} if target.is_dir() else {}
    problems = [f"missing: {name}" for name in wanted if name not in have]
    problems += [f"differs: {name}" for name, path in have.items() if name in wanted and path.read_bytes() != wanted[name]]
    problems += [f"extra: {name}" for name in have if name not in wanted and not is_clutter(name)]
    problems += [f"symlink (nbgrader copies files, use sync): {p.relative_to(target)}" for p in target.rglob("*") if p.is_symlink()] if target.is_dir() else []
    return sorted(problems)


def sync(course: Path, assignment: Assignment) -> list[str]:
    """Make source/<assignment>/ an exact copy of the assignment plus the points notebook."""
    target = source_dir(course, assignment)
    wanted = expected_source(assignment)
    changed = sync_differences(course, assignment)
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(target.rglob("*"), reverse=True):
        name = path.relative_to(target).as_posix()
        if path.is_symlink() or (path.is_file() and name not in wanted):
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    for name, content in wanted.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_bytes() != content:
            _write_atomically(path, content)
    return changed


def _write_atomically(path: Path, content: bytes) -> None:
    """Write `path` so that a concurrent reader (another nbgrader command) never sees half a file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def sync_on_config_load(course: str | Path, assignments: list[Assignment] | None = None) -> list[str]:
    """What the course's nbgrader_config.py runs whenever nbgrader loads it: bring
    source/<name>/ of every assignment (default: all of the course's, `available`) up to
    date with its student folder (cheap when nothing changed, so every nbgrader command can
    afford it), and never fail the command.

    Silent when the sources were already up to date; otherwise one line per assignment on
    stderr (nbgrader's own log goes there too): what changed, or why it could not. Returns
    the changes made.
    """
    course = Path(course)
    changes: list[str] = []
    try:
        assignments = [load_assignment(name) for name in available()] if assignments is None else assignments
    except Exception as error:  # noqa: BLE001 - a config file must never break an nbgrader command
        print(f"[nbgrader_config.py] warning: the course's assignments could not be read ({type(error).__name__}: "
              f"{error})", file=sys.stderr)
        return []
    for assignment in assignments:
        try:
            if sync_differences(course, assignment) == []:
                continue
            existed = source_dir(course, assignment).is_dir()
            changed = sync(course, assignment)
        except Exception as error:  # noqa: BLE001 - a config file must never break an nbgrader command
            print(f"[nbgrader_config.py] warning: could not bring {source_dir(course, assignment)} up to date with "
                  f"{assignment.student_dir} ({type(error).__name__}: {error}); run `python -m autograder nbgrader-sync` "
                  f"to see why", file=sys.stderr)
            continue
        what = f"updated ({len(changed)} changes: " + "; ".join(changed[:4]) + ("; ..." if len(changed) > 4 else "") + ")" if existed else "created"
        released = (course / "release" / assignment.name).is_dir()
        hint = f"; an earlier release is stale: nbgrader generate_assignment {assignment.name} --force" if released else ""
        print(f"[nbgrader_config.py] source/{assignment.name}/ {what} from {assignment.student_dir}{hint}", file=sys.stderr)
        changes += changed
    return changes


# -- the nbgrader course ------------------------------------------------------------------


def load_coursedir(course: Path):
    """nbgrader's CourseDirectory, configured by the course's nbgrader_config.py."""
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    course = course.resolve()
    config = Config()
    if (course / "nbgrader_config.py").is_file():
        config.merge(PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config())
    config.CourseDirectory.root = str(course)
    return CourseDirectory(config=config), config


@dataclass
class Collected:
    student: str
    folder: Path


def collected(coursedir, assignment_id: str) -> list[Collected]:
    """Every submitted/<student>/<assignment>/ folder, in student order."""
    import glob

    pattern = coursedir.format_path(coursedir.submitted_directory, "*", assignment_id)
    regexp = coursedir.format_path(coursedir.submitted_directory, "(?P<student_id>[^/]+)", assignment_id, escape=True)
    found = []
    for folder in sorted(glob.glob(pattern)):
        match = re.fullmatch(regexp, folder)
        if match and Path(folder).is_dir():
            found.append(Collected(match.group("student_id"), Path(folder)))
    return found


def check_gradebook(gb, assignment: Assignment) -> None:
    """The gradebook must know the points notebook with the right points per function."""
    from nbgrader.api import MissingEntry

    assignment_id, notebook_name = assignment.name, points_notebook(assignment)
    known = sorted(a.name for a in gb.assignments)
    if assignment_id not in known:
        raise RuntimeError(f"nbgrader's gradebook has no assignment named {assignment_id!r}; it has: "
                           f"{', '.join(known) or 'none yet'} (check the spelling; a new assignment needs "
                           f"`nbgrader generate_assignment NAME` in the course folder first)")
    hint = (f"run `nbgrader generate_assignment {assignment_id} --force` in the course folder first "
            f"(it brings source/ up to date with the assignment before it generates the release)")
    try:
        notebook = gb.find_notebook(notebook_name, assignment_id)
    except MissingEntry:
        raise RuntimeError(f"nbgrader's gradebook has no notebook {notebook_name} in {assignment_id}: {hint}") from None
    cells = {cell.name: cell.max_score for cell in notebook.task_cells}
    points = assignment.points
    wrong = [f for f in points if cells.get(cell_name(assignment, f)) != points[f]]
    if wrong:
        raise RuntimeError(f"the gradebook's points for {', '.join(wrong)} differ from the grader's: {hint}")


def _function_comment(tests: list[dict], function: str) -> str:
    """The task cell's comment: what failed in `function`, as Markdown without any HTML.

    formgrader shows the comment as typed text (and a TA who edits it saves what they
    see); nbgrader's feedback renders it as Markdown that passes raw HTML through. So the
    test names are backslash-escaped text, and what a test printed (which may hold
    anything a student's code returned) is a fenced code block whose fence is longer
    than any run of backticks in it: shown verbatim, never as markup, and outside the
    reach of the page's MathJax (which skips code)."""
    from . import report

    mine = [t for t in tests if t["tags"][:1] == [function]]
    failing = [t for t in mine if t["status"] != "passed"]
    if not failing:
        return "All tests passed."
    by_output: dict[str, list[dict]] = {}
    for test in failing:
        by_output.setdefault(test["output"], []).append(test)
    parts = [f"{len(failing)} of {len(mine)} tests failed."]
    for output, group in list(by_output.items())[:MAX_FAILURES_PER_COMMENT]:
        names = ", ".join(f"**{report.md_inline(t['name'].removeprefix(f'{function}: '))}**" for t in group[:3])
        more = f" and {len(group) - 3} more" if len(group) > 3 else ""
        points = sum(t["max_score"] for t in group) - sum(t["score"] for t in group)
        parts.append(f"{names}{more} (-{points:.2f} points):\n\n" + "\n".join(report.md_code_block(str(output or ""))))
    if len(by_output) > MAX_FAILURES_PER_COMMENT:
        parts.append(f"... and {len(by_output) - MAX_FAILURES_PER_COMMENT} other failures: see the full report below.")
    return "\n\n".join(parts)


def function_scores(results: dict, points: dict) -> dict[str, float]:
    return {f: round(sum(t["score"] for t in results["tests"] if t["tags"][:1] == [f]), 4) for f in points}


# What the autograder last wrote into the gradebook, per student (beside results.json): a
# manual score that differs from it was typed by a TA (formgrader) and is kept.
RECORD_FILE = "gradebook-record.json"
SAME_SCORE = 1e-6  # scores closer than this are the same (they are stored rounded to 4 places)


def _same(a, b) -> bool:
    return a is not None and b is not None and abs(float(a) - float(b)) <= SAME_SCORE


def _number_or_none(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def last_written(target: Path, assignment: Assignment) -> dict | None:
    """What the autograder last wrote into the gradebook for the student whose output
    folder is `target`: ``{cell: {"written": score or None, "autograder": score,
    "auto_comment": text}}``, from `RECORD_FILE`; else (output of an earlier version of
    this command, which wrote results.json's scores unconditionally) from results.json.
    None when neither says (never graded, or the output folder was removed)."""
    import json

    try:
        data = json.loads((target / RECORD_FILE).read_text(encoding="utf-8"))
        cells = data["cells"]
        return {str(cell): {"written": _number_or_none(entry.get("written")),
                            "autograder": _number_or_none(entry.get("autograder")),
                            "auto_comment": entry.get("auto_comment") if isinstance(entry.get("auto_comment"), str) else None}
                for cell, entry in cells.items() if isinstance(entry, dict)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    try:
        results = json.loads((target / "results.json").read_text(encoding="utf-8"))
        if results["extra_data"].get("grader_error"):
            return None  # a failed grading wrote nothing into the gradebook
        return {cell_name(assignment, f): {"written": s, "autograder": s, "auto_comment": None}
                for f, s in function_scores(results, assignment.points).items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_record(target: Path, assignment_id: str, student: str, record: dict) -> None:
    """`RECORD_FILE`: owner-only, written atomically (see `report.write_json`)."""
    from . import report

    report.write_json(target / RECORD_FILE, {"assignment": assignment_id, "student": student, "cells": record})


@dataclass
class Override:
    """A manual score a TA typed (formgrader) that the autograder kept."""
    function: str
    kept: float  # the TA's score, in the gradebook
    autograder: float  # what the autograder gives now
    was: float | None  # what it gave the last time (None: unknown)


@dataclass
class GradebookUpdate:
    """What `record_in_gradebook` did, beyond writing the scores."""
    overrides: list[Override]
    messages: list[str]  # plain text, one line each: what the TA should know
    warnings: list[str]  # plain text: something the TA should fix (the roster)
    record: dict  # what to store as `RECORD_FILE`
    points: dict  # the assignment's points per function
    seconds_late: float = 0.0
    late_penalty: float | None = None  # the sum over the submission's notebooks; None: not late or no penalty

    def effective_scores(self, results: dict) -> dict[str, float]:
        """Per function, the score in the gradebook: the autograder's, or a kept override."""
        scores = function_scores(results, self.points)
        scores.update({o.function: o.kept for o in self.overrides})
        return scores


class LatePenalties:
    """The course's late-submission penalty, as nbgrader's autograde computes it.

    nbgrader's `AssignLatePenalties` preprocessor (configured by
    ``c.AssignLatePenalties.plugin_class``, default ``nbgrader.plugins.LateSubmissionPlugin``,
    whose ``LateSubmissionPlugin.penalty_method`` is 'none' or 'zero') calls the plugin's
    ``late_submission_penalty(student_id, score, total_seconds_late)`` for each notebook of
    a late submission and stores the result, kept between 0 and the notebook's score, as
    ``SubmittedNotebook.late_submission_penalty`` (``nbgrader export`` subtracts it). We do
    the same, with the plugin loaded the same way (the course folder is on ``sys.path``, as
    nbgrader's own commands put the folder they run in there), from the submission's
    recorded timestamp and the assignment's due date (plus any extension), so a regrade
    gives the same penalty."""

    def __init__(self, config, course: Path):
        from nbgrader.preprocessors import AssignLatePenalties

        added = str(course) not in sys.path
        if added:
            sys.path.insert(0, str(course))
        try:
            preprocessor = AssignLatePenalties(config=config)
            preprocessor.init_plugin()
        except Exception as error:  # noqa: BLE001 - a misconfigured plugin stops the command up front
            configured = config.get("AssignLatePenalties", {}).get("plugin_class", "nbgrader.plugins.LateSubmissionPlugin")
            raise RuntimeError(f"the course's late-submission plugin (c.AssignLatePenalties.plugin_class = {configured!r}) "
                               f"could not be loaded: {type(error).__name__}: {error}") from None
        finally:
            if added:
                sys.path.remove(str(course))
        self.plugin = preprocessor.plugin_inst
        self.name = f"{type(self.plugin).__module__}.{type(self.plugin).__qualname__}"

    def apply(self, gb, submission, student: str) -> tuple[float, float | None]:
        """Set each notebook's late penalty of `submission` (committed grades: its notebooks'
        scores are read from the database); returns (seconds late, total penalty or None)."""
        seconds_late = float(submission.total_seconds_late or 0)
        total = None
        for notebook in submission.notebooks:
            notebook.late_submission_penalty = None  # as nbgrader: reset, then set if late
            if seconds_late > 0:
                penalty = self.plugin.late_submission_penalty(student, notebook.score, seconds_late)
                if penalty is not None:
                    penalty = min(max(float(penalty), 0.0), float(notebook.score or 0.0))
                    notebook.late_submission_penalty = penalty
                    total = (total or 0.0) + penalty
        return seconds_late, total


def record_in_gradebook(gb, assignment: Assignment, student: str, results: dict, timestamp: str | None, *,
                        last: dict | None = None, regraded: bool = True, late: LatePenalties | None = None) -> GradebookUpdate:
    """The function scores as manual scores of the task cells; what failed as auto comments.

    `last` is what the autograder wrote the last time (`last_written`). A manual score in
    the gradebook that differs both from it and from the autograder's score now was typed
    by a TA: it is kept (an `Override`), and when this grading (`regraded`) gives another
    score than the last one, a message says so. A cleared score (None) is filled again.
    Only the ``auto_comment`` is ever written: a comment a TA typed is their
    ``manual_comment``, which nbgrader shows instead. A student who is not in the roster
    is added (without a name) with a warning. With `late`, the submission's late penalty
    is set as nbgrader's autograde would (see `LatePenalties`)."""
    from nbgrader.api import MissingEntry

    update = GradebookUpdate(overrides=[], messages=[], warnings=[], record={}, points=dict(assignment.points))
    assignment_id, notebook_name = assignment.name, points_notebook(assignment)
    try:
        gb.find_student(student)
    except MissingEntry:
        gb.add_student(student)
        update.warnings.append(
            f"{student} is not in the course's roster: added without a name. Add the name with "
            f"`nbgrader db student add {student} --first-name FIRST --last-name LAST` (in the course folder), "
            f"or import a roster: `nbgrader db student import students.csv`.")
    kwargs = {"timestamp": timestamp} if timestamp else {}
    submission = gb.update_or_create_submission(assignment_id, student, **kwargs)
    last = last or {}
    for function, score in function_scores(results, assignment.points).items():
        name = cell_name(assignment, function)
        before = last.get(name)
        grade = gb.find_grade(name, notebook_name, assignment_id, student)
        comment = gb.find_comment(name, notebook_name, assignment_id, student)
        new_comment = _function_comment(results["tests"], function)
        current = grade.manual_score
        written = before["written"] if before else None
        if current is not None and not _same(current, score) and before is not None and not _same(current, written):
            was = before.get("autograder")
            update.overrides.append(Override(function, float(current), score, was))
            if regraded and was is not None and not _same(was, score):
                update.messages.append(f"{student}: {function}: override kept ({current:g} set by hand); "
                                       f"the autograder now gives {score:g} (was {was:g})")
            else:
                update.messages.append(f"{student}: {function}: override kept ({current:g} set by hand; "
                                       f"the autograder gives {score:g})")
        else:
            if current is not None and not _same(current, score) and before is None:
                update.messages.append(f"{student}: {function}: replaced {current:g} in the gradebook by the autograder's "
                                       f"{score:g} (no record of what the autograder wrote there before: if that was "
                                       f"set by hand, set it again in formgrader)")
            grade.manual_score = score
            grade.needs_manual_grade = False
            written = score
        if comment.manual_comment is not None and before and before.get("auto_comment") not in (None, new_comment):
            update.messages.append(f"{student}: {function}: the comment typed in formgrader is kept (it is shown instead "
                                   f"of the autograder's, which changed)")
        comment.auto_comment = new_comment
        update.record[name] = {"written": written, "autograder": score, "auto_comment": new_comment}
    gb.db.commit()
    if late is not None:
        update.seconds_late, update.late_penalty = late.apply(gb, submission, student)
        gb.db.commit()
        if update.seconds_late > 0:
            penalty = f"late penalty {update.late_penalty:g}" if update.late_penalty else "no late penalty"
            update.messages.append(f"{student}: submitted {update.seconds_late / 3600:.2f} h after the due date: "
                                   f"{penalty} ({late.name})")
    return update


def feedback_fragment(markdown_text: str) -> str:
    """Our feedback.md as HTML. Raw HTML in it (a student's printed output, say) is escaped."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown_text)


def feedback_html(markdown_text: str, title: str) -> str:
    """Our feedback.md as a standalone HTML page."""
    from jinja2 import Environment
    from markupsafe import Markup

    template = Environment(autoescape=True).from_string(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{{ title }}</title>\n"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.4}"
        "pre{background:#f6f8fa;padding:.6em;overflow-x:auto}code{font-size:90%}</style></head>\n"
        "<body>\n{{ body }}\n</body></html>\n"
    )
    return template.render(title=title, body=Markup(feedback_fragment(markdown_text)))


def _report_cell_source(markdown_text: str, file: str) -> str:
    """A markdown cell's source that nbgrader's feedback template shows as our report.

    The template runs cell sources through a Markdown renderer that passes raw HTML, so
    the cell holds our already-escaped HTML as one HTML block: no blank line may end it
    early (an empty line inside <pre> becomes a line holding only an entity for a space).
    """
    body = feedback_fragment(markdown_text)
    body = "\n".join(line if line.strip() else "&#32;" for line in body.splitlines())
    return f"<div class=\"autograder-report\">\n<h2>Full report on {html.escape(file)}</h2>\n{body}\n</div>"


def _released_points_notebook(coursedir, assignment: Assignment) -> Path:
    name = f"{points_notebook(assignment)}.ipynb"
    released = Path(coursedir.format_path(coursedir.release_directory, ".", assignment.name)) / name
    if released.is_file():
        return released
    return Path(coursedir.format_path(coursedir.source_directory, ".", assignment.name)) / name


def fill_autograded(coursedir, gb, assignment: Assignment, item: Collected, feedback_markdown: str) -> Path:
    """autograded/<student>/<assignment>/ as nbgrader's autograde would leave it, but with the
    student's own files, and the released points notebook with our report appended, plus
    that report as a page of its own."""
    import nbformat

    assignment_id = assignment.name
    dest = Path(coursedir.format_path(coursedir.autograded_directory, item.student, assignment_id))
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    assignment_row = gb.find_assignment(assignment_id)
    known_notebooks = {nb.name: nb for nb in assignment_row.notebooks}
    for path in sorted(item.folder.rglob("*")):
        relative = path.relative_to(item.folder)
        if not path.is_file() or path.is_symlink() or is_clutter(relative):
            continue
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".ipynb" and len(relative.parts) == 1:
            notebook = known_notebooks.get(path.stem)
            if notebook is None or path.stem == points_notebook(assignment):
                continue  # a notebook the gradebook does not know would stop nbgrader's feedback
            try:
                nb = nbformat.read(str(path), as_version=4)
            except Exception:  # noqa: BLE001 - a broken notebook: fall back to the released one
                continue
            known_cells = {c.name for c in notebook.grade_cells} | {c.name for c in notebook.solution_cells} | {c.name for c in notebook.task_cells}
            for cell in nb.cells:
                meta = cell.get("metadata", {}).get("nbgrader")
                if meta and meta.get("grade_id") not in known_cells:
                    del cell.metadata["nbgrader"]
            nbformat.write(nb, str(target))
        else:
            shutil.copyfile(path, target)
    # notebooks the student did not hand in: the released version (so feedback still shows them)
    release = Path(coursedir.format_path(coursedir.release_directory, ".", assignment_id))
    for name in known_notebooks:
        if name != points_notebook(assignment) and not (dest / f"{name}.ipynb").exists() and (release / f"{name}.ipynb").is_file():
            shutil.copyfile(release / f"{name}.ipynb", dest / f"{name}.ipynb")
    points = nbformat.read(str(_released_points_notebook(coursedir, assignment)), as_version=4)
    report_cell = nbformat.v4.new_markdown_cell(_report_cell_source(feedback_markdown, assignment.submission_file))
    report_cell.id = "autograder-report"
    points.cells.append(report_cell)
    nbformat.write(points, str(dest / f"{points_notebook(assignment)}.ipynb"))
    (dest / feedback_html_name(assignment)).write_text(feedback_html(feedback_markdown, f"Feedback for {item.student}: {assignment_id}"), encoding="utf-8")
    return dest


def _timestamp(folder: Path) -> str | None:
    try:
        return (folder / "timestamp.txt").read_text().strip() or None
    except OSError:
        return None


def _override_note(overrides: list[Override], points: dict) -> str:
    """A paragraph above the report, for the student: which scores a TA set by hand."""
    if not overrides:
        return ""
    parts = [f"`{o.function}` is {o.kept:g} / {points[o.function]:g} (the tests below give {o.autograder:g})"
             for o in overrides]
    return "**Set by your course staff:** " + "; ".join(parts) + ".\n\n"


def _status(base: str, update: GradebookUpdate | None) -> str:
    """The outcome's and grades.csv's status: `base`, then kept overrides and a late penalty."""
    if update is None:
        return base
    notes = []
    if update.overrides:
        notes.append("override kept: " + ", ".join(f"{o.function} {o.kept:g} (autograder {o.autograder:g})" for o in update.overrides))
    if update.seconds_late > 0:
        notes.append(f"late {update.seconds_late / 3600:.2f} h, penalty {update.late_penalty or 0:g}")
    if any("not in the course's roster" in w for w in update.warnings):
        notes.append("not in the roster")
    return ", ".join([base, *notes])


def _read_grades_csv(path: Path) -> dict[str, dict]:
    """The rows of an existing grades.csv, by student (empty when there is none or it is unreadable)."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return {row["student"]: row for row in csv.DictReader(handle) if row.get("student")}
    except (OSError, ValueError, KeyError, csv.Error):
        return {}


def autograde(course: Path, *, assignment: "str | Path | Assignment | None" = None, students: list[str] | None = None,
              model: str | None = None, limits=None, regrade: bool = False, feedback: bool = True,
              reuse_reference: bool = True, console=None, grading: bool = True) -> dict[str, dict]:
    """Grade the collected submissions of `assignment` (a name, a folder with an
    assignment.toml, or an `Assignment`; default `assignment.DEFAULT`); returns
    {student: outcome}. nbgrader knows it by its name.

    An outcome holds ``score`` (the total now in the gradebook, before any late penalty;
    None when grading failed), ``autograder_score`` (the autograder's own total),
    ``status``, ``feedback`` (whether nbgrader's feedback was generated), ``overrides``
    (manual scores a TA set that were kept, `Override`), ``messages`` and ``warnings``
    (lines printed for the TA), ``seconds_late`` and ``late_penalty``. One failing
    submission never stops the rest. grades.csv keeps the rows of students this run did
    not grade (``--student``, an interrupted run). `grading` False (`merge_into_gradebook`):
    only results already in the output folder are used; a student without usable ones is
    a grader error, and no model is loaded.
    """
    from nbgrader.api import Gradebook
    from rich.console import Console
    from rich.markup import escape
    from sqlalchemy.exc import SAWarning

    from . import report
    from .batch import (record_grader_error, reusable_results, submission_digest, submission_folder, write_not_submitted,
                        write_reports)
    from .discovery import find_submission_file

    console = console or Console()
    assignment = load_assignment(assignment)
    assignment_id, points = assignment.name, assignment.points
    course = course.resolve()
    coursedir, config = load_coursedir(course)
    late = LatePenalties(config, course)
    items = collected(coursedir, assignment_id)
    if students:
        unknown = sorted(set(students) - {i.student for i in items})
        if unknown:
            raise RuntimeError(f"nothing collected for {', '.join(unknown)} in {coursedir.submitted_directory}/ (run `nbgrader collect` first)")
        items = [i for i in items if i.student in students]
    out_root = course / OUTPUT_DIR / assignment_id
    model_name = models.resolve_model_name(model)
    outcomes: dict[str, dict] = {}
    # nbgrader's own add_submission trips SQLAlchemy's autoflush warnings; they are noise here.
    with warnings.catch_warnings(), Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        warnings.simplefilter("ignore", SAWarning)
        check_gradebook(gb, assignment)
        grader = None
        interrupted = False
        try:
            for item in items:
                target = out_root / item.student
                # the one submission file, at any depth (as grade-all, Gradescope)
                found = find_submission_file(item.folder, name=assignment.submission_file)
                digest = submission_digest(found)
                results = None if regrade else reusable_results(target, digest, model_name, points)
                reused = results is not None
                last = last_written(target, assignment)  # read before a new grading replaces results.json
                try:
                    if found.path is None and not reused:  # not submitted: nothing to grade, no model needed
                        results = write_not_submitted(target, item.student, found, {"model": {"name": model_name}}, points,
                                                      digest)
                    elif not reused and not grading:
                        raise NotGradedByShard(f"no usable results from its shard for {item.student} (a grader error "
                                               f"there, or the submission changed after the shard graded it): rerun "
                                               f"that shard, then merge again")
                    elif not reused:
                        if grader is None:
                            from .grading import Grader

                            with console.status(f"Loading {model_name} ..."):
                                grader = Grader(model_name, limits, reuse_reference=reuse_reference, assignment=assignment)
                            if hasattr(grader, "hidden_paths"):  # the course: others' code, grades, feedback
                                grader.hidden_paths.append(course)
                        with console.status(f"Grading {item.student} ..."):
                            result = grader.grade(submission_folder(found), student=item.student)
                        results = write_reports(target, result, digest)
                    markdown_text = (target / "feedback.md").read_text(encoding="utf-8")
                    update = record_in_gradebook(gb, assignment, item.student, results, _timestamp(item.folder),
                                                 last=last, regraded=not reused, late=late)
                    write_record(target, assignment_id, item.student, update.record)
                    fill_autograded(coursedir, gb, assignment, item, _override_note(update.overrides, points) + markdown_text)
                except Exception as error:  # noqa: BLE001 - one bad submission never stops the batch
                    from .models import ModelUnavailableError

                    if isinstance(error, ModelUnavailableError):
                        raise
                    gb.db.rollback()
                    # results.json (0, the error for the TA), feedback.md, grader-error.txt; the
                    # gradebook is left alone, and a rerun grades this student again
                    record_grader_error(target, item.student, error, traceback.format_exc(),
                                        grader.metadata() if grader is not None else {}, console, points)
                    outcomes[item.student] = {"score": None, "status": f"grader error: {type(error).__name__}", "feedback": False}
                    continue
                for warning in update.warnings:
                    console.print(f"[yellow]warning: {escape(report.clean_text(warning))}[/]")
                for message in update.messages:
                    console.print(f"[yellow]{escape(report.clean_text(message))}[/]")
                own = round(sum(function_scores(results, points).values()), 4)
                score = round(sum(update.effective_scores(results).values()), 4)
                base = f"not submitted: {found.problem}" if found.path is None else "unchanged, not regraded" if reused else "graded"
                outcomes[item.student] = {"score": score, "autograder_score": own, "status": _status(base, update), "feedback": False,
                                          "results": results, "overrides": update.overrides, "messages": update.messages,
                                          "warnings": update.warnings, "seconds_late": update.seconds_late,
                                          "late_penalty": update.late_penalty, "update": update}
                shown = f"{score:g} / {assignment.total_points:g}"
                if update.overrides:
                    shown += f" (the autograder's {own:g}; kept by hand: {', '.join(o.function for o in update.overrides)})"
                if update.late_penalty:
                    shown += f", late penalty {update.late_penalty:g}"
                if found.path is None:
                    shown = f"not submitted: {escape(report.clean_text(found.problem))}"
                console.print(f"{escape(report.clean_text(item.student))}: {shown}" + (" (unchanged, not regraded)" if reused else ""))
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM: the student being graded is not recorded (nor put in the
            # gradebook); those before are, and a rerun goes on from here.
            gb.db.rollback()
            interrupted = True
        finally:
            if grader is not None:
                grader.close()
    # grades.csv: this run's rows replace the same students' rows; the others stay
    rows = _read_grades_csv(out_root / "grades.csv")
    for student, outcome in outcomes.items():
        results = outcome.get("results")
        if results and outcome["score"] is not None and not results.get("extra_data", {}).get("not_submitted"):
            row = report.grades_row(results, points)
            row["status"] = _status(row["status"], outcome["update"])  # "graded" (or a grader error), then the notes
            for override in outcome["overrides"]:
                row[override.function] = round(override.kept, 2)
            row["total"] = outcome["score"]
        else:
            row = {"student": student, "total": "", "status": outcome["status"]}
        rows[student] = row
    if outcomes:
        report.write_grades_csv(out_root / "grades.csv", list(rows.values()), points)
    if interrupted:
        raise KeyboardInterrupt
    if feedback:
        generate_feedback(config, assignment_id, [s for s, o in outcomes.items() if o["score"] is not None], outcomes, console)
    return outcomes


class NotGradedByShard(RuntimeError):
    """A student that the shards being merged left without usable results."""


def grade_shard(course: Path, shard, out: Path, *, assignment: "str | Path | Assignment | None" = None,
                model: str | None = None, limits=None, regrade: bool = False, reuse_reference: bool = True,
                console=None):
    """One shard of ``nbgrader-autograde``: its collected students graded into `out` (as
    ``grade-all --shard`` does), the gradebook untouched: only `merge_into_gradebook`
    writes it, so no two nodes ever write the SQLite file."""
    import time

    from rich.console import Console

    from .batch import Submission, grade_all
    from .grading import Grader
    from .sharding import SHARD_STORE

    console = console or Console()
    assignment = load_assignment(assignment)
    coursedir, _ = load_coursedir(course.resolve())
    items = collected(coursedir, assignment.name)
    submissions = [Submission(i.student, i.folder, (), assignment.submission_file) for i in items]
    model_name = models.resolve_model_name(model)
    started = time.monotonic()
    with console.status(f"Loading {model_name} ..."):
        grader = Grader(model_name, limits, reuse_reference=reuse_reference, assignment=assignment,
                        own_store=Path(out) / SHARD_STORE if reuse_reference else None)
    with grader:
        grader.hidden_paths.append(course.resolve())  # the course: others' code, grades, feedback
        console.print(grader.store_note)
        return grade_all(course, out, grader, regrade=regrade, console=console, shard=shard,
                         load_seconds=time.monotonic() - started, submissions=submissions)


def merge_into_gradebook(course: Path, shard_outputs: list[Path], *, console=None, feedback: bool = True) -> int:
    """`sharding.merge` for nbgrader: the shards' results become the course's (its
    grading-output/<assignment>/), then the gradebook, autograded/ and feedback are
    written from them as `autograde` writes them, by this one process. Returns the exit status."""
    from rich.console import Console

    from .sharding import check

    console = console or Console()
    course = Path(course).resolve()
    parts, everyone, graded = check([Path(p) for p in shard_outputs])
    assignment = parts[0].assignment()
    coursedir, _ = load_coursedir(course)
    known = {i.student for i in collected(coursedir, assignment.name)}
    late = sorted(known - set(everyone))
    if late:
        console.print(f"[yellow]collected after the shards ran, not graded (run the shards again): {', '.join(late)}[/]")
    out_root = course / OUTPUT_DIR / assignment.name
    for student in everyone:
        source, _results = graded[student]
        target = out_root / student
        target.mkdir(parents=True, exist_ok=True)
        (target / "grader-error.txt").unlink(missing_ok=True)
        for path in sorted((source / student).iterdir()):
            if path.is_file() and not path.is_symlink() and path.name != RECORD_FILE:
                shutil.copyfile(path, target / path.name)  # results.json last is not needed: nothing reads it meanwhile
    model_name = parts[0].manifest["model"]["name"]
    outcomes = autograde(course, assignment=assignment, students=[s for s in everyone if s in known], model=model_name,
                         feedback=feedback, console=console, grading=False)
    failed = sorted(s for s, o in outcomes.items() if o["score"] is None or (feedback and not o["feedback"]))
    print(f"{len(outcomes)} submissions from {len(parts)} shards; gradebook updated (`nbgrader export` for the CSV); "
          f"per student: {out_root}/<student>/")
    if failed:
        print(f"not graded or no feedback: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def generate_feedback(config, assignment_id: str, students: list[str], outcomes: dict, console) -> None:
    """nbgrader's own generate_feedback, per graded student (forced: a regrade replaces it)."""
    from nbgrader.apps import NbGraderAPI

    api = NbGraderAPI(config=config)
    for student in students:
        answer = api.generate_feedback(assignment_id, student_id=student, force=True)
        outcomes[student]["feedback"] = bool(answer.get("success"))
        if not answer.get("success"):
            console.print(f"[red]{student}: nbgrader could not generate the feedback:[/]\n{answer.get('error') or answer.get('log')}")


# -- command line ---------------------------------------------------------------------------


def _default_course() -> Path:
    return Path.cwd() if (Path.cwd() / "nbgrader_config.py").is_file() else DEFAULT_COURSE


def _sync_command(args) -> int:
    course = args.course or _default_course()
    chosen = [load_assignment(args.assignment)] if args.assignment else [load_assignment(n) for n in available()]
    status = 0
    for assignment in chosen:
        where = source_dir(course, assignment)
        if args.check:
            problems = sync_differences(course, assignment)
            if problems:
                print(f"{where} is out of sync with {assignment.student_dir}:\n  " + "\n  ".join(problems)
                      + "\nrun: python -m autograder nbgrader-sync", file=sys.stderr)
                status = 1
            else:
                print(f"{where} is in sync with {assignment.student_dir}")
            continue
        changed = sync(course, assignment)
        print(f"{where}: " + ("updated (" + "; ".join(changed) + ")" if changed else "already in sync"))
        if changed:
            print(f"next: cd {course} && nbgrader generate_assignment {assignment.name} --force")
    return status


def _autograde_command(args) -> int:
    from .sandbox.limits import Limits

    course = args.course or _default_course()
    if not (course / "nbgrader_config.py").is_file():
        print(f"error: {course} is not an nbgrader course folder (no nbgrader_config.py)", file=sys.stderr)
        return 2
    defaults = Limits()
    limits = Limits(test_seconds=args.test_timeout or defaults.test_seconds,
                    submission_seconds=args.submission_timeout or defaults.submission_seconds,
                    memory_bytes=int(args.memory_limit_gb * 2**30) if args.memory_limit_gb else defaults.memory_bytes)
    try:
        assignment = load_assignment(args.assignment_option or args.assignment)
        if args.shard is not None:
            from .batch import exit_status

            if args.out is None:
                print("error: --shard needs --out (a folder of this shard's own)", file=sys.stderr)
                return 2
            rows = grade_shard(course, args.shard, args.out, assignment=assignment, model=args.model, limits=limits,
                               regrade=args.regrade, reuse_reference=not args.fresh_reference)
            print(f"shard {args.shard}: {len(rows)} submissions graded into {args.out}; the gradebook is written by "
                  f"`python -m autograder merge --nbgrader {course} SHARD_OUT...` once every shard is done")
            return exit_status(rows)
        outcomes = autograde(course, assignment=assignment, students=args.student or None, model=args.model,
                             limits=limits, regrade=args.regrade, feedback=not args.no_feedback,
                             reuse_reference=not args.fresh_reference)
    except (RuntimeError, ValueError, models.ModelUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed = sorted(s for s, o in outcomes.items() if o["score"] is None or (not args.no_feedback and not o["feedback"]))
    where = course / OUTPUT_DIR / assignment.name
    print(f"{len(outcomes)} submissions; gradebook updated (`nbgrader export` for the CSV); per student: {where}/<student>/")
    if not args.no_feedback:
        print(f"feedback: {course}/feedback/<student>/{assignment.name}/ (`nbgrader release_feedback {assignment.name}` hands it out)")
    if failed:
        print(f"not graded or no feedback: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _add_sync(commands, name: str):
    parser = commands.add_parser(name, help="copy each assignment's student folder (assignments/NAME) into the nbgrader course's "
                                            "source (plus its points notebook)")
    parser.add_argument("--assignment", help="only this assignment (a name or a folder with an assignment.toml; default: all "
                                             "of the course's)")
    parser.add_argument("--course", type=Path, help="course folder (default: the current folder if it holds nbgrader_config.py, else the repository's course/)")
    parser.add_argument("--check", action="store_true", help="only report whether the course's source is in sync (exit 1 if not)")
    parser.set_defaults(handler=_sync_command)
    return parser


def _add_autograde(commands, name: str):
    parser = commands.add_parser(name, help="grade collected nbgrader submissions with the hidden suites; fill the gradebook and feedback")
    parser.add_argument("assignment", nargs="?", help=f"assignment: a name ({', '.join(available())}; default "
                                                      f"{DEFAULT_ASSIGNMENT}) or a folder with an assignment.toml")
    parser.add_argument("--assignment", dest="assignment_option", metavar="NAME", help="the same, as an option")
    parser.add_argument("--course", type=Path, help="course folder (default: the current folder if it holds nbgrader_config.py, else the repository's course/)")
    parser.add_argument("--student", action="append", help="grade only this student (repeatable)")
    parser.add_argument("--model", help=f"model: {models.DEFAULT_MODEL} (default), {models.TINY_MODEL} (offline) or a folder; default ${models.MODEL_ENV_VAR}")
    parser.add_argument("--regrade", action="store_true", help="grade again even where the submission is unchanged since the last grading")
    parser.add_argument("--no-feedback", action="store_true", help="do not run nbgrader's feedback generation")
    parser.add_argument("--test-timeout", type=float, help="the most seconds one call into student code may take (a call gets 20x the reference's time for the test, at least 10 s)")
    parser.add_argument("--submission-timeout", type=float, help="seconds for all calls of one submission")
    parser.add_argument("--memory-limit-gb", type=float, help="memory beyond the shared model, GiB")
    parser.add_argument("--fresh-reference", action="store_true",
                        help="compute every reference answer and every model call afresh: no stored reference answers, "
                             "no answering students' model calls from them (same grades, slower)")
    parser.add_argument("--shard", type=shard_argument, metavar="I/K",
                        help="grade only shard I of K (from 0) into --out, leaving the gradebook alone; "
                             "`python -m autograder merge --nbgrader COURSE SHARD_OUT...` writes it from all shards")
    parser.add_argument("--out", type=Path, help="with --shard: this shard's output folder")
    parser.set_defaults(handler=_autograde_command)
    return parser


def add_cli(commands) -> None:
    """Register `nbgrader-sync` and `nbgrader-autograde` on `python -m autograder`'s subparsers."""
    _add_sync(commands, "nbgrader-sync")
    _add_autograde(commands, "nbgrader-autograde")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.nbgrader_course", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _add_sync(commands, "sync")
    _add_autograde(commands, "autograde")
    args = parser.parse_args(argv)
    from .interrupts import run_stoppable

    return run_stoppable(lambda: args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
