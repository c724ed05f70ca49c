"""Grade a whole class: find submissions, grade each once, keep what is already graded.

One submission never stops the batch: whatever goes wrong while grading one student (an
error in the grader, in writing the reports) is recorded for that student - 0 points, a
``grader error: ...`` status in grades.csv, ``results.json`` saying so, the traceback in
``grader-error.txt`` - and the batch goes on. Such a student is graded again on the next
run; `exit_status` tells the command line to exit non-zero.

Which file is a student's submission follows `discovery.find_submission_file` (the one
``decoding.py`` at any depth). A student without one is *not submitted*: nothing is
graded, grades.csv has a blank total and ``not submitted: <why>``, results.json has 0
points with the message (Gradescope's schema needs a number) and ``extra_data.not_submitted``;
adding the file later grades it on the next run.

Manual overrides (``OUT/overrides.csv`` or ``--overrides FILE``: student, function,
points, reason) replace a function's points in grades.csv, results.json and feedback.md
on every run, reruns and regrades included; results.json keeps the autograder's own
scores and lists the overrides in ``extra_data.overrides``.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from . import discovery, report
from .assignment import GRADER_ERROR_EXIT
from .submission_file import SubmissionFileError, read_submission_bytes

from .assignment import Assignment, load as load_assignment

if TYPE_CHECKING:
    from .grading import Grader
    from .sharding import Shard

NOT_SUBMITTED = "not submitted"  # how a grades.csv status starts when there is no single decoding.py
OVERRIDES_FILE = "overrides.csv"  # in the output folder, unless --overrides names another
OVERRIDE_COLUMNS = ("student", "function", "points", "reason")
# How a grades.csv status goes on when a TA's override replaced some points (as nbgrader-autograde's does).
OVERRIDE_NOTE = "override kept"
# What a student is this run (`Outcome.how`).
GRADED, UNCHANGED = "graded", "unchanged, not regraded"
# Marks the TA's adjustments in feedback.md (Markdown link definitions: rendered as nothing).
_ADJUSTED_START, _ADJUSTED_END = "[//]: # (adjusted-by-TA)", "[//]: # (end-adjusted-by-TA)"


@dataclass(frozen=True)
class Submission:
    student: str
    folder: Path
    exclude: tuple = ()  # folders inside `folder` never searched (the grading output)
    file_name: str = discovery.DEFAULT_NAME  # the assignment's `submission_file`

    @functools.cached_property
    def found(self) -> discovery.Found:
        """The student's file by the one rule (`discovery.find_submission_file`)."""
        return discovery.find_submission_file(self.folder, exclude=self.exclude, name=self.file_name)

    @property
    def file(self) -> Path:
        """The submitted file: the one found, else where it should have been."""
        return self.found.path or self.folder / self.file_name


def _is_output_folder(folder: Path) -> bool:
    """Whether `folder` looks like grading output (a grades.csv over per-student results), not a student."""
    try:
        return (folder / "grades.csv").is_file() and any((child / "results.json").is_file() for child in folder.iterdir())
    except OSError:
        return False


