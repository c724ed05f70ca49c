"""The nbgrader workflow end to end, with the real nbgrader CLI in a temporary course and exchange.

The temporary course starts as a fresh clone's does: only nbgrader_config.py, no source/ (no
sync of ours first). Then: db student add -> generate_assignment -> release -> fetch -> submit
(four students) -> collect -> our autograde step -> feedback -> export. The students: the
reference (100), the untouched skeleton (0), a buggy top_p_filter (the partial score that the
grader gives that file when run directly), and one whose decoding.py prints HTML and calls
os._exit(1) at import (0, and the others are graded all the same).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import nbgrader_course
from autograder.assignment import available

from autograder.assignment import load as _load_assignment

BASIC = _load_assignment("basic_prompting")  # the assignment these tests grade
POINTS = BASIC.points


REPO = Path(__file__).resolve().parent.parent
ASSIGNMENT = BASIC.name
BUGGY = REPO / "tests" / "submissions" / "top_p_off_by_one"
CRASHING = (
    "import os, sys\n"
    "sys.stdout.write('<script>alert(1)</script>\\n```\\n<img src=x onerror=alert(2)>\\n')\n"
    "sys.stdout.flush()\n"
    "os._exit(1)\n"
)
STUDENTS = {"ada": "reference", "bo": "skeleton", "cy": "buggy", "dee": "crashing"}
# Strings that only the reference or the hidden suite contain.
REFERENCE_MARKER = "mass_before"
HIDDEN_TEST = re.compile(r"grading\.student\(|def test_\w+\(grading")


def nbgrader(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def texts(folder: Path, suffixes: tuple[str, ...] = ()) -> dict[Path, str]:
    return {p: p.read_text(errors="replace") for p in folder.rglob("*")
            if p.is_file() and (not suffixes or p.suffix in suffixes)}


def student_env(env: dict, home: Path) -> dict:
    """A student's own machine: submit keeps a copy in the Jupyter data folder (nbgrader_cache)."""
    return dict(env, HOME=str(home), JUPYTER_DATA_DIR=str(home / ".jupyter-data"))


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """Run the whole workflow once; the tests below check what it left behind."""
    root = tmp_path_factory.mktemp("nbgrader")
    course = root / "course"
    course.mkdir()
    # A fresh clone: the course's config next to the autograder package, and no source/.
    # nbgrader's own commands must bring source/ up to date (the config does it on load).
    shutil.copy(REPO / "course" / "nbgrader_config.py", course)
    (root / "autograder").symlink_to(REPO / "autograder", target_is_directory=True)
    assert not (course / "source").exists()
    exchange = root / "exchange"
    exchange.mkdir()
    exchange.chmod(0o777)
    # nbgrader runs `alembic` (from the venv's bin/) when it creates the gradebook
    env = dict(os.environ, NBGRADER_EXCHANGE=str(exchange), NBGRADER_COURSE_ID="test-course",
               JUPYTER_CONFIG_DIR=str(root / "jupyter-config"), JUPYTER_DATA_DIR=str(root / "jupyter-data"),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    env.setdefault("AUTOGRADER_CACHE", str(root / "cache"))
    # students have no course config: they name the exchange and the course on the command line
    student_flags = (f"--Exchange.root={exchange}", "--CourseDirectory.course_id=test-course")

    added = [nbgrader("db", "student", "add", student, f"--first-name={student.title()}", "--last-name=Test", cwd=course, env=env)
             for student in STUDENTS]
    generated = nbgrader("generate_assignment", ASSIGNMENT, cwd=course, env=env)
    nbgrader("release_assignment", ASSIGNMENT, cwd=course, env=env)
    sources = {"reference": BASIC.reference_path.read_text(), "skeleton": None,
               "buggy": (BUGGY / "decoding.py").read_text(), "crashing": CRASHING}
    for student, kind in STUDENTS.items():
        home = root / "home" / student
        home.mkdir(parents=True)
        nbgrader("fetch_assignment", ASSIGNMENT, *student_flags, cwd=home, env=student_env(env, home))
        if sources[kind] is not None:
            (home / ASSIGNMENT / "decoding.py").write_text(sources[kind])
        nbgrader("submit", ASSIGNMENT, f"--student={student}", *student_flags, cwd=home, env=student_env(env, home))
    nbgrader("collect", ASSIGNMENT, cwd=course, env=env)

    graded = subprocess.run([sys.executable, "-m", "autograder.nbgrader_course", "autograde", ASSIGNMENT,
                             "--course", str(course), "--model", "tiny-qwen3"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    nbgrader("generate_feedback", ASSIGNMENT, "--force", cwd=course, env=env)
    nbgrader("export", cwd=course, env=env)
    nbgrader("release_feedback", ASSIGNMENT, cwd=course, env=env)
    nbgrader("fetch_feedback", ASSIGNMENT, "--student=cy", *student_flags, cwd=root / "home" / "cy",
             env=student_env(env, root / "home" / "cy"))
    return {"root": root, "course": course, "exchange": exchange, "env": env, "graded": graded,
            "config_lines": [line for r in (*added, generated) for line in r.stderr.splitlines() if "[nbgrader_config.py]" in line]}


@pytest.fixture(scope="module")
def buggy_graded_directly():
    """The buggy submission graded by the Grader itself, in this process: no nbgrader, no
    gradebook, no export. Its score is what the CSV must show."""
    from autograder.grading import Grader

    with Grader("tiny-qwen3") as grader:
        result = grader.grade(BUGGY, student="cy")  # cy's own hidden inputs, as nbgrader-autograde draws them
    assert result.internal_errors == []
    return result


def direct_function_scores(result) -> dict[str, float]:
    """Points per function of a directly graded submission, unrounded."""
    return {f: sum(t.score for t in result.tests if t.function == f) for f in POINTS}


def test_fresh_course_gets_its_source_from_nbgrader_alone(course):
    """No sync of ours ran: the first nbgrader command made each assignment's source/ from
    assignments/ (saying so in one line each), the later ones found them current and said
    nothing."""
    lines = course["config_lines"]
    assert len(lines) == len(available()) and all("created" in line for line in lines), lines
    assert {line.split("source/")[1].split("/")[0] for line in lines} == set(available())
    assert nbgrader_course.sync_differences(course["course"], BASIC) == []
    source = {p.relative_to(course["course"] / "source" / ASSIGNMENT).as_posix()
              for p in (course["course"] / "source" / ASSIGNMENT).rglob("*") if p.is_file()}
    assert source == {p.relative_to(BASIC.student_dir).as_posix()
                      for p in BASIC.student_dir.rglob("*")
                      if p.is_file() and not nbgrader_course.is_clutter(p.relative_to(BASIC.student_dir))} | {"decoding_points.ipynb"}


def test_git_ignores_everything_the_workflow_writes_in_the_course(course):
    """course/.gitignore covers what the commands of the TA guide leave in course/, so `git
    status` stays clean: checked against what this run left behind, plus a roster."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    left = sorted(p.name for p in course["course"].iterdir() if p.name != "nbgrader_config.py")
    assert {"source", "release", "submitted", "autograded", "feedback", "grading-output", "gradebook.db", "grades.csv"} <= set(left)
    paths = [f"course/{name}/x" if (course["course"] / name).is_dir() else f"course/{name}" for name in left]
    paths += ["course/students.csv", "course/.ipynb_checkpoints/x"]
    checked = subprocess.run(["git", "check-ignore", "--no-index", "--verbose", "--non-matching", *paths],
                             cwd=REPO, capture_output=True, text=True)
    not_ignored = [line.split("\t")[-1] for line in checked.stdout.splitlines() if line.startswith("::")]
    assert not_ignored == [], f"git would show these in `git status`: {not_ignored}"


def test_points_are_read_without_importing_the_grader():
    """Every nbgrader command syncs the course (nbgrader_config.py): the points notebook it
    writes comes from the assignment.toml, without importing torch or the grader."""
    code = ("import sys; from autograder import assignment, nbgrader_course as n; "
            "a = assignment.load('basic_prompting'); text = n.points_notebook_text(a); "
            "assert 'torch' not in sys.modules and 'autograder.grading' not in sys.modules; "
            "import tomllib; wanted = tomllib.loads((a.suite_dir / 'assignment.toml').read_text())['points']; "
            "assert a.points == wanted and all(f'\"points\": {v}' in text for v in wanted.values()), text; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr


def test_sync_on_config_load_is_quiet_idempotent_and_never_raises(tmp_path, capsys):
    assignment_dir = tmp_path / "assignment"
    shutil.copytree(BASIC.student_dir, assignment_dir)
    for clutter in (".venv/lib/big.so", "__pycache__/decoding.cpython-311.pyc", ".ipynb_checkpoints/x.ipynb"):
        (assignment_dir / clutter).parent.mkdir(parents=True, exist_ok=True)
        (assignment_dir / clutter).write_text("clutter")
    course = tmp_path / "course"
    copied = dataclasses.replace(BASIC, student_dir=assignment_dir)
    assert nbgrader_course.sync_on_config_load(course, [copied])
    assert "created" in capsys.readouterr().err
    source = nbgrader_course.source_dir(course, BASIC)
    assert not any(nbgrader_course.is_clutter(p.relative_to(source)) for p in source.rglob("*"))
    assert not (source / "solutions").exists() and (source / "decoding.py").read_bytes() == (assignment_dir / "decoding.py").read_bytes()
    before = {p: p.stat().st_mtime_ns for p in source.rglob("*")}
    assert nbgrader_course.sync_on_config_load(course, [copied]) == []
    assert capsys.readouterr().err == ""
    assert {p: p.stat().st_mtime_ns for p in source.rglob("*")} == before
    (assignment_dir / "README.md").write_text("changed")
    (course / "release" / ASSIGNMENT).mkdir(parents=True)
    assert nbgrader_course.sync_on_config_load(course, [copied]) == ["differs: README.md"]
    assert "--force" in capsys.readouterr().err
    # a missing assignment folder: a warning, never an exception
    assert nbgrader_course.sync_on_config_load(tmp_path / "other", [dataclasses.replace(BASIC, student_dir=tmp_path / "missing")]) == []
    assert "warning" in capsys.readouterr().err


def test_release_holds_no_reference_and_no_hidden_test(course):
    released = texts(course["course"] / "release" / ASSIGNMENT)
    assert {"decoding.py", "decoding_points.ipynb"} <= {p.name for p in released}
    fetched = texts(course["root"] / "home" / "bo" / ASSIGNMENT)
    outbound = texts(course["exchange"] / "test-course" / "outbound")
    for path, text in {**released, **fetched, **outbound}.items():
        assert REFERENCE_MARKER not in text and not HIDDEN_TEST.search(text), path


def test_export_has_our_scores(course, buggy_graded_directly):
    with open(course["course"] / "grades.csv", newline="") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    assert set(rows) == set(STUDENTS)
    for row in rows.values():
        assert float(row["max_score"]) == pytest.approx(sum(POINTS.values()))
        for column in ("raw_score", "score", "late_submission_penalty"):  # cents, never 84.46600000000001
            assert re.fullmatch(r"\d+(\.\d{1,2})?", row[column]), (column, row[column])
    assert float(rows["ada"]["score"]) == pytest.approx(100)
    assert float(rows["bo"]["score"]) == 0
    assert float(rows["dee"]["score"]) == 0
    # The buggy student: the partial score the grader gives that file when run directly,
    # which loses points in exactly the functions expected.json names, and only there.
    wrong = set(json.loads((BUGGY / "expected.json").read_text())["wrong"])
    by_function = direct_function_scores(buggy_graded_directly)
    assert {f for f, score in by_function.items() if score < POINTS[f] - 1e-9} == wrong
    expected = sum(POINTS.values()) - sum(POINTS[f] - by_function[f] for f in wrong)
    assert expected == pytest.approx(buggy_graded_directly.score, abs=1e-3) and 0 < expected < 100
    assert float(rows["cy"]["score"]) == pytest.approx(expected, abs=1e-3)
    # and the gradebook's per-function points are the direct ones
    results = json.loads((course["course"] / "grading-output" / ASSIGNMENT / "cy" / "results.json").read_text())
    assert nbgrader_course.function_scores(results, POINTS) == pytest.approx(by_function, abs=1e-3)


def test_gradebook_has_points_and_comments_per_function(course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course['course'] / 'gradebook.db'}") as gb:
        for function, points in POINTS.items():
            name = nbgrader_course.cell_name(BASIC, function)
            grade = gb.find_grade(name, nbgrader_course.points_notebook(BASIC), ASSIGNMENT, "cy")
            assert grade.max_score == points and not grade.needs_manual_grade
            comment = gb.find_comment(name, nbgrader_course.points_notebook(BASIC), ASSIGNMENT, "cy").comment
            assert ("All tests passed." in comment) == (function != "top_p_filter")
        crashed = gb.find_comment(nbgrader_course.cell_name(BASIC, "softmax"), nbgrader_course.points_notebook(BASIC), ASSIGNMENT, "dee").comment
        assert "could not be imported" in crashed


def _shown(score: float) -> set[str]:
    """How nbgrader's feedback template may print `score` (Jinja's round(2) of a value we
    stored rounded to 4 places)."""
    return {f"Score: {round(score + delta, 2)} / " for delta in (-1e-3, 0, 1e-3)}


def test_feedback_is_ours_and_hides_the_grader(course, buggy_graded_directly):
    feedback = course["course"] / "feedback"
    for student in STUDENTS:
        folder = feedback / student / ASSIGNMENT
        assert (folder / "decoding_points.html").is_file() and (folder / nbgrader_course.feedback_html_name(BASIC)).is_file()
        for path, text in texts(folder, (".html",)).items():
            assert REFERENCE_MARKER not in text and "grading.student(" not in text and "def test_" not in text, path
        if student != "ada":  # ada handed in the reference, so her own decoding.py holds it
            for path, text in texts(folder).items():
                assert REFERENCE_MARKER not in text, path
    cy = (feedback / "cy" / ASSIGNMENT / "decoding_points.html").read_text()
    top_p = direct_function_scores(buggy_graded_directly)["top_p_filter"]
    assert any(f"{shown}20.0" in cy for shown in _shown(top_p)), "top_p_filter's score in cy's feedback"
    assert any(f"{shown}100.0" in cy for shown in _shown(buggy_graded_directly.score)), "cy's total in the feedback"
    assert "top_p_filter" in cy and "Expected:" in cy and "Got:" in cy
    dee = (feedback / "dee" / ASSIGNMENT / "decoding_points.html").read_text()
    assert "could not be imported" in dee
    # what the crashing student printed is shown as text, never as markup
    for page in (dee, (feedback / "dee" / ASSIGNMENT / nbgrader_course.feedback_html_name(BASIC)).read_text()):
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(1)" in page


def test_student_fetches_the_feedback(course):
    fetched = list((course["root"] / "home" / "cy" / ASSIGNMENT / "feedback").rglob("decoding_points.html"))
    assert len(fetched) == 1 and "top_p_filter" in fetched[0].read_text()


def test_rerun_skips_unchanged_and_regrades_one_student(course):
    """A second run grades nobody again; `--student bo --regrade` grades only bo."""
    command = [sys.executable, "-m", "autograder.nbgrader_course", "autograde", "--course", str(course["course"]),
               "--model", "tiny-qwen3", "--no-feedback"]
    again = subprocess.run(command, cwd=REPO, env=course["env"], capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("not regraded") == len(STUDENTS)
    one = subprocess.run([*command, "--student", "bo", "--regrade"], cwd=REPO, env=course["env"], capture_output=True, text=True, timeout=900)
    assert one.returncode == 0, one.stderr
    assert "bo: 0 / 100" in one.stdout and "ada:" not in one.stdout and "not regraded" not in one.stdout


def _gradebook_scores(course_dir: Path) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gb:
        return {s.student.id: round(s.score, 2) for s in gb.assignment_submissions(ASSIGNMENT)}


def test_sharded_autograde_leaves_the_gradebook_to_the_merge(course, tmp_path):
    """`nbgrader-autograde --shard I/2` grades into its own folder and never writes the
    gradebook; `merge --nbgrader` alone writes it: the same scores as one unsharded run."""
    from nbgrader.api import Gradebook

    copy = tmp_path / "course"
    shutil.copytree(course["course"], copy, symlinks=True)
    (tmp_path / "autograder").symlink_to(REPO / "autograder", target_is_directory=True)  # as the fixture's layout
    shutil.rmtree(copy / "grading-output")
    shutil.rmtree(copy / "autograded", ignore_errors=True)
    with Gradebook(f"sqlite:///{copy / 'gradebook.db'}") as gb:  # as if never graded
        for submission in gb.assignment_submissions(ASSIGNMENT):
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    grade.manual_score = None
        gb.db.commit()
    cleared = (copy / "gradebook.db").read_bytes()
    shards = [tmp_path / f"shard{i}" for i in range(2)]
    for index, out in enumerate(shards):
        graded = subprocess.run([sys.executable, "-m", "autograder", "nbgrader-autograde", ASSIGNMENT, "--course", str(copy),
                                 "--model", "tiny-qwen3", "--shard", f"{index}/2", "--out", str(out)],
                                cwd=REPO, env=course["env"], capture_output=True, text=True, timeout=900)
        assert graded.returncode == 0, graded.stdout + graded.stderr
        assert (copy / "gradebook.db").read_bytes() == cleared  # a shard never writes it
    assert not (copy / "grading-output").exists()
    merged = subprocess.run([sys.executable, "-m", "autograder", "merge", "--nbgrader", str(copy), *map(str, shards)],
                            cwd=REPO, env=course["env"], capture_output=True, text=True, timeout=900)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert "Loading" not in merged.stdout  # no model: the shards' results only
    assert _gradebook_scores(copy) == _gradebook_scores(course["course"])
    assert all((copy / "feedback" / s / ASSIGNMENT).is_dir() for s in STUDENTS)
    # a missing shard: refused, the gradebook untouched
    before = (copy / "gradebook.db").read_bytes()
    refused = subprocess.run([sys.executable, "-m", "autograder", "merge", "--nbgrader", str(copy), str(shards[0])],
                             cwd=REPO, env=course["env"], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "shard 1/2 is missing" in " ".join(refused.stderr.split())
    assert (copy / "gradebook.db").read_bytes() == before
