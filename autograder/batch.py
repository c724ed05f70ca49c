"""Grade a whole class: find submissions, grade each once, keep what is already graded.

One submission never stops the batch: whatever goes wrong while grading one student (an
error in the grader, in writing the reports) is recorded for that student - 0 points, a
``grader error: ...`` status in grades.csv, ``results.json`` saying so, the traceback in
``grader-error.txt`` - and the batch goes on. Such a student is graded again on the next
run; `exit_status` tells the command line to exit non-zero.
"""

from __future__ import annotations

import hashlib
import json
import os
import traceback
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from . import assignment, report
from .assignment import GRADER_ERROR_EXIT
from .grading import Grader
from .submission_file import SubmissionFileError, read_submission_bytes


@dataclass(frozen=True)
class Submission:
    student: str
    folder: Path

    @property
    def file(self) -> Path:
        return self.folder / assignment.SUBMISSION_FILE


def discover(root: Path) -> list[Submission]:
    """Submissions below `root`, in any of these layouts:

    * nbgrader: ``root/submitted/<student>/<assignment>/`` (or `root` is `submitted/`,
      or the course's ``autograded/`` folder);
    * flat: ``root/<student>/decoding.py``;
    * a single submission: ``root/decoding.py``.
    """
    root = Path(root)
    if (root / "submitted").is_dir():
        root = root / "submitted"
    if (root / assignment.SUBMISSION_FILE).is_file():
        return [Submission(root.name, root)]
    found = []
    for student_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        nbgrader_dir = student_dir / assignment.ASSIGNMENT
        if nbgrader_dir.is_dir():
            found.append(Submission(student_dir.name, nbgrader_dir))
        else:
            found.append(Submission(student_dir.name, student_dir))  # a missing decoding.py is graded as such
    return found


def file_digest(path: Path) -> str:
    """sha256 of the submitted file, read safely (`read_submission_bytes`: no symlink, FIFO
    or huge file); "missing", or "unreadable: why", when it cannot be read. Never raises."""
    try:
        return hashlib.sha256(read_submission_bytes(path)).hexdigest()
    except SubmissionFileError as error:
        return "missing" if not os.path.lexists(path) else f"unreadable: {error}"


def grade_all(root: Path, out_dir: Path, grader: Grader, *, regrade: bool = False, console: Console | None = None) -> list[dict]:
    """Grade every submission below `root` into `out_dir`; returns the grades.csv rows.

    A submission whose ``results.json`` exists, grades its unchanged ``decoding.py`` with
    this model and hit no grader error is skipped unless `regrade`. Each result is
    written as soon as it is known, so an interrupted batch loses nothing already graded;
    a student the grader fails on gets a row with a ``grader error`` status (see
    `exit_status`) and the batch goes on.
    """
    console = console or Console()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(out_dir, 0o700)  # also what an earlier version wrote there: grades are the TA's alone
    submissions = discover(root)
    grader.hidden_paths += [Path(out_dir).resolve(), Path(root).resolve()]  # others' results and code
    rows = []
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("grading", total=len(submissions))
            for submission in submissions:
                progress.update(task, description=f"grading {escape(report.clean_text(submission.student)[:80])}")
                try:
                    rows.append(_grade_one(submission, out_dir, grader, regrade, console))
                except Exception as error:  # noqa: BLE001 - one bad submission never stops the batch
                    rows.append(record_grader_error(out_dir / submission.student, submission.student, error,
                                                    traceback.format_exc(), _metadata(grader), console))
                progress.advance(task)
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: the student being graded is not recorded; those graded before
        # (now or in an earlier run) stay in grades.csv, and a rerun picks up from here.
        done = {row.get("student") for row in rows}
        rows += [row for s in submissions if s.student not in done and (row := _earlier_row(out_dir / s.student))]
        report.write_grades_csv(out_dir / "grades.csv", rows)
        raise
    report.write_grades_csv(out_dir / "grades.csv", rows)
    return rows


