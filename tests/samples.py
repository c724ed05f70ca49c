"""The self-test samples in tests/submissions: which ones the variant draw can affect, and
the check every graded sample must pass (it loses points exactly where its expected.json
says, and every failure explains itself)."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

from autograder.assignment import load

BASIC = load("basic_prompting")
HELPERS = set(BASIC.helpers)
SAMPLES = Path(__file__).parent / "submissions"
PLAIN_CORRECT = SAMPLES / "variant_no_cache"  # what the other samples are copies of

# What some failures must tell the student (the first point of divergence, and why).
FEEDBACK = {
    "sample_ignores_top_p": ["nucleus of", "probability 0 after top-p"],
    "sample_uses_argmax": ["distribution to sample from there (t=", "a possible draw"],
    "greedy_first_position": ["first difference at new token 0 (sequence position", "model's top tokens there"],
    "generate_text_stop_per_token": ["the expected text ends after", "begins there"],
    "softmax_global_max": ["inf or nan"],
}


def all_samples() -> list[Path]:
    return sorted(p for p in SAMPLES.iterdir() if (p / "decoding.py").is_file() and (p / "expected.json").is_file())


def wrong(case: Path) -> set[str]:
    return set(json.loads((case / "expected.json").read_text())["wrong"])


def _decoding_code(source: Path) -> list[str]:
    """The module's top-level statements other than the pure helpers, imports and docstrings."""
    def kept(node: ast.stmt) -> bool:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            return False
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return False
        return not (isinstance(node, ast.FunctionDef) and node.name in HELPERS)
    return [ast.dump(node) for node in ast.parse(source.read_text()).body if kept(node)]


def draw_dependent(case: Path) -> bool:
    """Whether the variant a submission draws can change this sample's score.

    Only decoding functions' hidden tests draw their inputs (the pure helpers' keep fixed
    ones, see common.fixed_prompt), and while a decoding function is graded the student's
    helpers are answered by the reference. So a sample whose code differs from the plain
    correct one only in the pure helpers, imports and docstrings scores the same on every
    variant by construction. The plain correct one itself counts as draw-dependent."""
    return (case.resolve() == PLAIN_CORRECT.resolve()
            or _decoding_code(case / "decoding.py") != _decoding_code(PLAIN_CORRECT / "decoding.py"))


def assert_loses_exactly_where_expected(result, case: Path, context: str = "") -> None:
    """`result` (a SubmissionResult of `case`) loses points in exactly the functions its
    expected.json names, each of them loses some, nothing is a grader error, and every
    failure explains itself (with the texts FEEDBACK asks of that case)."""
    expected = wrong(case)
    assert result.internal_errors == [], context
    by_function = result.by_function()
    lost = {name for name, (score, maximum) in by_function.items() if score < maximum - 1e-9}
    details = {t.name: t.output for t in result.tests if t.status != "passed"}
    assert lost == expected, f"{context}{case.name} loses points in {sorted(lost)}, expected {sorted(expected)}: {details}"
    for name in expected:
        assert by_function[name][0] < BASIC.points[name], f"{context}a buggy function keeps all its points"
    assert all(t.output for t in result.tests if t.status != "passed"), f"{context}every failure explains itself"
    for needed in FEEDBACK.get(case.name, []):
        assert any(needed in output for output in details.values()), (context, needed, details)


# The fairness test's samples (tests/test_variant_fairness.py grades each on all 6
# variants: 47 s a sample here, so all 21 draw-dependent ones take 16 minutes). In the
# project's test run: every correct variant whose decoding code differs (fairness to
# correct work matters most), every sampling bug (the seeded and statistical tests are
# where the draw changed grades before), one bug of each other decoding function, and one
# sample that implements nothing: 13 samples, about 10 minutes. `scripts/fairness.sh`
# (AUTOGRADER_FAIRNESS=all) grades every draw-dependent sample: run it after changing how
# a hidden test draws its inputs. tests/test_grader.py grades the draw-dependent bugs left
# out here once each, as students submit them.
FAIRNESS_ENV = "AUTOGRADER_FAIRNESS"
FAIRNESS_BUGS_IN_THE_TEST_RUN = {"sample_ignores_generator", "sample_ignores_top_p", "sample_uses_argmax",
                                 "greedy_first_position", "generate_text_stop_per_token", "implements_nothing_constants"}


def fairness_samples(every: bool | None = None) -> list[Path]:
    """The samples the fairness test grades on every variant (see FAIRNESS_BUGS_IN_THE_TEST_RUN)."""
    every = os.environ.get(FAIRNESS_ENV) == "all" if every is None else every
    return [p for p in all_samples() if draw_dependent(p) and (every or not wrong(p) or p.name in FAIRNESS_BUGS_IN_THE_TEST_RUN)]
