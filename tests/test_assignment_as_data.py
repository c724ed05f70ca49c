"""An assignment is data: a throwaway third assignment, written into a temporary folder
(one function, one hidden test, one public test) without touching any file under
autograder/, is graded by `grade-all`, `nbgrader-autograde` and a Gradescope bundle.
Two assignments graded in one `grade-all` run keep their results apart."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autograder import assignment

REPO = Path(__file__).resolve().parent.parent

DESCRIPTOR = """\
# A throwaway assignment: one function.
name = "shouting"
title = "Shouting: upper case and an exclamation mark"
submission = "echo.py"
student_folder = "../student"
reference = "../reference/echo.py"

[points]
shout = 10
"""
SKELETON = '''"""Implement shout."""


def shout(text: str) -> str:
    """`text` in upper case, then "!"."""
    raise NotImplementedError("shout")
'''
REFERENCE = 'def shout(text):\n    return text.upper() + "!"\n'
WRONG = 'def shout(text):\n    return text + "!"\n'
PUBLIC_TEST = 'import echo\n\n\ndef test_shout_hi():\n    assert echo.shout("hi") == "HI!"\n'
HIDDEN_TEST = '''\
import pytest


@pytest.mark.grades("shout", weight=2)
@pytest.mark.parametrize("text", ["hello", "Grading is data"])
def test_shouts_like_the_reference(grading, text):
    """Upper case, then an exclamation mark"""
    expected = grading.ref("shout", text)
    got = grading.student("shout", text)
    assert got == expected, f"Called:   shout({text!r})\\nExpected: {expected!r}\\nGot:      {got!r}"


@pytest.mark.grades("shout", weight=1, kind="check", group="public")
def test_empty_text(grading):
    """The empty text gives just the exclamation mark"""
    assert grading.student("shout", "") == grading.ref("shout", "")
'''
CONFTEST = '''\
import pytest


@pytest.fixture
def grading(request):
    return request.config._autograder_session
'''
PYTEST_INI = "[pytest]\nmarkers =\n    grades(function, weight=1): the function a hidden test grades\npython_files = test_*.py\n"


@pytest.fixture(scope="module")
def third(tmp_path_factory) -> Path:
    """The third assignment's folder: suite/ (with assignment.toml), student/, reference/."""
    root = tmp_path_factory.mktemp("third-assignment")
    files = {"suite/assignment.toml": DESCRIPTOR, "suite/test_shout.py": HIDDEN_TEST, "suite/conftest.py": CONFTEST,
             "suite/pytest.ini": PYTEST_INI, "student/echo.py": SKELETON, "student/test_public.py": PUBLIC_TEST,
             "reference/echo.py": REFERENCE}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def untouched_engine() -> str:
    """What git says about autograder/: the test must leave it as it found it."""
    return subprocess.run(["git", "status", "--porcelain", "--", "autograder"], cwd=REPO, capture_output=True,
                          text=True).stdout


def cli(*args, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)


def grades(path: Path) -> dict[str, dict]:
    with open(path, newline="") as handle:
        return {row["student"]: row for row in csv.DictReader(handle)}


def test_the_descriptor_is_read_and_checked(third, tmp_path):
    loaded = assignment.load(third / "suite")
    assert (loaded.name, loaded.submission_file, loaded.contract, loaded.module_name) == ("shouting", "echo.py", ("shout",), "echo")
    assert loaded.reference_path == third / "reference" / "echo.py" and loaded.skeleton_path == third / "student" / "echo.py"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "assignment.toml").write_text(DESCRIPTOR.replace("shout = 10", "shout = -1"))
    with pytest.raises(assignment.AssignmentError, match="positive number of points"):
        assignment.load(broken)
    with pytest.raises(assignment.AssignmentError, match="no assignment called 'nope'.*basic_prompting"):
        assignment.load("nope")


