"""Ctrl-C, SIGTERM and SIGKILL on a running `grade-all` and `nbgrader-autograde`: every
grade recorded afterwards is true (the interrupted student is not recorded, never a 0),
nothing of the grader keeps running, and a rerun heals the rest."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


from autograder.assignment import load as _load_assignment

BASIC = _load_assignment("basic_prompting")  # the assignment these tests grade

REPO = Path(__file__).resolve().parent.parent
REFERENCE = BASIC.reference_path.read_text()
MARKER = '    """The text before the earliest occurrence of any stop sequence."""\n'
# Correct, but one hidden test takes 3 s: the signal arrives while this student is graded.
SLOW = REFERENCE.replace(MARKER, MARKER + '    if text == "END":\n        import time; time.sleep(3)\n')
STUDENTS = {"s1": REFERENCE, "s2": SLOW, "s3": REFERENCE}
SIGNALS = {"SIGINT": (signal.SIGINT, 130), "SIGTERM": (signal.SIGTERM, 143), "SIGKILL": (signal.SIGKILL, -signal.SIGKILL)}


def ours(pid: int) -> list[int]:
    """Live processes the grader `pid` started: the model process and every worker forked
    from it carry `--parent-pid <pid>` in their command line."""
    needle = f"--parent-pid\0{pid}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes() and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def start(command: list[str], env: dict) -> subprocess.Popen:
    # Its own process group, as a shell gives a foreground job: Ctrl-C reaches the whole group.
    return subprocess.Popen([sys.executable, "-m", *command], cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def interrupt(process: subprocess.Popen, started_grading: Path, number: int) -> tuple[int, str]:
    """Send `number` once `started_grading` exists (s1 is done, s2 is being graded)."""
    deadline = time.monotonic() + 300
    while not started_grading.exists():
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, "the first student was never graded"
        time.sleep(0.1)
    time.sleep(1.5)
    if number == signal.SIGINT:
        os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    else:
        process.send_signal(number)
    output, _ = process.communicate(timeout=120)
    return process.returncode, output


def assert_nothing_left_running(pid: int) -> None:
    deadline = time.monotonic() + 15
    while ours(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ours(pid) == [], f"processes of the grader {pid} still running"


def our_scratch(folder: Path) -> list[str]:
    """The grader's temporary folders in `folder` (torch keeps a cache of its own there)."""
    return sorted(p.name for p in folder.glob("autograder-*"))


def scores(out: Path) -> dict[str, float]:
    found = {}
    for student in STUDENTS:
        path = out / student / "results.json"
        if path.exists():
            found[student] = json.loads(path.read_text())["score"]
    return found


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, PYTHONUNBUFFERED="1", TMPDIR=str(tmp_path / "tmp"))


@pytest.fixture
def scratch_root(env):
    Path(env["TMPDIR"]).mkdir()
    return Path(env["TMPDIR"])


@pytest.mark.parametrize("name", list(SIGNALS))
def test_a_signal_during_grade_all_records_only_true_grades(tmp_path, env, scratch_root, name):
    number, expected_code = SIGNALS[name]
    klass = tmp_path / "class"
    for student, source in STUDENTS.items():
        (klass / student).mkdir(parents=True)
        (klass / student / "decoding.py").write_text(source)
    out = tmp_path / "out"
    command = ["autograder", "grade-all", str(klass), "--model", "tiny-qwen3", "--out", str(out)]
    process = start(command, env)
    code, output = interrupt(process, out / "s1" / "results.json", number)
    assert code == expected_code, output
    assert_nothing_left_running(process.pid)
    assert scores(out) == {"s1": 100}, output  # s2 was being graded: not recorded at all
    if number != signal.SIGKILL:
        assert "interrupted" in output and "s2" not in (out / "grades.csv").read_text()
        assert our_scratch(scratch_root) == [], "scratch folders left behind"
    rerun = subprocess.run([sys.executable, "-m", *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert scores(out) == {student: 100 for student in STUDENTS}
    assert our_scratch(scratch_root) == [], "scratch folders left behind, also of the killed run"


@pytest.fixture(scope="module")
def course_template(tmp_path_factory):
    """A course whose gradebook knows the assignment (as `generate_assignment` leaves it)."""
    root = tmp_path_factory.mktemp("signals-course")
    course = root / "course"
    course.mkdir()
    shutil.copy(REPO / "course" / "nbgrader_config.py", course)
    (root / "autograder").symlink_to(REPO / "autograder", target_is_directory=True)
    env = dict(os.environ, NBGRADER_COURSE_ID="signals-course", JUPYTER_CONFIG_DIR=str(root / "jupyter-config"),
               JUPYTER_DATA_DIR=str(root / "jupyter-data"),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    made = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", BASIC.name], cwd=course,
                          env=env, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    for student, source in STUDENTS.items():  # as `nbgrader collect` lays them out
        folder = course / "submitted" / student / BASIC.name
        shutil.copytree(course / "release" / BASIC.name, folder)
        (folder / "decoding.py").write_text(source)
        (folder / "timestamp.txt").write_text("2026-11-30 12:00:00.000000 UTC\n")
    return root, env


def gradebook_scores(course: Path) -> dict[str, float]:
    from nbgrader.api import Gradebook, MissingEntry

    found = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "signals-course") as gb:
        for student in STUDENTS:
            try:
                submission = gb.find_submission(BASIC.name, student)
            except MissingEntry:
                continue
            found[student] = round(submission.score, 4)
    return found


@pytest.mark.parametrize("name", list(SIGNALS))
def test_a_signal_during_nbgrader_autograde_records_only_true_grades(tmp_path, course_template, scratch_root, env, name):
    number, expected_code = SIGNALS[name]
    template, course_env = course_template
    root = tmp_path / "copy"
    shutil.copytree(template, root, symlinks=True)
    course = root / "course"
    env = dict(course_env, PYTHONUNBUFFERED="1", TMPDIR=env["TMPDIR"])
    command = ["autograder", "nbgrader-autograde", BASIC.name, "--course", str(course), "--model", "tiny-qwen3",
               "--no-feedback"]
    process = start(command, env)
    out = course / "grading-output" / BASIC.name
    code, output = interrupt(process, out / "s1" / "results.json", number)
    assert code == expected_code, output
    assert_nothing_left_running(process.pid)
    assert gradebook_scores(course) == {"s1": 100}, output
    assert scores(out) == {"s1": 100}, output
    rerun = subprocess.run([sys.executable, "-m", *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert gradebook_scores(course) == {student: 100 for student in STUDENTS}
    assert our_scratch(scratch_root) == [], "scratch folders left behind"
