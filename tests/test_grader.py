"""Self-test of the grader on tiny-qwen3: the reference earns 100, the skeleton 0, each
buggy submission loses points in exactly the function it breaks, and correct variants
written differently earn 100."""

from __future__ import annotations

import inspect
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from autograder import report

from autograder.assignment import load as _load_assignment

BASIC = _load_assignment("basic_prompting")  # the assignment these tests grade
POINTS = BASIC.points
from autograder.grading import Grader

from tests.samples import SAMPLES as SUBMISSIONS, all_samples, assert_loses_exactly_where_expected, fairness_samples, wrong

ALL_CASES = [p.name for p in all_samples()]
# Every sample but the bugs tests/test_variant_fairness.py grades on all variants with
# the same checks (correct variants stay here too: the transformers-5 pass runs them).
ON_EVERY_VARIANT = {p.name for p in fairness_samples(every=False) if wrong(p)}
CASES = [name for name in ALL_CASES if name not in ON_EVERY_VARIANT]


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
    result = grader.grade(_submission(tmp_path, BASIC.reference_path))
    assert result.internal_errors == []
    failed = {t.name: t.output for t in result.tests if t.status != "passed"}
    assert failed == {}
    assert result.score == pytest.approx(100)
    assert result.by_function() == {name: (points, points) for name, points in POINTS.items()}


def test_the_tas_own_pytest_options_and_plugins_do_not_reach_the_hidden_suite(grader, tmp_path, monkeypatch):
    """PYTEST_ADDOPTS / PYTEST_PLUGINS set for the TA's own pytest runs (here: verbose, stop at
    the first failure, and a plugin that keeps only the first test) change nothing in a grade."""
    (tmp_path / "keep_one_test.py").write_text("def pytest_collection_modifyitems(items):\n    del items[1:]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTEST_ADDOPTS", "-v -x --durations=5")
    monkeypatch.setenv("PYTEST_PLUGINS", "keep_one_test")
    result = grader.grade(_submission(tmp_path, BASIC.reference_path))
    assert result.internal_errors == [] and result.score == pytest.approx(100)
    assert len(result.tests) > 50
    assert os.environ["PYTEST_ADDOPTS"] == "-v -x --durations=5", "the TA's environment is given back after the grade"


def test_skeleton_earns_nothing_and_says_why(grader, tmp_path):
    result = grader.grade(_submission(tmp_path, BASIC.skeleton_path))
    assert result.score == 0 and result.max_score == pytest.approx(100)
    assert all("NotImplementedError" in t.output for t in result.tests)


def test_there_are_enough_self_test_submissions():
    expected = [json.loads((SUBMISSIONS / c / "expected.json").read_text()) for c in ALL_CASES]
    assert sum(1 for e in expected if e["wrong"]) >= 10
    assert sum(1 for e in expected if not e["wrong"]) >= 5


@pytest.mark.parametrize("case", CASES)
def test_points_are_lost_exactly_where_the_bug_is(grader, case):
    """Each sample as a student would submit it (inputs drawn from its name and file),
    but the bugs tests/test_variant_fairness.py checks on every variant with these same
    checks (`samples.fairness_samples`)."""
    assert_loses_exactly_where_expected(grader.grade(SUBMISSIONS / case), SUBMISSIONS / case)


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
    # said once, at the top, with the error; the tests that could not run are counted, not repeated
    error = result.import_report["error"]["type"]
    feedback = report.feedback_markdown(result)
    assert feedback.count(f"could not be imported: {error}") == 1, feedback
    rows = report.gradescope_results(result)["tests"]
    assert len(rows) == len(POINTS) and all("tests not run" in row["name"] for row in rows), [r["name"] for r in rows]
    assert sum(row["max_score"] for row in rows) == 100
    assert len(feedback) < 4000


def test_missing_function_costs_only_that_function(grader, tmp_path):
    source = BASIC.reference_path.read_text().replace("def truncate_at_stop(", "def truncate_at_stops(")
    folder = tmp_path / "renamed"
    folder.mkdir()
    (folder / "decoding.py").write_text(source)
    result = grader.grade(folder)
    scores = result.by_function()
    assert scores["truncate_at_stop"][0] == 0
    assert all(scores[name][0] == points for name, points in POINTS.items() if name != "truncate_at_stop")
    assert "no function named truncate_at_stop" in next(t.output for t in result.tests if t.function == "truncate_at_stop")


def test_a_crash_or_timeout_costs_only_the_tests_it_hit(grader, tmp_path):
    source = BASIC.reference_path.read_text()
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
    failed = {t.name: t.output for t in result.tests if t.status == "failed"}
    crashed, hung = ("Cuts before the earliest stop sequence [stop at position 0]",
                     "Cuts before the earliest stop sequence [whole text is a stop]")
    assert "exited with code 1" in failed.pop(crashed)
    assert "ran out of time" in failed.pop(hung)
    # after a timeout, the function's remaining tests are not run; a crash costs only its test
    assert all(output.startswith("Not run: an earlier test of truncate_at_stop") for output in failed.values()), failed
    assert {t.function for t in result.tests if t.status != "passed"} == {"truncate_at_stop"}
    assert result.by_function()["truncate_at_stop"][0] > 0  # the tests before the timeout still count