def discover(root: Path, out_dir: Path | None = None, *, skipped: list | None = None,
             assignment: Assignment | None = None) -> list[Submission]:
    """Submissions below `root`, in any of these layouts:

    * nbgrader: ``root/submitted/<student>/<assignment>/`` (or `root` is `submitted/`,
      or the course's ``autograded/`` folder);
    * flat: ``root/<student>/`` (the student's decoding.py anywhere inside, see `discovery`);
    * a single submission: ``root/decoding.py``.

    Never a student: hidden folders, ``__pycache__`` and the like (`discovery.SKIPPED_FOLDERS`),
    `out_dir` and anything that looks like grading output (a grades.csv over results);
    those last two are added to `skipped` as (name, why). `assignment`: whose submission
    file to look for, and the nbgrader folder name (default `assignment.DEFAULT`)."""
    assignment = load_assignment(assignment)
    file_name = assignment.submission_file
    root = Path(root)
    if (root / "submitted").is_dir():
        root = root / "submitted"
    excluded = (Path(out_dir),) if out_dir is not None else ()
    out_real = os.path.realpath(out_dir) if out_dir is not None else None
    if (root / file_name).is_file():
        return [Submission(root.name, root, excluded, file_name)]
    found = []
    for student_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if student_dir.name.startswith(".") or student_dir.name in discovery.SKIPPED_FOLDERS:
            continue
        if out_real is not None and os.path.realpath(student_dir) == out_real:
            if skipped is not None:
                skipped.append((student_dir.name, "the output folder"))
            continue
        if _is_output_folder(student_dir):
            if skipped is not None:
                skipped.append((student_dir.name, "it looks like grading output (grades.csv and results)"))
            continue
        nbgrader_dir = student_dir / assignment.name
        folder = nbgrader_dir if nbgrader_dir.is_dir() else student_dir
        found.append(Submission(student_dir.name, folder, excluded, file_name))
    return found


def file_digest(path: Path) -> str:
    """sha256 of the submitted file, read safely (`read_submission_bytes`: no symlink, FIFO
    or huge file); "missing", or "unreadable: why", when it cannot be read. Never raises."""
    try:
        return hashlib.sha256(read_submission_bytes(path)).hexdigest()
    except SubmissionFileError as error:
        return "missing" if not os.path.lexists(path) else f"unreadable: {error}"


def submission_digest(found: discovery.Found) -> str:
    """What a rerun compares: the file's sha256 (`file_digest`), or for a student without a
    single decoding.py, ``not submitted: `` and a hash of why (what was found), so that
    adding, renaming or removing a file is noticed."""
    if found.path is not None:
        return file_digest(found.path)
    return f"{NOT_SUBMITTED}: " + hashlib.sha256(str(found.problem).encode("utf-8", "backslashreplace")).hexdigest()[:16]


def submission_folder(found: discovery.Found) -> Path:
    """The folder to hand `Grader.grade` (it reads ``<folder>/decoding.py`` without following
    a final symlink): the found file's own folder, checked again right now for a symbolic
    link swapped in since the search."""
    if found.path is None:
        raise SubmissionFileError(found.problem or "no submission file in the submission")
    if not discovery.still_plain(found):
        raise SubmissionFileError(f"a folder on the way to {found.relative} changed into a symbolic link while it was "
                                  f"graded: submit the file itself")
    return found.path.parent


@dataclass
class Summary:
    """What a batch did, for the lines after the class table (`print_summary`)."""

    graded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    not_submitted: list[str] = field(default_factory=list)
    compared: int = 0  # students regraded (or whose rows changed) that had earlier results
    changes: list[str] = field(default_factory=list)  # "alice: 80 → 95 (+15: top_p_filter +15)"
    override_notes: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # folders that are not students
    unknown_overrides: list[str] = field(default_factory=list)  # students in overrides.csv not in this batch
    regrade: bool = False


class Rows(list):
    """grade_all's grades.csv rows, plus the `Summary` of the run."""

    summary: Summary


