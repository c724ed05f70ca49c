"""The logits memo (autograder/sandbox/memo.py): a student's model calls answered from
what the reference computed must be what the model itself returns, calls it cannot
answer must run the real model, and grades must not change."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest
import torch

from autograder import models
from autograder.sandbox import memo
from autograder.sandbox.client import OnePathPerCall

PROMPT = "Shakespeare was a great"
STEPS = 6


@pytest.fixture(scope="module")
def recorded_run(reference):
    """A model of its own (tests patch its forward), the reference's greedy ids and the
    rows its recorder kept."""
    model, tok = models.load_model(models.TINY_MODEL)
    rows: dict = {}
    memo.install_recorder(model, rows)
    ids = reference.greedy_decode(model, tok, PROMPT, STEPS)
    del model.forward  # back to the real forward
    return model, tok, ids, rows


@pytest.fixture
def memoised(recorded_run):
    """(model with the memo, tokenizer, reference ids, counter of real forward passes)."""
    model, tok, ids, rows = recorded_run
    real = [0]
    hook = model.get_input_embeddings().register_forward_pre_hook(lambda *_: real.__setitem__(0, real[0] + 1))
    memo.install_memo(model, lambda prefixes: [rows.get(p) for p in prefixes])
    yield model, tok, ids, real
    del model.forward
    hook.remove()


def real_last_logits(model, sequence: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return type(model).forward(model, input_ids=torch.tensor([sequence])).logits[0, -1]


def test_the_recorder_keeps_a_row_for_every_prefix_the_reference_saw(recorded_run):
    model, tok, ids, rows = recorded_run
    prompt = tok(PROMPT)["input_ids"]
    sequence = prompt + ids
    assert set(rows) == {tuple(sequence[: i + 1]) for i in range(len(sequence) - 1)}
    # A KV-cache step and a whole-sequence forward sum in different orders (and with
    # whatever thread count earlier tests left): float32 rounding, ~1e-5 on logits ~10.
    for k in (0, STEPS - 1):
        torch.testing.assert_close(rows[tuple(prompt + ids[:k])], real_last_logits(model, prompt + ids[:k]), rtol=1e-4, atol=1e-4)


def test_a_no_cache_loop_is_answered_without_running_the_model(memoised):
    model, tok, ids, real = memoised
    sequence = tok(PROMPT)["input_ids"]
    with torch.no_grad():
        for step in range(STEPS):
            output = model(torch.tensor([sequence]))
            assert output.logits.shape == (1, len(sequence), model.config.vocab_size)
            sequence.append(int(output.logits[0, -1].argmax()))
    assert sequence[-STEPS:] == ids
    assert real[0] == 0, "the real model ran although every prefix was known"


def test_a_kv_cache_loop_is_answered_and_the_cache_fills_itself_when_touched(memoised):
    model, tok, ids, real = memoised
    cache_name = memo.cache_argument(model.forward)
    assert cache_name in inspect.signature(model.forward).parameters  # code that inspects it still works
    prompt = tok(PROMPT)["input_ids"]
    with torch.no_grad():
        output = model(input_ids=torch.tensor([prompt]), use_cache=True)
        cache = getattr(output, cache_name)
        got = [int(output.logits[0, -1].argmax())]
        for _ in range(2):
            output = model(input_ids=torch.tensor([[got[-1]]]), use_cache=True, **{cache_name: cache})
            got.append(int(output.logits[0, -1].argmax()))
        assert got == ids[:3] and real[0] == 0
        assert cache.get_seq_length() == len(prompt) + 2 and real[0] == 0  # answered without filling
        # A token the reference never chose: the real model runs on a cache filled for real.
        other = (ids[2] + 1) % model.config.vocab_size
        output = model(input_ids=torch.tensor([[other]]), use_cache=True, **{cache_name: cache})
        assert real[0] == 2  # the fill and the call itself
        torch.testing.assert_close(output.logits[0, -1], real_last_logits(model, prompt + ids[:2] + [other]), rtol=1e-4, atol=1e-4)


def test_calls_it_cannot_answer_run_the_real_model(memoised):
    model, tok, ids, real = memoised
    prompt = tok(PROMPT)["input_ids"]
    with torch.no_grad():
        unknown = model(torch.tensor([prompt[:-1] + [ids[0]]]))  # a prefix the reference never saw
        masked = model(input_ids=torch.tensor([prompt]), attention_mask=torch.tensor([[0] + [1] * (len(prompt) - 1)]))
        embedded = model(inputs_embeds=model.get_input_embeddings()(torch.tensor([prompt])))
    assert real[0] == 3
    for output in (unknown, masked, embedded):
        assert output.logits.shape[1] == len(prompt)


def test_answers_are_fresh_tensors(memoised):
    model, tok, ids, real = memoised
    prompt = tok(PROMPT)["input_ids"]
    with torch.no_grad():
        first = model(torch.tensor([prompt])).logits
        first.mul_(0)  # a student scaling logits in place
        again = model(torch.tensor([prompt])).logits
    assert int(again[0, -1].argmax()) == ids[0]


def test_one_path_per_call_answers_one_continuation_per_prefix():
    paths = OnePathPerCall()
    assert all(paths.allows(p) for p in [(1,), (1, 2), (1, 2, 3), (1, 2, 3)])  # a loop, and asking again
    assert not paths.allows((1, 2, 4))  # a second candidate after (1, 2)
    assert not paths.allows(())
    assert OnePathPerCall().allows((1, 2, 4))  # the next call starts afresh


def test_grades_with_the_memo_equal_grades_without_it(tmp_path):
    """The memo and the stored reference answers change speed, never a grade."""
    from autograder.grading import Grader

    cases = ["variant_no_cache", "variant_kv_cache", "greedy_ignores_eos", "greedy_first_position",
             "generate_text_truncates_afterwards", "sample_ignores_generator"]
    submissions = Path(__file__).parent / "submissions"
    grades = {}
    for reuse in (False, True):
        with Grader("tiny-qwen3", reuse_reference=reuse) as grader:
            for case in cases:
                result = grader.grade(submissions / case)
                grades.setdefault(case, []).append([(t.name, t.score, t.status, t.output) for t in result.tests])
    for case, (plain, memoised) in grades.items():
        assert memoised == plain, case
    assert os.environ.get("AUTOGRADER_REFERENCE_STORE"), "tests must not share the user's reference store"


def test_a_model_the_student_changed_gets_the_real_model(memoised):
    model, tok, ids, real = memoised
    prompt = tok(PROMPT)["input_ids"]
    hook = model.lm_head.register_forward_hook(lambda module, inputs, output: output * 0)  # e.g. a logits hook
    try:
        with torch.no_grad():
            output = model(torch.tensor([prompt]))
    finally:
        hook.remove()
    assert real[0] == 1 and float(output.logits.abs().max()) == 0.0
    with torch.no_grad():
        model(torch.tensor([prompt]))
    assert real[0] == 2, "once changed, the memo stays out of the way"
