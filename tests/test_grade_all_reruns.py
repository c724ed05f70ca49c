"""grade-all reruns: it says who it skipped as unchanged, what changed against the previous
results, and a TA's overrides (OUT/overrides.csv) are kept across reruns and regrades.

Most tests use a fake grader whose scores are written in each student's decoding.py (JSON:
{function: points}, the rest full marks); one runs the command line on the real, tiny model.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from autograder import batch
from autograder import grading

from autograder.assignment import load as _load_assignment

BASIC = _load_assignment("basic_prompting")  # the assignment these tests grade
POINTS = BASIC.points


REPO = Path(__file__).resolve().parent.parent


class FakeGrader:
    model_name = "tiny-qwen3"
    assignment = BASIC

    def __init__(self, bonus: dict | None = None):
        self.model = {"name": "tiny-qwen3", "revision": "rev-1"}
        self.hidden_paths: list[Path] = []
        self.graded: list[str] = []
        self.bonus = bonus or {}  # function -> points added (a changed hidden test, say)

    def metadata(self) -> dict:
        return {"model": dict(self.model), "versions": {"torch": "2.x", "transformers": "4.x"}, "seeds": [0],
                "graded_at": "2026-01-01T00:00:00+00:00"}

    def grade(self, folder: Path, student: str | None = None) -> grading.SubmissionResult:
        self.graded.append(student)
        scores = json.loads((Path(folder) / "decoding.py").read_text() or "{}")
        tests = []
        for function, points in POINTS.items():
            score = min(points, scores.get(function, points) + self.bonus.get(function, 0))
            tests.append(grading.TestResult(name="t", function=function, max_score=points, score=score,
                                    status="passed" if score == points else "failed"))
        return grading.SubmissionResult(student=student, submission=str(folder), tests=tests, metadata=self.metadata(),
                                import_report={"ok": True, "missing": []}, points=dict(POINTS))


def klass(tmp_path: Path, students: dict[str, dict]) -> Path:
    root = tmp_path / "class"
    for student, scores in students.items():
        (root / student).mkdir(parents=True, exist_ok=True)
        (root / student / "decoding.py").write_text(json.dumps(scores))
    return root


def run(root: Path, out: Path, grader: FakeGrader, **kwargs) -> tuple[batch.Rows, str]:
    """grade_all, then the summary the command prints after the class table."""
    printed = io.StringIO()
    console = Console(file=printed, width=400)
    rows = batch.grade_all(root, out, grader, console=console, **kwargs)
    batch.print_summary(rows.summary, console)
    return rows, printed.getvalue()


def csv_rows(out: Path) -> dict[str, dict]:
    with open(out / "grades.csv", newline="") as handle:
        return {row["student"]: row for row in csv.DictReader(handle)}


def test_a_rerun_says_who_it_skipped_and_a_regrade_what_changed(tmp_path):
    root = klass(tmp_path, {"ada": {}, "bo": {"top_p_filter": 5}, "cy": {"softmax": 0}})
    out = tmp_path / "out"
    _, printed = run(root, out, FakeGrader())
    assert "unchanged" not in printed and "previous results" not in printed  # a first run: nothing to compare

    grader = FakeGrader()
    _, printed = run(root, out, grader)
    assert grader.graded == []
    for student, total in (("ada", 100), ("bo", 85), ("cy", 85)):
        assert f"{student}: {total} / 100 (unchanged, not regraded)" in printed
    assert "unchanged since the last run, not regraded (3): ada, bo, cy (--regrade grades them again)" in printed
    assert "previous results" not in printed

    # bo changed their file; a fixed hidden test gives cy's softmax 5 more on the regrade
    (root / "bo" / "decoding.py").write_text(json.dumps({"top_p_filter": 20}))
    grader = FakeGrader(bonus={"softmax": 5})
    rows, printed = run(root, out, grader, regrade=True)
    assert sorted(grader.graded) == ["ada", "bo", "cy"]
    assert rows.summary.changes == ["bo: 85 → 100 (+15: top_p_filter +15)", "cy: 85 → 90 (+5: softmax +5)"]
    assert "changed against the previous results (2 of 3):\n  bo: 85 → 100 (+15: top_p_filter +15)\n  cy: 85 → 90" in printed
    assert "unchanged since the last run" not in printed

    _, printed = run(root, out, FakeGrader(bonus={"softmax": 5}), regrade=True)
    assert "no grade changed against the previous results (3 compared)" in printed


def write_overrides(out: Path, *lines: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "overrides.csv").write_text("student,function,points,reason\n" + "".join(line + "\n" for line in lines))


def test_an_override_is_kept_across_a_rerun_and_a_regrade(tmp_path):
    root = klass(tmp_path, {"ada": {}, "bo": {"top_p_filter": 5}})
    out = tmp_path / "out"
    run(root, out, FakeGrader())
    write_overrides(out, "bo,top_p_filter,18,off by one only at the boundary", "# zed,softmax,1,a comment")

    def check(autograder_top_p: float) -> None:
        row = csv_rows(out)["bo"]
        assert float(row["top_p_filter"]) == 18 and float(row["total"]) == 98
        assert row["status"] == f"graded, override kept: top_p_filter 18 (autograder {autograder_top_p:g})"
        data = json.loads((out / "bo" / "results.json").read_text())
        assert data["score"] == pytest.approx(100 - 20 + autograder_top_p)  # the autograder's own scores stay
        assert sum(t["score"] for t in data["tests"] if t["tags"][:1] == ["top_p_filter"]) == pytest.approx(autograder_top_p)
        assert data["extra_data"]["overrides"] == {"top_p_filter": {"points": 18.0, "autograder_points": autograder_top_p,
                                                                    "reason": "off by one only at the boundary"}}
        feedback = (out / "bo" / "feedback.md").read_text()
        assert feedback.count("Adjusted by your TA") == 1
        assert (f"**Adjusted by your TA:** `top_p_filter` is 18 / 20 (the tests below give {autograder_top_p:g}): off by "
                f"one only at the boundary. Your total with this adjustment: 98 / 100.") in feedback
        assert csv_rows(out)["ada"]["status"] == "graded"

    # a rerun: bo is not regraded, the override is applied to the stored results
    grader = FakeGrader()
    rows, printed = run(root, out, grader)
    assert grader.graded == [] and "bo: 98 / 100 (override kept: top_p_filter 18 (autograder 5)) (unchanged" in printed
    check(5)
    assert rows.summary.changes == ["bo: 85 → 98 (+13: top_p_filter +13)"]
    mtime = (out / "bo" / "results.json").stat().st_mtime_ns
    run(root, out, FakeGrader())  # nothing changed: nothing rewritten
    assert (out / "bo" / "results.json").stat().st_mtime_ns == mtime
    check(5)

    # a regrade that gives the same: kept, nothing to say
    rows, printed = run(root, out, FakeGrader(), regrade=True)
    check(5)
    assert rows.summary.override_notes == [] and "stays at" not in printed

    # a regrade whose autograder score for top_p_filter changes: kept, and it says so
    rows, printed = run(root, out, FakeGrader(bonus={"top_p_filter": 10}), regrade=True)
    check(15)
    note = ("bo: top_p_filter stays at 18, overridden (off by one only at the boundary); the autograder's own score for it "
            "changed 5 → 15")
    assert rows.summary.override_notes == [note] and note in printed
    assert rows.summary.changes == []  # the grade itself did not change

    # the override removed: the autograder's score again, everywhere
    write_overrides(out)
    rows, _ = run(root, out, FakeGrader(bonus={"top_p_filter": 10}))
    assert csv_rows(out)["bo"]["status"] == "graded" and float(csv_rows(out)["bo"]["total"]) == 95
    assert "overrides" not in json.loads((out / "bo" / "results.json").read_text())["extra_data"]
    assert "Adjusted by your TA" not in (out / "bo" / "feedback.md").read_text()
    assert rows.summary.changes == ["bo: 98 → 95 (-3: top_p_filter -3)"]


def test_an_override_for_a_student_without_a_submission(tmp_path):
    root = klass(tmp_path, {"ada": {}})
    (root / "dee").mkdir()
    (root / "dee" / "Decoding.py").write_text("{}")
    out = tmp_path / "out"
    write_overrides(out, "dee,softmax,15,sent by mail before the deadline", "zed,softmax,3,typo")
    rows, printed = run(root, out, FakeGrader())
    row = csv_rows(out)["dee"]
    assert row["status"].startswith("not submitted: No decoding.py found; found: Decoding.py.")
    assert "override kept: softmax 15 (autograder 0)" in row["status"]
    assert float(row["total"]) == 15 and float(row["softmax"]) == 15 and float(row["top_p_filter"]) == 0
    assert "overrides for students not in this batch (a typo?): zed" in printed


@pytest.mark.parametrize("text, error", [
    ("student,function,points\nbo,top_p,3\n", "line 2: unknown function 'top_p'"),
    ("student,function,points\nbo,softmax,16\n", "line 2: points '16' for softmax: expected a number from 0 to 15"),
    ("student,function,points\nbo,softmax,nan\n", "points 'nan'"),
    ("student,function,points\nbo,softmax,1\nbo,softmax,2\n", "line 3: bo softmax is overridden twice"),
    ("student,points\nbo,1\n", "no function column"),
])
def test_a_bad_overrides_file_is_refused_with_where_and_why(tmp_path, text, error):
    (tmp_path / "overrides.csv").write_text(text)
    with pytest.raises(batch.OverridesError, match=error.replace("(", r"\(").replace(")", r"\)")):
        batch.load_overrides(tmp_path / "overrides.csv", POINTS)


def test_the_command_refuses_a_bad_overrides_file_before_loading_the_model(tmp_path):
    root = klass(tmp_path, {"ada": {}})
    (tmp_path / "o.csv").write_text("student,function,points,reason\nada,softmax,99,too much\n")
    code = ("import sys, autograder.grading as g\n"
            "class Trap:\n    def __init__(self, *a, **k): raise SystemExit('the grader started')\n"
            "g.Grader = Trap\nfrom autograder.__main__ import main\nsys.exit(main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, "-c", code, "grade-all", str(root), "--out", str(tmp_path / "out"), "--model",
                           "tiny-qwen3", "--overrides", str(tmp_path / "o.csv")], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "line 2: points '99' for softmax" in done.stderr and "the grader started" not in done.stderr


def test_the_command_line_rerun_and_regrade_with_an_override(tmp_path):
    """On the real (tiny) model, through the command: one buggy student, graded twice."""
    root = tmp_path / "class"
    shutil.copytree(REPO / "tests" / "submissions" / "top_p_off_by_one", root / "cy")
    out = tmp_path / "out"

    def grade_all(*extra: str) -> str:
        done = subprocess.run([sys.executable, "-m", "autograder", "grade-all", str(root), "--out", str(out), "--model",
                               "tiny-qwen3", *extra], cwd=REPO, capture_output=True, text=True, timeout=600,
                              env=dict(os.environ, COLUMNS="300"))
        assert done.returncode == 0, done.stdout + done.stderr
        return " ".join(done.stdout.split())

    grade_all()
    own = float(csv_rows(out)["cy"]["top_p_filter"])
    assert 0 <= own < 18
    overrides = tmp_path / "mine.csv"
    overrides.write_text("student,function,points,reason\ncy,top_p_filter,18,partial credit\n")
    printed = grade_all("--overrides", str(overrides))
    assert f"cy: {float(csv_rows(out)['cy']['total']):g} / 100 (override kept: top_p_filter 18 (autograder {own:g})) " \
           f"(unchanged, not regraded)" in printed
    assert "unchanged since the last run, not regraded (1): cy" in printed
    assert "changed against the previous results (1 of 1): cy:" in printed
    printed = grade_all("--overrides", str(overrides), "--regrade")
    row = csv_rows(out)["cy"]
    assert float(row["top_p_filter"]) == 18 and row["status"] == f"graded, override kept: top_p_filter 18 (autograder {own:g})"
    assert "no grade changed against the previous results (1 compared)" in printed
    assert "Adjusted by your TA" in (out / "cy" / "feedback.md").read_text()