def grade_all(root: Path, out_dir: Path, grader: Grader, *, regrade: bool = False, console: Console | None = None,
              overrides: Path | None = None, shard: Shard | None = None, load_seconds: float = 0.0,
              submissions: list[Submission] | None = None) -> Rows:
    """Grade every submission below `root` into `out_dir`; returns the grades.csv rows
    (with `.summary`).

    A submission whose ``results.json`` exists, grades its unchanged ``decoding.py`` with
    this model and hit no grader error is skipped unless `regrade`. Each result is
    written as soon as it is known, so an interrupted batch loses nothing already graded;
    a student the grader fails on gets a row with a ``grader error`` status (see
    `exit_status`) and the batch goes on. `overrides`: the TA's overrides file (default
    ``out_dir/overrides.csv`` when it exists; see `load_overrides`). `shard`: grade only
    that shard's students, and keep `sharding.MANIFEST` up to date in `out_dir` (its
    `load_seconds`: how long the grader took to load, for the record). `submissions`:
    these instead of what `discover` finds below `root` (nbgrader's collected folders).
    """
    console = console or Console()
    points = grader.assignment.points
    out_dir = Path(out_dir)
    overrides_path = Path(overrides) if overrides is not None else out_dir / OVERRIDES_FILE
    manual = load_overrides(overrides_path, points) if overrides is not None or overrides_path.is_file() else {}
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(out_dir, 0o700)  # also what an earlier version wrote there: grades are the TA's alone
    summary = Summary(regrade=regrade)
    if submissions is None:
        submissions = discover(root, out_dir, skipped=summary.skipped, assignment=grader.assignment)
    for name, why in summary.skipped:
        console.print(f"not a student: {escape(report.clean_text(name))} ({escape(why)})")
    summary.unknown_overrides = sorted(set(manual) - {s.student for s in submissions})
    mark_shard = _ShardManifest(out_dir, shard, grader, [s.student for s in submissions], load_seconds)
    if shard is not None:
        submissions = [s for s in submissions if shard.holds(s.student)]
        summary.unknown_overrides = [s for s in summary.unknown_overrides if shard.holds(s)]
        console.print(f"shard {shard}: {len(submissions)} of the class's {len(mark_shard.class_students)} students")
    grader.hidden_paths += [Path(out_dir).resolve(), Path(root).resolve()]  # others' results and code
    rows = Rows()
    rows.summary = summary
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("grading", total=len(submissions))
            for submission in submissions:
                progress.update(task, description=f"grading {escape(report.clean_text(submission.student)[:80])}")
                try:
                    rows.append(_grade_one(submission, out_dir, grader, regrade, console, manual.get(submission.student, {}),
                                           summary))
                except Exception as error:  # noqa: BLE001 - one bad submission never stops the batch
                    rows.append(record_grader_error(out_dir / submission.student, submission.student, error,
                                                    traceback.format_exc(), _metadata(grader), console, points))
                progress.advance(task)
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: the student being graded is not recorded; those graded before
        # (now or in an earlier run) stay in grades.csv, and a rerun picks up from here.
        done = {row.get("student") for row in rows}
        rows += [row for s in submissions if s.student not in done and (row := _earlier_row(out_dir / s.student, points))]
        report.write_grades_csv(out_dir / "grades.csv", rows, points)
        raise
    report.write_grades_csv(out_dir / "grades.csv", rows, points)
    mark_shard(complete=True)
    return rows


class _ShardManifest:
    """Writes a shard's `sharding.MANIFEST`: not complete when grading starts, complete at the end."""

    def __init__(self, out_dir: Path, shard: Shard | None, grader, class_students: list[str], load_seconds: float):
        import time

        from .sharding import MANIFEST, _now

        self.out_dir, self.shard, self.grader, self.class_students = out_dir, shard, grader, class_students
        self.load_seconds, self.started, self.clock = load_seconds, _now(), time.monotonic()
        if shard is None:  # an unsharded run: this folder is no shard's output (any more)
            (Path(out_dir) / MANIFEST).unlink(missing_ok=True)
        self(complete=False)

    def __call__(self, complete: bool) -> None:
        import time

        from .sharding import write_manifest

        if self.shard is None:
            return
        write_manifest(self.out_dir, self.shard, assignment=self.grader.assignment, class_students=self.class_students,
                       metadata=_metadata(self.grader), store=str(getattr(self.grader, "store_note", "")),
                       complete=complete, started=self.started,
                       seconds={"load": round(self.load_seconds, 2), "grading": round(time.monotonic() - self.clock, 2)})