def test_its_public_test_fails_on_the_skeleton_and_passes_on_the_reference(third, tmp_path):
    for source, wanted in ((SKELETON, 1), (REFERENCE, 0)):
        folder = tmp_path / f"student-{wanted}"
        folder.mkdir()
        (folder / "echo.py").write_text(source)
        (folder / "test_public.py").write_text(PUBLIC_TEST)
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)], cwd=folder,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == wanted, done.stdout


def test_grade_all_grades_a_third_assignment_from_a_folder_of_its_own(third, tmp_path):
    before = untouched_engine()
    klass = tmp_path / "class"
    thief = (f"import glob\nfor p in glob.glob({str(third / 'suite')!r} + '/*') + glob.glob({str(third / 'reference')!r} + '/*'):\n"
             f"    try:\n        print('READ', p, open(p).read()[:20])\n    except OSError:\n        pass\n" + REFERENCE)
    for student, source in {"alice": REFERENCE, "bob": WRONG, "mallory": thief}.items():
        (klass / student).mkdir(parents=True)
        (klass / student / "echo.py").write_text(source)
    (klass / "carl").mkdir()
    (klass / "carl" / "decoding.py").write_text(REFERENCE)  # the other assignment's file: not this one's
    out = tmp_path / "out"
    done = cli("grade-all", klass, "--assignment", third / "suite", "--model", "tiny-qwen3", "--out", out)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = grades(out / "grades.csv")
    assert list(next(iter(rows.values())))[:4] == ["student", "total", "shout", "status"]
    assert float(rows["alice"]["total"]) == pytest.approx(10) and float(rows["mallory"]["total"]) == pytest.approx(10)
    assert float(rows["bob"]["total"]) == pytest.approx(0)  # the check pays only with the main tests
    assert rows["carl"]["total"] == "" and rows["carl"]["status"].startswith("not submitted") and "echo.py" in rows["carl"]["status"]
    feedback = (out / "bob" / "feedback.md").read_text()
    assert "shout('hello')" in feedback and "'HELLO!'" in feedback
    stolen = json.loads((out / "mallory" / "results.json").read_text())
    assert "READ" not in json.dumps(stolen) and "READ" not in (out / "mallory" / "feedback.md").read_text()
    assert untouched_engine() == before


