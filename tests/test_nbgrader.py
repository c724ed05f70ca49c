"""The nbgrader workflow end to end, with the real nbgrader CLI in a temporary course and exchange.

release -> fetch -> submit (four students) -> collect -> our autograde step -> feedback ->
export. The students: the reference (100), the untouched skeleton (0), a buggy top_p_filter
(partial), and one whose decoding.py prints HTML and calls os._exit(1) at import (0, and the
others are graded all the same).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import assignment, nbgrader_course
from autograder.grading import POINTS

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENT = assignment.ASSIGNMENT
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
    shutil.copy(REPO / "course" / "nbgrader_config.py", course)
    nbgrader_course.sync(course)  # the source as `sync` makes it from assignments/
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

    (root / "students.csv").write_text("id,first_name,last_name\n" + "".join(f"{s},{s.title()},Test\n" for s in STUDENTS))
    nbgrader("db", "student", "import", str(root / "students.csv"), cwd=course, env=env)
    nbgrader("generate_assignment", ASSIGNMENT, cwd=course, env=env)
    nbgrader("release_assignment", ASSIGNMENT, cwd=course, env=env)
    sources = {"reference": assignment.REFERENCE_PATH.read_text(), "skeleton": None,
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
    return {"root": root, "course": course, "exchange": exchange, "env": env, "graded": graded}


def test_release_holds_no_reference_and_no_hidden_test(course):
    released = texts(course["course"] / "release" / ASSIGNMENT)
    assert {"decoding.py", "decoding_points.ipynb"} <= {p.name for p in released}
    fetched = texts(course["root"] / "home" / "bo" / ASSIGNMENT)
    outbound = texts(course["exchange"] / "test-course" / "outbound")
    for path, text in {**released, **fetched, **outbound}.items():
        assert REFERENCE_MARKER not in text and not HIDDEN_TEST.search(text), path


def test_export_has_our_scores(course):
    with open(course["course"] / "grades.csv", newline="") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    assert set(rows) == set(STUDENTS)
    for row in rows.values():
        assert float(row["max_score"]) == pytest.approx(sum(POINTS.values()))
    assert float(rows["ada"]["score"]) == pytest.approx(100)
    assert float(rows["bo"]["score"]) == 0
    assert float(rows["dee"]["score"]) == 0
    # the buggy student loses points in the functions its bug touches, and only there
    results = json.loads((course["course"] / "grading-output" / ASSIGNMENT / "cy" / "results.json").read_text())
    assert float(rows["cy"]["score"]) == pytest.approx(results["score"], abs=1e-3)
    wrong = set(json.loads((BUGGY / "expected.json").read_text())["wrong"])
    by_function = nbgrader_course.function_scores(results)
    for function, points in POINTS.items():
        if function in wrong:
            assert by_function[function] < points, function
        else:
            assert by_function[function] == pytest.approx(points), function
    assert 0 < float(rows["cy"]["score"]) < 100


def test_gradebook_has_points_and_comments_per_function(course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course['course'] / 'gradebook.db'}") as gb:
        for function, points in POINTS.items():
            name = nbgrader_course.cell_name(function)
            grade = gb.find_grade(name, nbgrader_course.POINTS_NOTEBOOK, ASSIGNMENT, "cy")
            assert grade.max_score == points and not grade.needs_manual_grade
            comment = gb.find_comment(name, nbgrader_course.POINTS_NOTEBOOK, ASSIGNMENT, "cy").comment
            assert ("All tests passed." in comment) == (function != "top_p_filter")
        crashed = gb.find_comment(nbgrader_course.cell_name("softmax"), nbgrader_course.POINTS_NOTEBOOK, ASSIGNMENT, "dee").comment
        assert "could not be imported" in crashed


def test_feedback_is_ours_and_hides_the_grader(course):
    feedback = course["course"] / "feedback"
    for student in STUDENTS:
        folder = feedback / student / ASSIGNMENT
        assert (folder / "decoding_points.html").is_file() and (folder / nbgrader_course.FEEDBACK_HTML).is_file()
        for path, text in texts(folder, (".html",)).items():
            assert REFERENCE_MARKER not in text and "grading.student(" not in text and "def test_" not in text, path
        if student != "ada":  # ada handed in the reference, so her own decoding.py holds it
            for path, text in texts(folder).items():
                assert REFERENCE_MARKER not in text, path
    cy = (feedback / "cy" / ASSIGNMENT / "decoding_points.html").read_text()
    assert "Score: 7.38 / 20.0" in cy or re.search(r"Score: \d+\.\d+ / 20\.0", cy)
    assert "top_p_filter" in cy and "Expected:" in cy and "Got:" in cy
    dee = (feedback / "dee" / ASSIGNMENT / "decoding_points.html").read_text()
    assert "could not be imported" in dee
    # what the crashing student printed is shown as text, never as markup
    for page in (dee, (feedback / "dee" / ASSIGNMENT / nbgrader_course.FEEDBACK_HTML).read_text()):
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