def _earlier_row(target: Path, points: dict) -> dict | None:
    """The grades.csv row of a results.json an earlier run wrote, if there is a usable one."""
    data = _read_results(target)
    try:
        return results_row(data, points) if data is not None else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _read_results(target: Path) -> dict | None:
    try:
        data = json.loads((target / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def exit_status(rows: list[dict]) -> int:
    """The command's exit status: `GRADER_ERROR_EXIT` if any student hit a grader error."""
    return GRADER_ERROR_EXIT if any(report.is_grader_error(row) for row in rows) else 0


def is_not_submitted(row: dict) -> bool:
    return str(row.get("status", "")).startswith(NOT_SUBMITTED)


def _grade_one(submission: Submission, out_dir: Path, grader: Grader, regrade: bool, console: Console,
               manual: dict, summary: Summary) -> dict:
    target = out_dir / submission.student
    points = grader.assignment.points
    name = escape(report.clean_text(submission.student))
    found = submission.found
    digest = submission_digest(found)
    model = getattr(grader, "model", None)
    revision = model.get("revision") if isinstance(model, dict) else None
    previous = _read_results(target)  # before anything replaces it: for the change summary
    reused = None if regrade else reusable_results(target, digest, grader.model_name, points, revision=revision)
    if found.path is None:
        results = reused or write_not_submitted(target, submission.student, found, _metadata(grader), points, digest)
        results = apply_overrides(target, results, manual, points)
        summary.not_submitted.append(submission.student)
        console.print(f"{name}: [yellow]{NOT_SUBMITTED}[/]: {escape(report.clean_text(found.problem))}")
    elif reused:
        results = apply_overrides(target, reused, manual, points)
        summary.unchanged.append(submission.student)
        console.print(f"{name}: {_shown_total(results_row(results, points), points)} ({UNCHANGED})")
    else:
        result = grader.grade(submission_folder(found), student=submission.student)
        results = write_reports(target, result, digest, found=found, overrides=manual)
        summary.graded.append(submission.student)
        line = f"{name}: {_shown_total(results_row(results, points), points)}"
        if found.nested:
            line += f" (graded {escape(report.clean_text(found.relative))})"
        if result.internal_errors:
            line += f" [red](grader error in {len(result.internal_errors)} tests; see {escape(str(target / 'grader-error.txt'))})[/]"
        console.print(line)
        for note in _override_changes(submission.student, previous, results, points):
            summary.override_notes.append(note)
            console.print(f"[yellow]{escape(note)}[/]")
    row = results_row(results, points)
    change = _change(submission.student, previous, row, points)
    if previous is not None and (change or submission.student in summary.graded):
        summary.compared += 1
    if change:
        summary.changes.append(change)
    return row


def _shown_total(row: dict, points: dict) -> str:
    total = row.get("total")
    text = f"{_num(total):g} / {sum(points.values()):g}" if total not in ("", None) else str(row.get("status"))
    kept = str(row.get("status", "")).partition(f"{OVERRIDE_NOTE}: ")[2]
    return text + (f" ({OVERRIDE_NOTE}: {kept})" if kept else "")


def _num(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _change(student: str, previous: dict | None, row: dict, points: dict) -> str | None:
    """How `row` differs from the row of `previous` (the results.json before this run), or None."""
    if previous is None:
        return None
    try:
        old = results_row(previous, points)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    def state(r):
        if is_not_submitted(r):
            return NOT_SUBMITTED
        if report.is_grader_error(r) and str(r.get("status", "")).startswith(f"{report.GRADER_ERROR}:"):
            return "grader error"
        return None
    old_state, new_state = state(old), state(row)
    if old_state or new_state:
        if old_state == new_state:
            return None
        before = old_state or f"{_num(old.get('total')):g}"
        after = new_state or f"{_num(row.get('total')):g}"
        return f"{student}: {before} → {after}"
    deltas = [(f, _num(row.get(f)) - _num(old.get(f))) for f in points]
    deltas = [(f, d) for f, d in deltas if abs(d) > 1e-6]
    total = _num(row.get("total")) - _num(old.get("total"))
    if not deltas and abs(total) <= 1e-6:
        return None
    details = ", ".join(f"{f} {d:+g}" for f, d in deltas)
    return f"{student}: {_num(old.get('total')):g} → {_num(row.get('total')):g} ({total:+g}" + (f": {details})" if details else ")")


def print_summary(summary: Summary, console: Console | None = None) -> None:
    """After the class table: who was not submitted, skipped as unchanged, changed since the
    previous results, and where the autograder now disagrees with an override."""
    console = console or Console()
    names = lambda students: escape(report.clean_text(", ".join(students)))  # noqa: E731
    if summary.unknown_overrides:
        console.print(f"[yellow]overrides for students not in this batch (a typo?): {names(summary.unknown_overrides)}[/]")
    if summary.not_submitted:
        console.print(f"[yellow]{NOT_SUBMITTED} ({len(summary.not_submitted)}): {names(summary.not_submitted)}[/] "
                      f"(no single file to grade; their status says what was found)")
    if summary.unchanged:
        console.print(f"unchanged since the last run, not regraded ({len(summary.unchanged)}): {names(summary.unchanged)} "
                      f"(--regrade grades them again)")
    if summary.compared or summary.changes:
        if summary.changes:
            console.print(f"changed against the previous results ({len(summary.changes)} of {summary.compared}):")
            for change in summary.changes:
                console.print(f"  {escape(report.clean_text(change))}")
        else:
            console.print(f"no grade changed against the previous results ({summary.compared} compared)")
    for note in summary.override_notes:
        console.print(f"[yellow]{escape(report.clean_text(note))}[/]")


# -- students without a submission ------------------------------------------------------------


def not_submitted_results(student: str, found: discovery.Found, metadata: dict, digest: str, points: dict) -> dict:
    """results.json for a student without a single submission file: nothing graded.
    Gradescope's schema needs numbers, so every function of `points` is 0 with the message;
    ``extra_data.not_submitted`` says why (grades.csv then shows a blank total, see
    `results_row`)."""
    problem = found.problem or f"No {found.wanted} found."
    shown = f"Not graded: {problem}"
    return report.json_safe({
        "score": 0.0,
        "execution_time": 0,
        "output": shown,
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [{"name": f"{function}: {NOT_SUBMITTED}", "score": 0.0, "max_score": float(worth), "status": "failed",
                   "output": shown, "visibility": "visible", "tags": [function]} for function, worth in points.items()],
        "extra_data": {"student": student, "metadata": metadata or {}, "not_submitted": problem,
                       "found": list(found.files), "submission_sha256": digest},
    })


def not_submitted_markdown(student: str, problem: str, file_name: str) -> str:
    return (f"# Feedback for {report.md_inline(student)}: {NOT_SUBMITTED}\n\n"
            f"Nothing was graded: the grader found no {report.md_inline(file_name)} it could grade in your submission.\n\n"
            f"{report.md_inline(problem, 3000)}\n")


def write_not_submitted(target: Path, student: str, found: discovery.Found, metadata: dict, points: dict,
                        digest: str | None = None) -> dict:
    """results.json and feedback.md for a student without a single submission file;
    returns the results.json data. An earlier real grading is kept as results.previous.json."""
    digest = digest or submission_digest(found)
    results = not_submitted_results(student, found, metadata, digest, points)
    _keep_previous(target)
    (target / "grader-error.txt").unlink(missing_ok=True)
    report.write_text(target / "feedback.md", not_submitted_markdown(student, results["extra_data"]["not_submitted"],
                                                                     found.wanted))
    report.write_json(target / "results.json", results)
    return results


def results_row(results: dict, points: dict) -> dict:
    """The grades.csv row of a results.json: `report.grades_row`, then a student without a
    submission gets a blank total and ``not submitted: why``, and a TA's overrides
    (``extra_data.overrides``) replace their functions' points, with a status note."""
    row = report.grades_row(results, points)
    extra = results.get("extra_data") if isinstance(results.get("extra_data"), dict) else {}
    if extra.get("not_submitted"):
        row["status"] = f"{NOT_SUBMITTED}: {report.brief(extra['not_submitted'], 500)}"
        row["total"] = ""
        for function in points:
            row[function] = ""
    kept = extra.get("overrides")
    if isinstance(kept, dict) and kept:
        for function in points:
            entry = kept.get(function)
            if isinstance(entry, dict):
                row[function] = round(_num(entry.get("points")), 2)
            elif row[function] == "":
                row[function] = 0.0
        row["total"] = round(sum(_num(row[f]) for f in points), 4)
        notes = ", ".join(f"{f} {_num(e.get('points')):g} (autograder {_num(e.get('autograder_points')):g})"
                          for f, e in kept.items() if isinstance(e, dict))
        row["status"] = f"{row['status']}, {OVERRIDE_NOTE}: {notes}"
    return row


# -- overrides --------------------------------------------------------------------------------


class OverridesError(ValueError):
    """The overrides file cannot be used as it is; the message says where and why."""


def load_overrides(path: Path, points: dict) -> dict[str, dict[str, dict]]:
    """{student: {function: {"points", "reason"}}} from a CSV with the columns student,
    function, points, reason (a row whose student starts with ``#`` is a comment). Points
    are what the function is worth for that student instead of the autograder's score,
    between 0 and the function's points (`points`, the assignment's). Raises `OverridesError` for a missing file or
    column, an unknown function, a number out of range, or a student and function twice."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise OverridesError(f"{path}: cannot be read ({error.strerror or type(error).__name__})") from None
    except UnicodeDecodeError:
        raise OverridesError(f"{path}: not UTF-8 text") from None
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in OVERRIDE_COLUMNS[:3] if c not in (reader.fieldnames or [])]
    if missing:
        raise OverridesError(f"{path}: no {', '.join(missing)} column (the header must be: {','.join(OVERRIDE_COLUMNS)})")
    found: dict[str, dict[str, dict]] = {}
    for line, row in enumerate(reader, start=2):
        student = (row.get("student") or "").strip()
        if not student or student.startswith("#"):
            continue
        function = (row.get("function") or "").strip()
        if function not in points:
            raise OverridesError(f"{path}, line {line}: unknown function {function!r} (one of: {', '.join(points)})")
        raw = (row.get("points") or "").strip()
        try:
            given = float(raw)
        except ValueError:
            given = float("nan")
        if not (math.isfinite(given) and 0 <= given <= points[function]):
            raise OverridesError(f"{path}, line {line}: points {raw!r} for {function}: expected a number from 0 to "
                                 f"{points[function]}")
        if function in found.get(student, {}):
            raise OverridesError(f"{path}, line {line}: {student} {function} is overridden twice")
        found.setdefault(student, {})[function] = {"points": given, "reason": (row.get("reason") or "").strip()}
    return found


def _autograder_points(results: dict, points: dict) -> dict[str, float]:
    tests = results.get("tests") if isinstance(results.get("tests"), list) else []
    return {f: round(sum(_num(t.get("score")) for t in tests if isinstance(t, dict) and t.get("tags", [])[:1] == [f]), 4)
            for f in points}


def with_overrides(results: dict, manual: dict, points: dict) -> dict:
    """`results` with ``extra_data.overrides`` set to `manual` ({function: {"points",
    "reason"}}; none: the entry removed); the autograder's own scores stay as they are."""
    results = json.loads(json.dumps(results))
    extra = results.setdefault("extra_data", {})
    own = _autograder_points(results, points)
    if manual:
        extra["overrides"] = {f: {"points": o["points"], "autograder_points": own[f], "reason": o.get("reason", "")}
                              for f, o in manual.items()}
    else:
        extra.pop("overrides", None)
    return results


def adjusted_feedback(text: str, overrides: dict | None, own: dict[str, float] | None = None,
                      points: dict | None = None) -> str:
    """feedback.md with the TA's adjustments as a paragraph under its title (replacing any
    earlier one): "Adjusted by your TA: ...", and the total with them when `own` (the
    autograder's points per function) is given; `points`: what each function is worth."""
    points = points or {}
    lines = text.splitlines()
    if _ADJUSTED_START in lines and _ADJUSTED_END in lines[lines.index(_ADJUSTED_START):]:
        start = lines.index(_ADJUSTED_START)
        end = lines.index(_ADJUSTED_END, start)
        lines = lines[:start] + lines[end + 2 if end + 1 < len(lines) and not lines[end + 1].strip() else end + 1:]
    if overrides:
        parts = []
        for function, entry in overrides.items():
            reason = f": {report.md_inline(entry.get('reason'), 500)}" if entry.get("reason") else ""
            parts.append(f"`{function}` is {_num(entry.get('points')):g} / {points.get(function, 0):g} "
                         f"(the tests below give {_num(entry.get('autograder_points')):g}){reason}")
        total = None if own is None else sum(
            _num(overrides[f].get("points")) if isinstance(overrides.get(f), dict) else points for f, points in own.items())
        after = f" Your total with {'this adjustment' if len(parts) == 1 else 'these adjustments'}: {total:g} / " \
                f"{sum(points.values()):g}." if total is not None else ""
        block = [_ADJUSTED_START, "", "**Adjusted by your TA:** " + "; ".join(parts) + "." + after, "", _ADJUSTED_END, ""]
        at = 2 if len(lines) > 1 and not lines[1].strip() else 1
        lines = lines[:at] + block + lines[at:]
    return "\n".join(lines) + "\n"


def apply_overrides(target: Path, results: dict, manual: dict, points: dict) -> dict:
    """Bring results.json and feedback.md in `target` in line with the TA's overrides for
    this student (written only when they changed); returns the results.json data."""
    updated = with_overrides(results, manual, points)
    if updated.get("extra_data", {}).get("overrides") == results.get("extra_data", {}).get("overrides"):
        return results
    try:
        text = (target / "feedback.md").read_text(encoding="utf-8")
    except OSError:
        text = ""
    if text:
        report.write_text(target / "feedback.md", adjusted_feedback(text, updated["extra_data"].get("overrides"),
                                                                    _autograder_points(updated, points), points))
    report.write_json(target / "results.json", updated)
    return updated


def _override_changes(student: str, previous: dict | None, results: dict, points: dict) -> list[str]:
    """A line per overridden function whose autograder score this grading changed."""
    kept = results.get("extra_data", {}).get("overrides") or {}
    if not kept or previous is None or previous.get("extra_data", {}).get("not_submitted"):
        return []
    before, now = _autograder_points(previous, points), _autograder_points(results, points)
    notes = []
    for function, entry in kept.items():
        if abs(before.get(function, 0.0) - now.get(function, 0.0)) > 1e-6:
            reason = f" ({entry.get('reason')})" if entry.get("reason") else ""
            notes.append(f"{student}: {function} stays at {_num(entry.get('points')):g}, overridden{reason}; the autograder's "
                         f"own score for it changed {before[function]:g} → {now[function]:g}")
    return notes


def _metadata(grader) -> dict:
    """What the grader records about itself (model, versions), for a grader-error report."""
    try:
        return grader.metadata()
    except Exception:  # noqa: BLE001 - a fake or broken grader: the model's name at least
        return {"model": {"name": getattr(grader, "model_name", None)}}


def record_grader_error(target: Path, student: str, error: BaseException, details: str, metadata: dict,
                        console: Console, points: dict) -> dict:
    """Record that grading `student` failed in the grader: results.json (0 points, the error
    for the TA), feedback.md, grader-error.txt (the traceback); returns the grades.csv row.

    A results.json from an earlier, successful grading is kept as results.previous.json
    (and its feedback.md as feedback.previous.md). Never raises."""
    message = report.clean_text(f"{type(error).__name__}: {error}")
    message = " ".join(message.split())[:300] or type(error).__name__
    results = report.grader_error_results(student, message, points, metadata)
    try:
        _keep_previous(target)
        report.write_text(target / "grader-error.txt", details)
        report.write_text(target / "feedback.md", report.grader_error_markdown(student))
        report.write_json(target / "results.json", results)
        where = f"details in {target / 'grader-error.txt'}"
    except Exception as write_error:  # noqa: BLE001 - the row below still records it
        where = f"and its reports could not be written ({type(write_error).__name__}: {write_error})"
    console.print(f"[red]{escape(report.clean_text(student))}: the grader failed ({escape(message)}); {escape(report.clean_text(where))}[/]")
    return report.grades_row(results, points)


def _keep_previous(target: Path) -> None:
    """results.json (and feedback.md) of an earlier grading that succeeded, moved aside."""
    try:
        data = json.loads((target / "results.json").read_text(encoding="utf-8"))
        if data.get("extra_data", {}).get("grader_error") or data.get("extra_data", {}).get("not_submitted"):
            return  # an earlier failure, or nothing submitted: nothing worth keeping
    except (OSError, ValueError, AttributeError):
        return
    os.replace(target / "results.json", target / "results.previous.json")
    if (target / "feedback.md").is_file():
        os.replace(target / "feedback.md", target / "feedback.previous.md")


def reusable_results(target: Path, digest: str, model_name: str, points: dict, *,
                     revision: str | None = None) -> dict | None:
    """The results.json in `target` if it grades this exact decoding.py with this model (and
    `revision`, when given) and no grader error happened while making it.

    `digest` is `submission_digest`'s: a "not submitted" results.json is reused only while
    the folder looks the same (whatever the model: nothing was graded), so a file added or
    renamed later is graded on the next run."""
    try:
        data = json.loads((target / "results.json").read_text(encoding="utf-8"))
        extra = data["extra_data"]
        if extra.get("grader_error") or extra.get("grader_errors"):
            return None  # a grader error: grade again
        if extra.get("not_submitted") or str(digest).startswith(NOT_SUBMITTED):
            return data if extra.get("not_submitted") and extra.get("submission_sha256") == digest else None
        model = extra.get("metadata", {}).get("model", {})
        same = (extra.get("submission_sha256") == digest and model.get("name") == model_name
                and (revision is None or model.get("revision") == revision))
        if not same or "tests" not in data:
            return None
        report.grades_row(data, points)  # a row can be made of it
        return data
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_reports(target: Path, result, digest: str, *, found: discovery.Found | None = None,
                  overrides: dict | None = None) -> dict:
    """results.json, feedback.md (and grader-error.txt if the grader failed somewhere)
    for one graded submission; returns the results.json data (as written). `found`: where
    the file was (a nested one is recorded as ``extra_data.submission_file``); `overrides`:
    the TA's for this student (see `with_overrides`).

    results.json is written last: it is what a rerun looks for, so it never stands next
    to a feedback.md from another grading."""
    results = report.gradescope_results(result)
    points = result.points
    results["extra_data"]["submission_sha256"] = digest
    if found is not None and found.relative:
        results["extra_data"]["submission_file"] = found.relative
    feedback = report.feedback_markdown(result)
    if overrides:
        results = with_overrides(results, overrides, points)
        feedback = adjusted_feedback(feedback, results["extra_data"]["overrides"], _autograder_points(results, points), points)
    error_file = target / "grader-error.txt"
    if result.internal_errors:
        report.write_text(error_file, "\n\n".join(report.clean_text(e) for e in result.internal_errors))
    else:
        error_file.unlink(missing_ok=True)
    report.write_text(target / "feedback.md", feedback)
    report.write_json(target / "results.json", results)
    return results