def test_a_suite_that_does_not_collect_is_a_grader_error_not_a_ctrl_c(third, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(third, broken)
    (broken / "suite" / "test_shout.py").write_text(HIDDEN_TEST + "\ndef oops(:\n")
    klass = tmp_path / "class"
    (klass / "ann").mkdir(parents=True)
    (klass / "ann" / "echo.py").write_text(REFERENCE)
    done = cli("grade-all", klass, "--assignment", broken / "suite", "--model", "tiny-qwen3", "--out", tmp_path / "out")
    assert done.returncode == 3, done.stdout + done.stderr  # a grader error, graded again on the next run
    row = grades(tmp_path / "out" / "grades.csv")["ann"]
    assert row["status"].startswith("grader error") and "could not be collected" in row["status"]
    assert "SyntaxError" in (tmp_path / "out" / "ann" / "grader-error.txt").read_text()
    prepared = cli("prepare", "--assignment", broken / "suite", "--model", "tiny-qwen3")
    assert prepared.returncode == 3 and "could not be collected" in prepared.stderr, prepared.stdout + prepared.stderr


def test_two_assignments_in_one_grade_all_run_keep_apart(third, tmp_path):
    klass = tmp_path / "class"
    (klass / "ada").mkdir(parents=True)
    (klass / "ada" / "echo.py").write_text(REFERENCE)
    (klass / "ada" / "decoding.py").write_text((REPO / "assignments" / "basic_prompting" / "decoding.py").read_text())
    out = tmp_path / "out"
    done = cli("grade-all", klass, "--assignment", "basic_prompting", "--assignment", third / "suite",
               "--model", "tiny-qwen3", "--out", out)
    assert done.returncode == 0, done.stdout + done.stderr
    basic, shouting = grades(out / "basic_prompting" / "grades.csv"), grades(out / "shouting" / "grades.csv")
    assert float(basic["ada"]["total"]) == pytest.approx(0)  # the skeleton
    assert float(shouting["ada"]["total"]) == pytest.approx(10)
    assert "softmax" in basic["ada"] and "softmax" not in shouting["ada"] and "shout" not in basic["ada"]
    assert json.loads((out / "shouting" / "ada" / "results.json").read_text())["extra_data"]["metadata"]["assignment"] == "shouting"


def test_a_gradescope_bundle_grades_the_third_assignment(third, tmp_path):
    from autograder import gradescope

    from .test_gradescope import gradescope_root, run_autograder

    bundle = gradescope.build_bundle(tmp_path / "shouting.zip", "tiny-qwen3", assignment=third / "suite")
    import zipfile

    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        info = json.loads(archive.read("bundle.json"))
    assert info["assignment_name"] == "shouting" and info["submission_file"] == "echo.py"
    assert {"external-assignment/suite/assignment.toml", "external-assignment/suite/test_shout.py",
            "external-assignment/reference/echo.py", "external-assignment/student/echo.py"} <= names
    assert not any(n.startswith("solutions/") for n in names)  # no other assignment's reference
    for source, score in ((REFERENCE, 10), (WRONG, 0)):
        root = gradescope_root(tmp_path / f"run-{score}", bundle, None)
        (root / "submission" / "echo.py").write_text(source)
        data, _ = run_autograder(root)
        assert data["score"] == pytest.approx(score) and {t["tags"][0] for t in data["tests"]} == {"shout"}
    root = gradescope_root(tmp_path / "run-none", bundle, None)
    (root / "submission" / "decoding.py").write_text(REFERENCE)
    data, _ = run_autograder(root)
    assert "echo.py" in data["output"] and data["tests"] == []


def test_nbgrader_autograde_grades_the_third_assignment(third, tmp_path):
    from .test_nbgrader import nbgrader, student_env

    course = tmp_path / "course"
    course.mkdir()
    (course / "nbgrader_config.py").write_text((REPO / "course" / "nbgrader_config.py").read_text())
    (tmp_path / "autograder").symlink_to(REPO / "autograder", target_is_directory=True)
    exchange = tmp_path / "exchange"
    exchange.mkdir()
    exchange.chmod(0o777)
    env = dict(os.environ, NBGRADER_EXCHANGE=str(exchange), NBGRADER_COURSE_ID="third", JUPYTER_CONFIG_DIR=str(tmp_path / "jc"),
               JUPYTER_DATA_DIR=str(tmp_path / "jd"), PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    flags = (f"--Exchange.root={exchange}", "--CourseDirectory.course_id=third")
    synced = cli("nbgrader-sync", "--assignment", third / "suite", "--course", course, env=env, timeout=300)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert (course / "source" / "shouting" / "echo_points.ipynb").is_file()
    for student in ("ann", "ben"):
        nbgrader("db", "student", "add", student, cwd=course, env=env)
    nbgrader("generate_assignment", "shouting", cwd=course, env=env)
    nbgrader("release_assignment", "shouting", cwd=course, env=env)
    for student, source in (("ann", REFERENCE), ("ben", WRONG)):
        home = tmp_path / "home" / student
        home.mkdir(parents=True)
        nbgrader("fetch_assignment", "shouting", *flags, cwd=home, env=student_env(env, home))
        assert "NotImplementedError" in (home / "shouting" / "echo.py").read_text()  # the skeleton, released
        (home / "shouting" / "echo.py").write_text(source)
        nbgrader("submit", "shouting", f"--student={student}", *flags, cwd=home, env=student_env(env, home))
    nbgrader("collect", "shouting", cwd=course, env=env)
    graded = cli("nbgrader-autograde", third / "suite", "--course", course, "--model", "tiny-qwen3", env=env)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "third") as gb:
        scores = {s: gb.find_submission("shouting", s).score for s in ("ann", "ben")}
    assert scores == {"ann": pytest.approx(10), "ben": pytest.approx(0)}
    feedback = textwrap.dedent((course / "grading-output" / "shouting" / "ben" / "feedback.md").read_text())
    assert "shout('hello')" in feedback
