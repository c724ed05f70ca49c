"""Self-test of the grader on tiny-qwen3: the reference earns 100, the skeleton 0, each
buggy submission loses points in exactly the function it breaks, and correct variants
written differently earn 100."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from autograder import assignment, report
from autograder.grading import POINTS, Grader

SUBMISSIONS = Path(__file__).parent / "submissions"
CASES = sorted(p.name for p in SUBMISSIONS.iterdir() if (p / "expected.json").is_file())


@pytest.fixture(scope="module")
def grader():
    with Grader("tiny-qwen3") as grader:
        yield grader


def _submission(tmp_path: Path, source: Path) -> Path:
    folder = tmp_path / source.parent.name
    folder.mkdir()
    shutil.copy(source, folder / "decoding.py")
    return folder


def test_reference_earns_full_marks(grader, tmp_path):
    result = grader.grade(_submission(tmp_path, assignment.REFERENCE_PATH))
    assert result.internal_errors == []
    failed = {t.name: t.output for t in result.tests if t.status != "passed"}
    assert failed == {}
    assert result.score == pytest.approx(100)
    assert result.by_function() == {name: (points, points) for name, points in POINTS.items()}


def test_skeleton_earns_nothing_and_says_why(grader, tmp_path):
    result = grader.grade(_submission(tmp_path, assignment.SKELETON_PATH))
    assert result.score == 0 and result.max_score == pytest.approx(100)
    assert all("NotImplementedError" in t.output for t in result.tests)


def test_there_are_enough_self_test_submissions():
    expected = [json.loads((SUBMISSIONS / c / "expected.json").read_text()) for c in CASES]
    assert sum(1 for e in expected if e["wrong"]) >= 10
    assert sum(1 for e in expected if not e["wrong"]) >= 5


@pytest.mark.parametrize("case", CASES)
def test_points_are_lost_exactly_where_the_bug_is(grader, case):
    expected = json.loads((SUBMISSIONS / case / "expected.json").read_text())
    result = grader.grade(SUBMISSIONS / case)
    assert result.internal_errors == []
    lost = {name for name, (score, maximum) in result.by_function().items() if score < maximum - 1e-9}
    details = {t.name: t.output for t in result.tests if t.status != "passed"}
    assert lost == set(expected["wrong"]), details
    for name in expected["wrong"]:
        assert result.by_function()[name][0] < POINTS[name], "a buggy function keeps all its points"
    assert all(t.output for t in result.tests if t.status != "passed"), "every failure explains itself"


def test_grading_twice_gives_identical_results(grader):
    case = next(c for c in CASES if json.loads((SUBMISSIONS / c / "expected.json").read_text())["wrong"])
    first, second = grader.grade(SUBMISSIONS / case), grader.grade(SUBMISSIONS / case)
    strip = lambda r: [(t.name, t.score, t.status, t.output) for t in r.tests]  # noqa: E731
    assert strip(first) == strip(second)


BROKEN = {
    "syntax_error": "def softmax(scores, base=2.718, dim=-1)\n    return scores\n",
    "exit_at_import": "import sys\nsys.exit(3)\n",
    "os_exit_at_import": "import os\nos._exit(0)\n",
    "raises_at_import": "raise RuntimeError('oops at import')\n",
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_submission_that_cannot_import_gets_zero_with_the_error(grader, tmp_path, kind):
    folder = tmp_path / kind
    folder.mkdir()
    (folder / "decoding.py").write_text(BROKEN[kind])
    result = grader.grade(folder)
    assert result.score == 0
    assert not result.import_report["ok"]
    assert "could not be imported" in report.summary_text(result)
    assert all("could not be imported" in t.output for t in result.tests)


def test_missing_function_costs_only_that_function(grader, tmp_path):
    source = assignment.REFERENCE_PATH.read_text().replace("def truncate_at_stop(", "def truncate_at_stops(")
    folder = tmp_path / "renamed"
    folder.mkdir()
    (folder / "decoding.py").write_text(source)
    result = grader.grade(folder)
    scores = result.by_function()
    assert scores["truncate_at_stop"][0] == 0
    assert all(scores[name][0] == points for name, points in POINTS.items() if name != "truncate_at_stop")
    assert "no function named truncate_at_stop" in next(t.output for t in result.tests if t.function == "truncate_at_stop")


def test_a_crash_or_timeout_costs_only_the_tests_it_hit(grader, tmp_path):
    source = assignment.REFERENCE_PATH.read_text()
    source = source.replace('    """The text before the earliest occurrence of any stop sequence."""\n',
                            '    """The text before the earliest occurrence of any stop sequence."""\n'
                            '    if text.startswith("\\n\\n"):\n        import os; os._exit(1)\n'
                            '    if text == "END":\n        while True: pass\n')
    folder = tmp_path / "crashy"
    folder.mkdir()
    (folder / "decoding.py").write_text(source)
    from autograder.sandbox.client import Limits

    grader.limits, saved = Limits(test_seconds=10), grader.limits
    try:
        result = grader.grade(folder)
    finally:
        grader.limits = saved
    failed = {t.name: t.output for t in result.tests if t.status != "passed"}
    assert set(failed) == {"Cuts before the earliest stop sequence [stop at position 0]",
                           "Cuts before the earliest stop sequence [whole text is a stop]"}
    assert "exited with code 1" in failed["Cuts before the earliest stop sequence [stop at position 0]"]
    assert "ran out of time" in failed["Cuts before the earliest stop sequence [whole text is a stop]"]
    assert result.score == pytest.approx(100 - 2 * POINTS["truncate_at_stop"] / 10.5)
