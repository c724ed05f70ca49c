"""The command line as a TA uses it: exit codes, results.json schema, batches, reruns."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


from autograder.assignment import load as _load_assignment

BASIC = _load_assignment("basic_prompting")  # the assignment these tests grade
POINTS = BASIC.points


REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", *args], capture_output=True, text=True, cwd=REPO,
                          env=env or dict(os.environ), timeout=900)


def check_gradescope_schema(data: dict) -> None:
    """The fields Gradescope reads (https://gradescope-autograders.readthedocs.io/en/latest/specs/)."""
    assert isinstance(data["score"], (int, float)) and isinstance(data["execution_time"], int)
    assert isinstance(data["output"], str)
    assert data["tests"]
    for test in data["tests"]:
        assert set(test) >= {"name", "score", "max_score", "status", "output", "visibility", "tags"}
        assert test["status"] in ("passed", "failed") and test["visibility"] in ("visible", "after_due_date")
        assert test["tags"][0] in POINTS and 0 <= test["score"] <= test["max_score"] + 1e-9
    assert sum(t["max_score"] for t in data["tests"]) == pytest.approx(100)
    assert data["score"] == pytest.approx(sum(t["score"] for t in data["tests"]), abs=1e-3)


def test_grade_writes_results_and_feedback(tmp_path):
    folder = tmp_path / "student"
    shutil.copytree(REPO / "tests" / "submissions" / "top_p_off_by_one", folder)
    result = run_cli("grade", str(folder), "--model", "tiny-qwen3", "--results", str(tmp_path / "r.json"),
                     "--feedback", str(tmp_path / "f.md"))
    assert result.returncode == 0, result.stderr
    assert "top_p_filter" in result.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    check_gradescope_schema(data)
    assert 0 < data["score"] < 100
    meta = data["extra_data"]["metadata"]
    assert meta["model"]["name"] == "tiny-qwen3" and meta["model"]["revision"]
    assert meta["versions"]["torch"] and meta["versions"]["transformers"] and meta["hidden_inputs"]["draws"]
    feedback = (tmp_path / "f.md").read_text()
    assert "top_p_filter" in feedback and "Expected:" in feedback and "Got:" in feedback
    # nothing of the reference or the hidden suite leaks into what the student sees
    for leak in ("mass_before", "def test_", "grading.student(", "solutions/"):
        assert leak not in feedback and leak not in json.dumps(data)
    assert list(Path(os.environ["AUTOGRADER_REFERENCE_STORE"]).glob("*.pt")), "reference answers are kept for the next run"


def test_fresh_reference_keeps_nothing_and_grades_the_same(tmp_path):
    folder = tmp_path / "student"
    shutil.copytree(REPO / "tests" / "submissions" / "top_p_off_by_one", folder)
    store = tmp_path / "store"
    env = dict(os.environ, AUTOGRADER_REFERENCE_STORE=str(store))
    scores = []
    for extra in (["--fresh-reference"], []):
        result = run_cli("grade", str(folder), "--model", "tiny-qwen3", "--results", str(tmp_path / "r.json"), *extra, env=env)
        assert result.returncode == 0, result.stderr
        scores.append([(t["name"], t["score"]) for t in json.loads((tmp_path / "r.json").read_text())["tests"]])
        assert bool(list(store.glob("*.pt"))) == (not extra)
    assert scores[0] == scores[1]


def test_grade_refuses_a_missing_folder(tmp_path):
    result = run_cli("grade", str(tmp_path / "nope"), "--model", "tiny-qwen3")
    assert result.returncode == 2 and "not a folder" in result.stderr


def test_grade_says_how_to_get_a_missing_model(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    folder = tmp_path / "s"
    folder.mkdir()
    shutil.copy(BASIC.skeleton_path, folder / "decoding.py")
    result = run_cli("grade", str(folder), env=env)
    assert result.returncode == 2
    assert "hf download Qwen/Qwen3-0.6B-Base" in result.stderr and "tiny-qwen3" in result.stderr


def _course(tmp_path: Path) -> Path:
    """nbgrader's submitted/<student>/<assignment>/ layout with three students."""
    submitted = tmp_path / "course" / "submitted"
    for student, source in [("ada", BASIC.reference_path), ("bo", BASIC.skeleton_path),
                            ("cy", REPO / "tests" / "submissions" / "stop_first_listed" / "decoding.py")]:
        folder = submitted / student / BASIC.name
        folder.mkdir(parents=True)
        shutil.copy(source, folder / "decoding.py")
    (submitted / "dee" / BASIC.name).mkdir(parents=True)  # submitted nothing
    return tmp_path / "course"


def test_grade_all_on_an_nbgrader_layout_then_rerun(tmp_path):
    course, out = _course(tmp_path), tmp_path / "out"
    result = run_cli("grade-all", str(course), "--model", "tiny-qwen3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = {row["student"]: row for row in csv.DictReader(open(out / "grades.csv"))}
    assert set(rows) == {"ada", "bo", "cy", "dee"}
    assert float(rows["ada"]["total"]) == pytest.approx(100)
    assert float(rows["bo"]["total"]) == 0 and rows["dee"]["total"] == ""
    assert rows["dee"]["status"].startswith("not submitted: No decoding.py found")
    assert float(rows["cy"]["truncate_at_stop"]) < POINTS["truncate_at_stop"]
    assert float(rows["cy"]["softmax"]) == POINTS["softmax"]
    for student in rows:
        check_gradescope_schema(json.loads((out / student / "results.json").read_text()))
        assert (out / student / "feedback.md").read_text().startswith(f"# Feedback for {student}")
    assert "no decoding.py" in (out / "dee" / "feedback.md").read_text()

    # a rerun skips unchanged submissions and regrades a changed one
    before = {s: (out / s / "results.json").stat().st_mtime_ns for s in rows}
    shutil.copy(BASIC.reference_path, course / "submitted" / "bo" / BASIC.name / "decoding.py")
    result = run_cli("grade-all", str(course), "--model", "tiny-qwen3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    after = {s: (out / s / "results.json").stat().st_mtime_ns for s in rows}
    assert [s for s in rows if after[s] != before[s]] == ["bo"]
    rows = {row["student"]: row for row in csv.DictReader(open(out / "grades.csv"))}
    assert float(rows["bo"]["total"]) == pytest.approx(100) and float(rows["ada"]["total"]) == pytest.approx(100)
