"""Fair hidden inputs: whatever variant of the hidden tests a submission draws, the same
bug loses the same points. Every sample submission in tests/submissions whose score can
depend on the draw (below) is graded on every variant (`Grader.grade(every_variant=i)`):
its score per function must be the same on all of them, and on each it must lose points
exactly in the functions its expected.json names. A test whose partial credit depends on the drawn prompt (an
off-by-one nucleus passes on some distributions, not others) fails here, naming the
function, the variants and what each test scored."""

from __future__ import annotations

import pytest

from autograder.grading import Grader
from autograder.suites.basic_prompting import common
from tests.samples import (FAIRNESS_BUGS_IN_THE_TEST_RUN, HELPERS, SAMPLES, all_samples, assert_loses_exactly_where_expected,
                           draw_dependent, fairness_samples, wrong)

# The samples the draw can affect (`samples.draw_dependent`), in the project's test run
# those of `samples.fairness_samples` (`scripts/fairness.sh` grades all of them). A sample
# that changes only pure helpers scores the same on every variant by construction;
# grading it six times would only cost CI minutes (all 33 samples on all variants,
# measured once: the helper-only ones were equal on every variant; 21 minutes in all).
SUBMISSIONS = fairness_samples()


def test_the_helper_only_samples_are_recognised():
    """The rule leaves out exactly the samples that change nothing but helpers."""
    left_out = {p.name for p in all_samples()} - {p.name for p in all_samples() if draw_dependent(p)}
    assert {"softmax_ignores_base", "top_p_off_by_one", "stop_first_listed", "variant_powers_of_base"} <= left_out
    assert not left_out & {"variant_no_cache", "variant_kv_cache", "greedy_ignores_eos", "sample_uses_argmax",
                           "generate_text_stop_per_token", "implements_nothing_constants"}
    for name in left_out:
        assert wrong(SAMPLES / name) <= HELPERS, f"{name} loses points outside the helpers but is treated as helper-only"


def test_the_bugs_named_for_the_test_run_exist_and_depend_on_the_draw():
    """A misspelt or removed name in FAIRNESS_BUGS_IN_THE_TEST_RUN would silently shrink this file."""
    bugs = {p.name for p in all_samples() if draw_dependent(p) and wrong(p)}
    assert FAIRNESS_BUGS_IN_THE_TEST_RUN <= bugs, FAIRNESS_BUGS_IN_THE_TEST_RUN - bugs


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
    for i, result in enumerate(results):
        assert_loses_exactly_where_expected(result, case, f"variant {i}: ")
