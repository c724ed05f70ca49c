"""Fair hidden inputs: whatever variant of the hidden tests a submission draws, the same
bug loses the same points. Every sample submission in tests/submissions whose score can
depend on the draw (below) is graded on every variant (`Grader.grade(every_variant=i)`):
its score per function must be the same on all of them, and on each it must lose points
exactly in the functions its expected.json names. A test whose partial credit depends on the drawn prompt (an
off-by-one nucleus passes on some distributions, not others) fails here, naming the
function, the variants and what each test scored."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from autograder.assignment import load
from autograder.grading import Grader
from autograder.suites.basic_prompting import common

# Only decoding functions' hidden tests draw their inputs (the pure helpers' keep fixed
# ones, see common.fixed_prompt), and while a decoding function is graded the student's
# helpers are answered by the reference. So a sample whose code differs from the plain
# correct one (`variant_no_cache`, which the other samples are copies of) only in the
# pure helpers, imports and docstrings scores the same on every variant by construction:
# grading it six times would only cost CI minutes (all 33 samples on all variants,
# measured once: the helper-only ones were equal on every variant; 21 minutes in all).
# Every other sample is checked: each correct variant whose decoding code differs
# (fairness to correct work matters most), each decoding bug, the ones that implement
# nothing, and the plain correct one itself.
BASIC = load("basic_prompting")
HELPERS = set(BASIC.helpers)
SAMPLES = Path(__file__).parent / "submissions"
BASE = SAMPLES / "variant_no_cache" / "decoding.py"


def _decoding_code(source: Path) -> list[str]:
    """The module's top-level statements other than the pure helpers, imports and docstrings."""
    def kept(node: ast.stmt) -> bool:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            return False
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return False
        return not (isinstance(node, ast.FunctionDef) and node.name in HELPERS)
    return [ast.dump(node) for node in ast.parse(source.read_text()).body if kept(node)]


def _draw_dependent(case: Path) -> bool:
    return case.resolve() == BASE.parent.resolve() or _decoding_code(case / "decoding.py") != _decoding_code(BASE)


SUBMISSIONS = sorted(p for p in SAMPLES.iterdir()
                     if (p / "decoding.py").is_file() and (p / "expected.json").is_file() and _draw_dependent(p))


def test_the_helper_only_samples_are_recognised():
    """The rule above leaves out exactly the samples that change nothing but helpers."""
    left_out = {p.name for p in SAMPLES.iterdir() if (p / "expected.json").is_file()} - {p.name for p in SUBMISSIONS}
    assert {"softmax_ignores_base", "top_p_off_by_one", "stop_first_listed", "variant_powers_of_base"} <= left_out
    assert not left_out & {"variant_no_cache", "variant_kv_cache", "greedy_ignores_eos", "sample_uses_argmax",
                           "generate_text_stop_per_token", "implements_nothing_constants"}
    for name in left_out:
        wrong = set(json.loads((SAMPLES / name / "expected.json").read_text())["wrong"])
        assert wrong <= HELPERS, f"{name} loses points outside the helpers but is treated as helper-only"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A grader whose store holds the reference's answers for every variant: grading a
    variant then costs only the submission's own work."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTOGRADER_REFERENCE_STORE", str(tmp_path_factory.mktemp("store")))
        with Grader("tiny-qwen3") as grader:
            for result in grader.prepare():
                assert result.score == pytest.approx(100), "the reference must earn full marks on every variant"
            yield grader


@pytest.mark.parametrize("case", SUBMISSIONS, ids=[p.name for p in SUBMISSIONS])
def test_the_same_submission_scores_the_same_on_every_variant(prepared, case):
    results = [prepared.grade(case, every_variant=i) for i in range(common.VARIANTS)]
    scores = [r.by_function() for r in results]
    unfair = {name for name in scores[0] if len({s[name] for s in scores}) > 1}
    if unfair:
        lines = []
        for name in sorted(unfair):
            lines.append(f"{name}: " + ", ".join(f"variant {i}: {s[name][0]}" for i, s in enumerate(scores)))
            for i, result in enumerate(results):
                lost = [f"{t.name} {t.score:.2f}/{t.max_score:.2f}" for t in result.tests if t.function == name and t.score < t.max_score]
                lines.append(f"  variant {i} lost: {'; '.join(lost) or 'nothing'}")
        pytest.fail(f"{case.name} scores differently by variant:\n" + "\n".join(lines))
    wrong = set(json.loads((case / "expected.json").read_text())["wrong"])
    for i, score in enumerate(scores):
        lost = {name for name, (got, maximum) in score.items() if got < maximum - 1e-9}
        assert lost == wrong, f"variant {i}: {case.name} loses points in {sorted(lost)}, expected {sorted(wrong)}"
