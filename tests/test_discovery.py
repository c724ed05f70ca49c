"""Which file is a student's submission: one rule (`autograder.discovery`) for `grade`,
`grade-all`, `nbgrader-autograde` and the Gradescope run, on the same misnamed folders.

Only one real grading per entry point that needs one (a nested ``sub/decoding.py`` holding
the reference): everything else is "not submitted", which needs no model.
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

from autograder import batch, discovery, gradescope

from autograder.assignment import load as _load_assignment

BASIC = _load_assignment("basic_prompting")  # the assignment these tests grade
POINTS = BASIC.points


REPO = Path(__file__).resolve().parent.parent
REFERENCE = BASIC.reference_path.read_text()
NOTEBOOK = (REPO / "assignments" / BASIC.name / "basic_prompting.ipynb").read_text()

# The misnamed folders of the issue: files (relative path -> text) and what the message must say.
MISNAMED = {
    "case": ({"Decoding.py": REFERENCE},
             "No decoding.py found; found: Decoding.py. Rename Decoding.py to decoding.py (names are case-sensitive)."),
    "browser_copy": ({"decoding (1).py": REFERENCE},
                     'No decoding.py found; found: decoding (1).py. Rename decoding (1).py to decoding.py (the name has '
                     '"(1)" added, as browsers and file managers do to a second copy).'),
    "txt": ({"decoding.py.txt": REFERENCE},
            "No decoding.py found; found: decoding.py.txt. Rename decoding.py.txt to decoding.py (it ends in .txt)."),
    "notebook_only": ({"basic_prompting.ipynb": NOTEBOOK},
                      "No decoding.py found; found: basic_prompting.ipynb. The notebook is not graded: put your code in a "
                      "file named decoding.py and submit it."),
    "empty": ({}, "No decoding.py found: the submission holds no files."),
    "two": ({"a/decoding.py": REFERENCE, "b/decoding.py": REFERENCE},
            "2 files named decoding.py: a/decoding.py, b/decoding.py — submit one"),
}
NESTED = {"sub/decoding.py": REFERENCE, "sub/notes.txt": "my notes\n"}  # accepted: exactly one, at any depth


def make(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def uploaded(message: str) -> str:
    """The same message as Gradescope words it."""
    return message.replace("— submit one", "— upload one").replace("and submit it", "and upload it")


# -- the rule itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(MISNAMED))
def test_misnamed_folders_are_not_submitted_with_a_message_that_says_what_to_rename(tmp_path, case):
    files, message = MISNAMED[case]
    found = discovery.find_submission_file(make(tmp_path / case, files))
    assert found.path is None and found.problem == message
    assert discovery.find_submission_file(tmp_path / case, upload=True).problem == uploaded(message)


def test_one_decoding_py_at_any_depth_is_the_submission(tmp_path):
    found = discovery.find_submission_file(make(tmp_path / "s", NESTED))
    assert found.path == tmp_path / "s" / "sub" / "decoding.py" and found.relative == "sub/decoding.py" and found.nested
    top = discovery.find_submission_file(make(tmp_path / "t", {"decoding.py": "x", "Decoding.py": "y", "notes.txt": ""}))
    assert top.path == tmp_path / "t" / "decoding.py" and not top.nested  # an exact name wins over near misses


def test_hidden_folders_caches_and_excluded_folders_are_never_searched(tmp_path):
    folder = make(tmp_path / "s", {".ipynb_checkpoints/decoding.py": "a", ".git/decoding.py": "b",
                                   "__pycache__/decoding.py": "c", "__MACOSX/decoding.py": "d", "venv/decoding.py": "e",
                                   "out/decoding.py": "f", "work/decoding.py": "g"})
    assert discovery.find_submission_file(folder).candidates == ("out/decoding.py", "work/decoding.py")
    found = discovery.find_submission_file(folder, exclude=[folder / "out"])
    assert found.relative == "work/decoding.py"
    (folder / "work" / "decoding.py").unlink()
    hidden_only = discovery.find_submission_file(folder, exclude=[folder / "out"])
    assert hidden_only.problem.startswith("No decoding.py found: the submission holds no files (hidden folders, caches and "
                                          "virtual environments are not searched: ")


def test_symbolic_links_are_never_followed_nor_accepted(tmp_path):
    elsewhere = make(tmp_path / "elsewhere", {"decoding.py": REFERENCE})
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "decoding.py").symlink_to(elsewhere / "decoding.py")
    (folder / "linked").symlink_to(elsewhere, target_is_directory=True)
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    found = discovery.find_submission_file(folder)
    assert found.path is None
    assert found.problem == ("No decoding.py found; found: decoding.py (a symbolic link), linked (a symbolic link), loop (a "
                             "symbolic link). decoding.py is a symbolic link, which is never followed or read: submit the "
                             "file itself.")
    make(folder, {"zipped/inner/decoding.py": "y = 2\n"})
    assert discovery.find_submission_file(folder).relative == "zipped/inner/decoding.py"  # the link does not count


def test_the_listing_and_the_walk_are_bounded(tmp_path, monkeypatch):
    many = make(tmp_path / "many", {f"file{i:03}.txt": "" for i in range(50)} | {"sub/decoding.PY": ""})
    problem = discovery.find_submission_file(many).problem
    assert problem.count(".txt") == discovery.MAX_LISTED and "and 31 more" in problem  # the near miss: named below
    assert "Rename sub/decoding.PY to decoding.py (names are case-sensitive)." in problem
    monkeypatch.setattr(discovery, "MAX_ENTRIES", 30)
    make(many, {"zzz/decoding.py": REFERENCE})
    stopped = discovery.find_submission_file(many)
    assert stopped.path is None and not stopped.complete
    assert stopped.problem.startswith("No single decoding.py found: the submission holds more than 30 files and folders")
    deep = make(tmp_path / "deep", {"/".join(["d"] * (discovery.MAX_DEPTH + 1)) + "/decoding.py": REFERENCE})
    assert discovery.find_submission_file(deep).path is None


def test_odd_names_are_shown_escaped_on_one_line(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "Decoding\n.py").write_text("")
    (folder / os.fsdecode(b"\xff.py")).write_text("")
    problem = discovery.find_submission_file(folder).problem
    assert "\n" not in problem and "Decoding\\x0a.py" in problem and "\\udcff.py" in problem
    problem.encode("utf-8")


# -- grade ---------------------------------------------------------------------------------------


def grade_in_process(argv: list[str], capsys) -> tuple[int, str]:
    from autograder.__main__ import main

    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("case", list(MISNAMED))
def test_grade_says_not_submitted_without_loading_a_model(tmp_path, capsys, monkeypatch, case):
    from autograder import models

    def no_model(name):
        raise AssertionError("the model was looked up for a folder without a submission")
    monkeypatch.setattr(models, "model_path", no_model)
    files, message = MISNAMED[case]
    folder = make(tmp_path / case, files)
    code, printed = grade_in_process(["grade", str(folder), "--results", str(tmp_path / "r.json"),
                                      "--feedback", str(tmp_path / "f.md")], capsys)
    assert code == 2
    assert f"not submitted: {message}" in " ".join(printed.split())
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["score"] == 0 and data["extra_data"]["not_submitted"] == message and data["output"] == f"Not graded: {message}"
    assert "not submitted" in (tmp_path / "f.md").read_text()


class RecordingGrader:
    """Stands in for `Grader` in `grade`: records the folder it was asked to grade."""

    seen: list[tuple[Path, str]] = []

    def __init__(self, *args, **kwargs):
        self.model = {"name": "tiny-qwen3", "revision": "r"}
        self.assignment = BASIC

    def grade(self, folder, student=None):
        from autograder.grading import SubmissionResult, TestResult

        RecordingGrader.seen.append((Path(folder), (Path(folder) / "decoding.py").read_text()))
        tests = [TestResult(name="t", function=f, max_score=p, score=p, status="passed") for f, p in POINTS.items()]
        return SubmissionResult(student=student, submission=str(folder), tests=tests, metadata={"model": self.model},
                                import_report={"ok": True, "missing": []}, points=dict(POINTS))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def test_grade_grades_a_nested_decoding_py(tmp_path, capsys, monkeypatch):
    from autograder import grading

    monkeypatch.setattr(grading, "Grader", RecordingGrader)
    RecordingGrader.seen = []
    folder = make(tmp_path / "alice", NESTED)
    code, printed = grade_in_process(["grade", str(folder), "--model", "tiny-qwen3", "--results", str(tmp_path / "r.json")],
                                     capsys)
    assert code == 0, printed
    assert RecordingGrader.seen == [(folder / "sub", REFERENCE)]
    assert json.loads((tmp_path / "r.json").read_text())["extra_data"]["student"] == "alice"


def test_grade_path_to_decoding_py_grades_that_file(tmp_path):
    folder = make(tmp_path / "bob", {"sub/decoding.py": REFERENCE, "other/decoding.py": "raise SystemExit\n"})
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(folder / "sub" / "decoding.py"), "--model",
                           "tiny-qwen3", "--results", str(tmp_path / "r.json")], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((tmp_path / "r.json").read_text())["score"] == pytest.approx(100)


TRAPPED = ("import sys, autograder.grading as g\n"
           "class Trap:\n    def __init__(self, *a, **k): raise SystemExit('the grader started before the model was checked')\n"
           "g.Grader = Trap\nfrom autograder.__main__ import main\nsys.exit(main(sys.argv[1:]))\n")


@pytest.mark.parametrize("command", ["grade", "grade-all"])
def test_a_missing_model_fails_before_the_grader_starts(tmp_path, command):
    folder = make(tmp_path / "class" / "alice", {"decoding.py": REFERENCE})
    target = folder if command == "grade" else folder.parent
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    env.pop("AUTOGRADER_MODEL", None)
    extra = ["--out", str(tmp_path / "out")] if command == "grade-all" else []
    done = subprocess.run([sys.executable, "-c", TRAPPED, command, str(target), *extra], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "hf download Qwen/Qwen3-0.6B-Base" in done.stderr and "the grader started" not in done.stderr


# -- grade-all -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grader():
    from autograder.grading import Grader

    with Grader("tiny-qwen3") as loaded:
        yield loaded


def misnamed_class(root: Path) -> Path:
    for case, (files, _) in MISNAMED.items():
        make(root / case, files)
    make(root / "nested", NESTED)
    return root


def test_grade_all_applies_the_rule_and_never_grades_its_output_folder(tmp_path, grader):
    from rich.console import Console

    root = misnamed_class(tmp_path / "class")
    out = root / "_out"  # --out inside the class folder
    make(root / "old-output", {"grades.csv": "student,total\n", "x/results.json": "{}"})  # an earlier run's --out
    printed = io.StringIO()
    rows = {row["student"]: row for row in batch.grade_all(root, out, grader, console=Console(file=printed, width=400))}
    assert set(rows) == set(MISNAMED) | {"nested"}, printed.getvalue()
    assert "not a student: _out (the output folder)" in printed.getvalue()
    assert "not a student: old-output" in printed.getvalue()
    with open(out / "grades.csv", newline="") as handle:
        written = {row["student"]: row for row in csv.DictReader(handle)}
    for case, (_, message) in MISNAMED.items():
        assert written[case]["status"] == f"not submitted: {message}"
        assert written[case]["total"] == "" and all(written[case][f] == "" for f in POINTS)  # not a graded 0
        data = json.loads((out / case / "results.json").read_text())
        assert data["score"] == 0 and data["extra_data"]["not_submitted"] == message
        assert message.split(";")[0] in (out / case / "feedback.md").read_text().replace("\\", "")
        assert f"{case}: not submitted: {message}" in " ".join(printed.getvalue().split())
    assert float(written["nested"]["total"]) == pytest.approx(100) and written["nested"]["status"] == "graded"
    assert json.loads((out / "nested" / "results.json").read_text())["extra_data"]["submission_file"] == "sub/decoding.py"
    assert "nested: 100 / 100 (graded sub/decoding.py)" in printed.getvalue()

    # a rerun rewrites nothing; renaming Decoding.py grades that student, and only them
    before = {s: (out / s / "results.json").stat().st_mtime_ns for s in rows}
    (root / "case" / "Decoding.py").rename(root / "case" / "decoding.py")
    printed = io.StringIO()
    again = batch.grade_all(root, out, grader, console=Console(file=printed, width=400))
    rows = {row["student"]: row for row in again}
    after = {s: (out / s / "results.json").stat().st_mtime_ns for s in rows}
    assert [s for s in rows if after[s] != before[s]] == ["case"]
    assert rows["case"]["total"] == pytest.approx(100) and rows["case"]["status"] == "graded"
    assert again.summary.changes == ["case: not submitted → 100"] and again.summary.graded == ["case"]
    assert "nested: 100 / 100 (unchanged, not regraded)" in printed.getvalue()


# -- nbgrader-autograde ----------------------------------------------------------------------------


def test_nbgrader_autograde_applies_the_same_rule(tmp_path):
    from nbgrader.api import Gradebook
    from rich.console import Console

    from autograder import nbgrader_course

    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(REPO / "course" / "nbgrader_config.py", course)
    (tmp_path / "autograder").symlink_to(REPO / "autograder", target_is_directory=True)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"), JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    made = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", BASIC.name], cwd=course,
                          env=env, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    misnamed_class(course / "submitted")
    for student in [*MISNAMED, "nested"]:  # as `nbgrader collect` lays them out
        folder = course / "submitted" / student
        inner = folder / BASIC.name
        inner.mkdir()
        for path in sorted(folder.iterdir()):
            if path != inner:
                path.rename(inner / path.name)
    printed = io.StringIO()
    outcomes = nbgrader_course.autograde(course, model="tiny-qwen3", feedback=False, console=Console(file=printed, width=400))
    with open(course / "grading-output" / BASIC.name / "grades.csv", newline="") as handle:
        written = {row["student"]: row for row in csv.DictReader(handle)}
    for case, (_, message) in MISNAMED.items():
        assert outcomes[case]["status"].startswith(f"not submitted: {message}"), printed.getvalue()
        assert written[case]["status"].startswith(f"not submitted: {message}") and written[case]["total"] == ""
        assert f"{case}: not submitted: {message}" in " ".join(printed.getvalue().split())
    assert outcomes["nested"]["score"] == pytest.approx(100) and float(written["nested"]["total"]) == pytest.approx(100)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert gb.find_submission(BASIC.name, "nested").score == pytest.approx(100)


# -- Gradescope ------------------------------------------------------------------------------------


def gradescope_root(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "autograder"
    make(root / "source", {"bundle.json": json.dumps({"model": "tiny-qwen3", "limits": {}})})
    make(root / "submission", files)
    return root


@pytest.mark.parametrize("case", list(MISNAMED))
def test_gradescope_applies_the_same_rule(tmp_path, capsys, case):
    files, message = MISNAMED[case]
    root = gradescope_root(tmp_path, files)
    assert gradescope.run(root) == 0
    data = json.loads((root / "results" / "results.json").read_text())
    assert data["score"] == 0 and data["tests"] == [] and data["output"] == f"Not graded: {uploaded(message)}"
    assert f"not submitted: {uploaded(message)}" in capsys.readouterr().out  # the TA's log


def test_gradescope_grades_the_nested_file(tmp_path, monkeypatch):
    root = gradescope_root(tmp_path, NESTED)
    graded = []

    def grading_child(command, **kwargs):  # instead of the grading child: what would it grade?
        folder, out = Path(command[command.index("grade-one") + 1]), Path(command[command.index("--out") + 1])
        graded.append(sorted(p.name for p in folder.iterdir()) + [(folder / "decoding.py").read_text()])
        tests = [{"name": f, "score": p, "max_score": p, "status": "passed", "output": "", "visibility": "visible",
                  "tags": [f]} for f, p in POINTS.items()]
        out.write_text(json.dumps({"score": 0, "tests": tests}))
        return subprocess.CompletedProcess(command, 0)
    monkeypatch.setattr(gradescope.subprocess, "run", grading_child)
    assert gradescope.run(root) == 0
    assert graded == [["decoding.py", REFERENCE]]
    assert json.loads((root / "results" / "results.json").read_text())["score"] == pytest.approx(100)
