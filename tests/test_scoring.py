"""Argument checks and trivial edge cases pay only together with the main tests of their
function (`scoring.gate_checks`): a submission that implements nothing scores 0,
whatever it raises or echoes, and correct work keeps every point."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from autograder import grading
from autograder.grading import Grader
from autograder.scoring import CHECK, SUBSTANTIVE, gate_checks, round_points

from autograder.assignment import load as _load_assignment

BASIC = _load_assignment("basic_prompting")  # the assignment these tests grade
POINTS = BASIC.points

SUBMISSIONS = Path(__file__).parent / "submissions"
NOTHING = sorted(p.name for p in SUBMISSIONS.glob("implements_nothing_*") if (p / "expected.json").is_file())


def result(function: str, max_score: float, score: float | None = None, kind: str = SUBSTANTIVE,
           output: str = "") -> grading.TestResult:
    """A graded test: passed when `score` is its maximum (the default), else failed."""
    score = max_score if score is None else score
    test = grading.TestResult(name=f"{kind} test of {function}", function=function, max_score=max_score, score=score,
                              status="passed" if score == max_score else "failed", output=output)
    test.kind = kind  # (set this way, it also works before TestResult has the field)
    return test


def test_a_check_counts_as_much_as_the_main_tests_earned():
    main = [result("top_p_filter", 3.0), result("top_p_filter", 2.0, 0.0, output="wrong nucleus")]
    check = result("top_p_filter", 1.5, kind=CHECK)
    gate_checks(main + [check])
    assert check.score == pytest.approx(1.5 * 3 / 5)
    assert check.status == "partial"
    assert "60%" in check.output and "top_p_filter" in check.output
    assert [(t.score, t.status, t.output) for t in main] == [(3.0, "passed", ""), (0.0, "failed", "wrong nucleus")]


def test_a_check_earns_nothing_when_the_main_tests_earned_nothing():
    tests = [result("greedy_decode", 4.0, 0.0, output="wrong tokens"), result("greedy_decode", 1.0, kind=CHECK)]
    gate_checks(tests)
    check = tests[1]
    assert (check.score, check.status) == (0.0, "failed")
    assert "none of their points" in check.output and "greedy_decode" in check.output


def test_checks_keep_every_point_when_the_main_tests_all_pass():
    tests = [result("softmax", 2.5), result("softmax", 2.5), result("softmax", 0.3, kind=CHECK)]
    gate_checks(tests)
    assert [(t.score, t.status, t.output) for t in tests] == [(2.5, "passed", ""), (2.5, "passed", ""), (0.3, "passed", "")]


def test_each_function_is_gated_by_its_own_main_tests():
    tests = [result("softmax", 2.0), result("softmax", 1.0, kind=CHECK),
             result("truncate_at_stop", 2.0, 0.0, output="wrong"), result("truncate_at_stop", 1.0, kind=CHECK)]
    gate_checks(tests)
    assert [t.score for t in tests] == [2.0, 1.0, 0.0, 0.0]
    assert [t.status for t in tests] == ["passed", "passed", "failed", "failed"]


def test_a_failed_check_keeps_its_own_explanation():
    check = result("sample_decode", 0.5, 0.0, kind=CHECK, output="Expected: ValueError")
    tests = [result("sample_decode", 2.0, 1.0), check]
    gate_checks(tests)
    assert (check.score, check.status, check.output) == (0.0, "failed", "Expected: ValueError")


def test_checks_without_main_tests_earn_nothing():
    tests = [result("generate_text", 1.0, kind=CHECK)]
    gate_checks(tests)
    assert (tests[0].score, tests[0].status) == (0.0, "failed")


def test_percentages_never_round_to_all_or_nothing():
    shares = {}
    for earned in (996.0, 4.0, 1000 / 3):
        tests = [result("softmax", 1000.0, earned), result("softmax", 1.0, kind=CHECK)]
        gate_checks(tests)
        shares[earned] = tests[1].output
    assert "99.6%" in shares[996.0] and "0.4%" in shares[4.0] and "33%" in shares[1000 / 3]


# --- the hidden suite marks its checks ---------------------------------------------------


def _grades_markers() -> list[tuple[str, str, str, bool]]:
    """(file::test, function, kind, whether the test calls expect_value_error) per hidden test."""
    found = []
    for path in sorted(BASIC.suite_dir.glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
                continue
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "pytest.mark.grades":
                    kwargs = {k.arg: ast.literal_eval(k.value) for k in decorator.keywords}
                    calls = "expect_value_error" in ast.unparse(node)
                    found.append((f"{path.name}::{node.name}", ast.literal_eval(decorator.args[0]),
                                  kwargs.get("kind", SUBSTANTIVE), calls))
    return found


def test_every_argument_check_in_the_hidden_suite_is_marked_as_a_check():
    markers = _grades_markers()
    assert len(markers) > 20
    assert {kind for *_, kind, _ in markers} == {SUBSTANTIVE, CHECK}
    unmarked = [name for name, _, kind, calls in markers if calls and kind != CHECK]
    assert unmarked == []
    # and every function keeps main tests to pay its checks
    assert {function for _, function, kind, _ in markers if kind == SUBSTANTIVE} == set(POINTS)


# --- graded: nothing earns nothing, the reference still earns everything --------------


@pytest.fixture(scope="module")
def grader():
    with Grader("tiny-qwen3") as grader:
        yield grader


def test_there_are_implements_nothing_submissions():
    assert {"implements_nothing_raises_value_error", "implements_nothing_echoes_input",
            "implements_nothing_constants"} <= set(NOTHING)


@pytest.mark.parametrize("case", NOTHING)
def test_a_submission_that_implements_nothing_scores_zero(grader, case):
    result = grader.grade(SUBMISSIONS / case)
    assert result.internal_errors == []
    earning = {t.name: t.score for t in result.tests if t.score > 0}
    assert result.score == 0, earning
    # It did pass checks: they were gated, and each such test says why it earned nothing.
    gated = [t for t in result.tests if t.kind == CHECK and "only together with" in t.output]
    assert gated and all(t.status == "failed" for t in gated)


def test_the_reference_still_scores_full_marks(grader, tmp_path):
    folder = tmp_path / "reference"
    folder.mkdir()
    (folder / BASIC.submission_file).write_bytes(BASIC.reference_path.read_bytes())
    result = grader.grade(folder)
    assert result.internal_errors == []
    assert result.score == pytest.approx(100)
    assert all(t.status == "passed" and t.score == t.max_score for t in result.tests)
    assert any(t.kind == CHECK for t in result.tests)


# -- points in whole cents -------------------------------------------------------------


def cents(value: float) -> bool:
    return abs(value * 100 - round(value * 100)) < 1e-9


def test_rounded_points_add_up_exactly_to_the_functions_points():
    tests = [result("softmax", 15 / 7) for _ in range(7)] + [result("top_p_filter", 20 / 3, 0.0) for _ in range(3)]
    tests[0].score = tests[0].max_score * 0.4
    round_points(tests)
    assert all(cents(t.max_score) and cents(t.score) for t in tests)
    assert round(sum(t.max_score for t in tests if t.function == "softmax") * 100) == 1500
    assert round(sum(t.max_score for t in tests if t.function == "top_p_filter") * 100) == 2000
    assert tests[0].score == round(tests[0].max_score * 0.4, 2)
    assert all(t.score == 0 for t in tests if t.function == "top_p_filter")


def test_a_graded_submissions_points_are_whole_cents_that_add_up(grader):
    buggy = grader.grade(SUBMISSIONS / "top_p_off_by_one")
    assert all(cents(t.max_score) and cents(t.score) for t in buggy.tests)
    by_function = buggy.by_function()
    assert {name: maximum for name, (_, maximum) in by_function.items()} == POINTS
    assert buggy.score == round(sum(score for score, _ in by_function.values()), 2)
    assert repr(buggy.score) == repr(round(buggy.score, 2))  # no 84.46600000000001