def _earlier_row(target: Path) -> dict | None:
    """The grades.csv row of a results.json an earlier run wrote, if there is a usable one."""
    try:
        return report.grades_row(json.loads((target / "results.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def exit_status(rows: list[dict]) -> int:
    """The command's exit status: `GRADER_ERROR_EXIT` if any student hit a grader error."""
    return GRADER_ERROR_EXIT if any(report.is_grader_error(row) for row in rows) else 0


def _grade_one(submission: Submission, out_dir: Path, grader: Grader, regrade: bool, console: Console) -> dict:
    target = out_dir / submission.student
    digest = file_digest(submission.file)
    model = getattr(grader, "model", None)
    revision = model.get("revision") if isinstance(model, dict) else None
    previous = None if regrade else reusable_results(target, digest, grader.model_name, revision=revision)
    if previous:
        return report.grades_row(previous)
    result = grader.grade(submission.folder, student=submission.student)
    row = report.grades_row(write_reports(target, result, digest))
    line = f"{escape(report.clean_text(submission.student))}: {result.score:g} / {result.max_score:g}"
    if result.internal_errors:
        line += f" [red](grader error in {len(result.internal_errors)} tests; see {escape(str(target / 'grader-error.txt'))})[/]"
    console.print(line)
    return row


def _metadata(grader) -> dict:
    """What the grader records about itself (model, versions), for a grader-error report."""
    try:
        return grader.metadata()
    except Exception:  # noqa: BLE001 - a fake or broken grader: the model's name at least
        return {"model": {"name": getattr(grader, "model_name", None)}}


def record_grader_error(target: Path, student: str, error: BaseException, details: str, metadata: dict,
                        console: Console) -> dict:
    """Record that grading `student` failed in the grader: results.json (0 points, the error
    for the TA), feedback.md, grader-error.txt (the traceback); returns the grades.csv row.

    A results.json from an earlier, successful grading is kept as results.previous.json
    (and its feedback.md as feedback.previous.md). Never raises."""
    message = report.clean_text(f"{type(error).__name__}: {error}")
    message = " ".join(message.split())[:300] or type(error).__name__
    results = report.grader_error_results(student, message, metadata)
    try:
        _keep_previous(target)
        report.write_text(target / "grader-error.txt", details)
        report.write_text(target / "feedback.md", report.grader_error_markdown(student))
        report.write_json(target / "results.json", results)
        where = f"details in {target / 'grader-error.txt'}"
    except Exception as write_error:  # noqa: BLE001 - the row below still records it
        where = f"and its reports could not be written ({type(write_error).__name__}: {write_error})"
    console.print(f"[red]{escape(report.clean_text(student))}: the grader failed ({escape(message)}); {escape(report.clean_text(where))}[/]")
    return report.grades_row(results)


def _keep_previous(target: Path) -> None:
    """results.json (and feedback.md) of an earlier grading that succeeded, moved aside."""
    try:
        data = json.loads((target / "results.json").read_text(encoding="utf-8"))
        if data.get("extra_data", {}).get("grader_error"):
            return  # an earlier failure: nothing worth keeping
    except (OSError, ValueError, AttributeError):
        return
    os.replace(target / "results.json", target / "results.previous.json")
    if (target / "feedback.md").is_file():
        os.replace(target / "feedback.md", target / "feedback.previous.md")


def reusable_results(target: Path, digest: str, model_name: str, *, revision: str | None = None) -> dict | None:
    """The results.json in `target` if it grades this exact decoding.py with this model (and
    `revision`, when given) and no grader error happened while making it."""
    try:
        data = json.loads((target / "results.json").read_text(encoding="utf-8"))
        extra = data["extra_data"]
        if extra.get("grader_error") or extra.get("grader_errors"):
            return None  # a grader error: grade again
        model = extra.get("metadata", {}).get("model", {})
        same = (extra.get("submission_sha256") == digest and model.get("name") == model_name
                and (revision is None or model.get("revision") == revision))
        if not same or "tests" not in data:
            return None
        report.grades_row(data)  # a row can be made of it
        return data
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_reports(target: Path, result, digest: str) -> dict:
    """results.json, feedback.md (and grader-error.txt if the grader failed somewhere)
    for one graded submission; returns the results.json data (as written).

    results.json is written last: it is what a rerun looks for, so it never stands next
    to a feedback.md from another grading."""
    results = report.gradescope_results(result)
    results["extra_data"]["submission_sha256"] = digest
    feedback = report.feedback_markdown(result)
    error_file = target / "grader-error.txt"
    if result.internal_errors:
        report.write_text(error_file, "\n\n".join(report.clean_text(e) for e in result.internal_errors))
    else:
        error_file.unlink(missing_ok=True)
    report.write_text(target / "feedback.md", feedback)
    report.write_json(target / "results.json", results)
    return results