# --- the stand-in models look like a real causal LM to ordinary student code ----------


def _small_causal_lm():
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, head_dim=8, eos_token_id=7, bos_token_id=7)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return Qwen3ForCausalLM(config).eval()


def _cache_of(output, name: str):
    return output[name] if name in output else output.past_key_values


def test_frozen_stand_in_answers_the_usual_idioms():
    from autograder.sandbox.memo import cache_argument
    from autograder.sandbox.stubs import FrozenLogitsModel

    real = _small_causal_lm()
    logits = torch.linspace(-2, 2, 64)
    model = FrozenLogitsModel(logits, real.config)
    parameter = next(model.parameters())  # the idiom that once raised StopIteration
    assert (parameter.device, parameter.dtype) == (torch.device("cpu"), torch.float32)
    assert (model.device, model.dtype) == (torch.device("cpu"), torch.float32)
    assert model.config.vocab_size == 64 and model.config is not real.config
    assert model.generation_config.eos_token_id == 7
    assert isinstance(model.get_input_embeddings(), torch.nn.Module)
    assert list(inspect.signature(model.forward).parameters) == list(inspect.signature(real.forward).parameters)
    name = cache_argument(model.forward)
    assert name == cache_argument(real.forward)
    ids = torch.tensor([[1, 2, 3]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        output = model(ids, mask)  # positional attention mask
        assert output.logits.shape == (1, 3, 64) and torch.equal(output.logits[:, -1, :], logits[None])
        assert torch.equal(output[0], output.logits) and torch.equal(output["logits"], output.logits)
        past = _cache_of(output, name)
        assert past.get_seq_length() == 3
        step = model(torch.tensor([[5]]), torch.ones(1, 4, dtype=torch.long), use_cache=True, **{name: past})
        assert step.logits.shape == (1, 1, 64) and _cache_of(step, name).get_seq_length() == 4
        keyword = model(input_ids=ids, attention_mask=mask, position_ids=torch.arange(3)[None])
        assert torch.equal(keyword.logits, output.logits)
        assert model(ids, logits_to_keep=1).logits.shape == (1, 1, 64)
        assert isinstance(model(ids, return_dict=False), tuple)
        with pytest.raises(IndexError):
            model(torch.tensor([[64]]))  # not a token id, as on the real model


def test_eos_forcing_stand_in_binds_arguments_like_the_real_model():
    from autograder.sandbox.memo import cache_argument
    from autograder.sandbox.stubs import EosForcingModel

    real = _small_causal_lm()
    model = EosForcingModel(real, prompt_length=3, k=1, eos_token_id=7)
    assert list(inspect.signature(model.forward).parameters) == list(inspect.signature(real.forward).parameters)
    assert next(model.parameters()).dtype == torch.float32 and model.get_input_embeddings() is real.get_input_embeddings()
    name = cache_argument(real.forward)
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        first = model(ids, torch.ones_like(ids))  # a positional mask is a mask, not a cache
        assert torch.equal(first.logits, real(ids, torch.ones_like(ids)).logits)
        token = first.logits[:, -1, :].argmax(-1, keepdim=True)
        assert int(token) != 7
        mask = torch.ones(1, 4, dtype=torch.long)
        cached = model(token, mask, use_cache=True, **{name: _cache_of(first, name)})
        assert int(cached.logits[0, -1].argmax()) == 7
        whole = model(torch.cat([ids, token], 1), mask)
        assert int(whole.logits[0, -1].argmax()) == 7
        assert torch.equal(whole.logits[:, :-1], real(torch.cat([ids, token], 1)).logits[:, :-1])
        kept = model(torch.cat([ids, token], 1), logits_to_keep=1)
        assert kept.logits.shape == (1, 1, 64) and int(kept.logits[0, -1].argmax()) == 7


def test_an_attribute_error_on_a_stand_in_model_explains_the_stand_in():
    """`model.generate` works on the real model but not on the logits-controlling stand-ins;
    the student must learn why from the feedback, not guess."""
    from autograder.grading import _stand_in_note
    from autograder.sandbox.client import StudentError
    from autograder.sandbox.scripted import SCRIPTED_MODEL
    from autograder.sandbox.wire import MODEL, TOKENIZER, EosAfter, Frozen

    missing = StudentError({"type": "AttributeError", "message": "'FrozenLogitsModel' object has no attribute 'generate'"})
    other = StudentError({"type": "TypeError", "message": "bad"})
    assert "no `generate`" in _stand_in_note((Frozen(torch.zeros(4)), TOKENIZER, "x", 5), missing)
    assert "stand-in" in _stand_in_note((SCRIPTED_MODEL, TOKENIZER, "x"), missing)
    assert "no `generate`" in _stand_in_note((EosAfter(3, 0), TOKENIZER, "x", 5), missing)  # the eos-forcing one
    assert _stand_in_note((MODEL, TOKENIZER, "x", 5), missing) == ""
    assert _stand_in_note((Frozen(torch.zeros(4)), TOKENIZER, "x", 5), other) == ""
