"""The second assignment, few_shot_prompting, graded by the same engine: the reference
earns 100 on its hidden suite, the skeleton 0 with a reason, and each sample bug in
tests/submissions_few_shot_prompting/ loses points exactly in the function it breaks.
Its public tests fail on the skeleton and pass on the reference."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.assignment import load
from autograder.grading import Grader

FEW_SHOT = load("few_shot_prompting")
SUBMISSIONS = Path(__file__).parent / "submissions_few_shot_prompting"
CASES = sorted(p.name for p in SUBMISSIONS.iterdir() if (p / "expected.json").is_file())


@pytest.fixture(scope="module")
def grader():
    with Grader("tiny-qwen3", assignment=FEW_SHOT) as grader:
        yield grader


def _submission(tmp_path: Path, source: Path) -> Path:
    folder = tmp_path / source.parent.name
    folder.mkdir()
    shutil.copy(source, folder / FEW_SHOT.submission_file)
    return folder


def test_reference_earns_full_marks(grader, tmp_path):
    result = grader.grade(_submission(tmp_path, FEW_SHOT.reference_path))
    assert result.internal_errors == []
    assert {t.name: t.output for t in result.tests if t.status != "passed"} == {}
    assert result.by_function() == {name: (points, points) for name, points in FEW_SHOT.points.items()}
    assert result.metadata["assignment"] == "few_shot_prompting" and result.metadata["submission_file"] == "prompting.py"


def test_skeleton_earns_nothing_and_says_why(grader, tmp_path):
    result = grader.grade(_submission(tmp_path, FEW_SHOT.skeleton_path))
    assert result.score == 0 and result.max_score == pytest.approx(100)
    assert all("NotImplementedError" in t.output or "main tests" in t.output for t in result.tests), \
        [t.output for t in result.tests if "NotImplementedError" not in t.output]


@pytest.mark.parametrize("case", CASES)
def test_points_are_lost_exactly_where_the_bug_is(grader, case):
    expected = json.loads((SUBMISSIONS / case / "expected.json").read_text())
    result = grader.grade(SUBMISSIONS / case)
    assert result.internal_errors == []
    lost = {name for name, (score, maximum) in result.by_function().items() if score < maximum - 1e-9}
    assert lost == set(expected["wrong"]), {t.name: t.output for t in result.tests if t.status != "passed"}
    assert all(t.output for t in result.tests if t.status != "passed"), "every failure explains itself"


@pytest.mark.parametrize("source,fails", [("skeleton", True), ("reference", False)])
def test_public_tests_fail_on_the_skeleton_and_pass_on_the_reference(tmp_path, source, fails):
    folder = tmp_path / "student"
    shutil.copytree(FEW_SHOT.student_dir, folder, symlinks=False)  # what a student gets: real files
    if source == "reference":
        shutil.copy(FEW_SHOT.reference_path, folder / FEW_SHOT.submission_file)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x" if fails else "-q"],
                          cwd=folder, capture_output=True, text=True, timeout=600)
    assert (done.returncode != 0) == fails, done.stdout[-3000:]
    if fails:
        assert "few_shot_prompt" in done.stdout  # the first failure names the first function


@pytest.mark.real_model
def test_reference_earns_full_marks_on_the_real_model(real, tmp_path):
    """The hidden suite's tolerances and scripted checks hold on the real weights too."""
    from autograder import models

    with Grader(models.DEFAULT_MODEL, assignment=FEW_SHOT) as on_real:
        result = on_real.grade(_submission(tmp_path, FEW_SHOT.reference_path))
    assert {t.name: t.output for t in result.tests if t.status != "passed"} == {}
    assert result.score == pytest.approx(100)


def test_its_own_gradescope_bundle_grades_prompting_py(tmp_path):
    import zipfile

    from autograder import gradescope

    from .test_gradescope import gradescope_root, run_autograder

    bundle = gradescope.build_bundle(tmp_path / "few_shot.zip", "tiny-qwen3", assignment="few_shot_prompting")
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
    assert {"solutions/few_shot_prompting/prompting.py", "assignments/few_shot_prompting/course_model.py"} <= names
    assert not any(n.startswith("solutions/basic_prompting/") for n in names)  # only this assignment's reference
    root = gradescope_root(tmp_path, bundle, None)
    shutil.copy(FEW_SHOT.reference_path, root / "submission" / "prompting.py")
    data, _ = run_autograder(root)
    assert data["score"] == pytest.approx(100) and {t["tags"][0] for t in data["tests"]} == set(FEW_SHOT.points)


@pytest.mark.slow
@pytest.mark.parametrize("source", ["reference", "skeleton"])
def test_notebook_runs_headless(tmp_path, source):
    """The notebook runs top to bottom on tiny-qwen3 with the reference (a plot of the label
    probabilities included) and with the skeleton (it says what is missing, no traceback)."""
    from .test_student_side import images, run_notebook, text_outputs

    folder = tmp_path / "student"
    shutil.copytree(FEW_SHOT.student_dir, folder, symlinks=False)
    if source == "reference":
        shutil.copy(FEW_SHOT.reference_path, folder / FEW_SHOT.submission_file)
    nb, elapsed = run_notebook(folder, tmp_path, "few_shot_prompting.ipynb", "prompting")
    out = text_outputs(nb)
    assert "KERNEL CHECKS PASSED" in out and "Traceback" not in out, out[-3000:]
    if source == "reference":
        assert images(nb) >= 1, "the label-probability plot"
        assert elapsed < 180, f"the notebook took {elapsed:.0f} s on tiny-qwen3"
    else:
        assert "not implemented" in out
