"""Grade a whole class: find submissions, grade each once, keep what is already graded."""

from __future__ import annotations

import hashlib
import json
import traceback
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from . import assignment, report
from .grading import Grader


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
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"


def grade_all(root: Path, out_dir: Path, grader: Grader, *, regrade: bool = False, console: Console | None = None) -> list[dict]:
    """Grade every submission below `root` into `out_dir`; returns the grades.csv rows.

    A submission whose ``results.json`` exists and whose ``decoding.py`` is unchanged is
    skipped unless `regrade`. Each result is written as soon as it is known, so an
    interrupted batch loses nothing already graded.
    """
    console = console or Console()
    out_dir.mkdir(parents=True, exist_ok=True)
    submissions = discover(root)
    grader.hidden_paths += [Path(out_dir).resolve(), Path(root).resolve()]  # others' results and code
    rows = []
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("grading", total=len(submissions))
        for submission in submissions:
            progress.update(task, description=f"grading {submission.student}")
            target = out_dir / submission.student
            digest = file_digest(submission.file)
            previous = None if regrade else reusable_results(target, digest, grader.model_name)
            if previous:
                rows.append(report.grades_row(previous))
                progress.advance(task)
                continue
            try:
                result = grader.grade(submission.folder, student=submission.student)
            except Exception as error:  # noqa: BLE001 - one bad submission never stops the batch
                console.print(f"[red]{submission.student}: the grader failed ({type(error).__name__}: {error}); "
                              f"details in {target / 'grader-error.txt'}[/]")
                report.write_text(target / "grader-error.txt", traceback.format_exc())
                rows.append({"student": submission.student, "total": "", "status": f"grader error: {type(error).__name__}"})
                progress.advance(task)
                continue
            rows.append(report.grades_row(write_reports(target, result, digest)))
            console.print(f"{submission.student}: {result.score:g} / {result.max_score:g}")
            progress.advance(task)
    report.write_grades_csv(out_dir / "grades.csv", rows)
    return rows


def reusable_results(target: Path, digest: str, model_name: str) -> dict | None:
    """The results.json in `target` if it grades this exact decoding.py with this model."""
    try:
        data = json.loads((target / "results.json").read_text(encoding="utf-8"))
        extra = data["extra_data"]
        same = extra.get("submission_sha256") == digest and extra.get("metadata", {}).get("model", {}).get("name") == model_name
        return data if same and "tests" in data else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_reports(target: Path, result, digest: str) -> dict:
    """results.json, feedback.md (and grader-error.txt if the grader failed somewhere)
    for one graded submission; returns the results.json data."""
    results = report.gradescope_results(result)
    results["extra_data"]["submission_sha256"] = digest
    report.write_json(target / "results.json", results)
    report.write_text(target / "feedback.md", report.feedback_markdown(result))
    error_file = target / "grader-error.txt"
    if result.internal_errors:
        report.write_text(error_file, "\n\n".join(result.internal_errors))
    else:
        error_file.unlink(missing_ok=True)
    return results
