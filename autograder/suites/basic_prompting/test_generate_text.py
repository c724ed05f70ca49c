"""generate_text: greedy or sampled continuation, cut before the first stop sequence."""

from __future__ import annotations

import pytest

from autograder.sandbox.wire import MODEL, TOKENIZER, Seeded

from autograder.suites.basic_prompting.common import PROMPTS, abbreviate, call_text, eos_prompt, mismatch, type_problem

HINT_STOP = ("after each new token, decode the whole continuation so far and look for every stop sequence in it "
             "(a stop can span two tokens); cut before the earliest one")


def check_text(grading, prompt: str, hint: str, **kwargs) -> None:
    got = grading.student("generate_text", MODEL, TOKENIZER, prompt, **kwargs)
    expected = grading.ref("generate_text", MODEL, TOKENIZER, prompt, **kwargs)
    problem = type_problem(got, "str")
    if problem or got != expected:
        if not problem and got.startswith(prompt) and not expected.startswith(prompt):
            hint = "return only the continuation, without the prompt"
        elif not problem:
            where = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
            hint = f"the texts differ from character {where} on. " + hint
        raise mismatch(call_text("generate_text", (MODEL, TOKENIZER, prompt), kwargs), repr(expected), abbreviate(got, 200), problem or hint)


@pytest.mark.grades("generate_text", weight=2)
@pytest.mark.parametrize("prompt", PROMPTS[:2], ids=["lecture", "code"])
def test_greedy_without_stops(grading, prompt):
    """temperature=0 gives the greedy continuation"""
    check_text(grading, prompt, "temperature 0 means greedy decoding; return tokenizer.decode(new_ids)", max_new_tokens=10)


@pytest.mark.grades("generate_text", weight=2)
def test_lecture_stop_sequences(grading):
    """The lecture's stop sequences on code"""
    check_text(grading, "\ndef factorial(", HINT_STOP, max_new_tokens=30, stop=["\n\n", "\ndef", "\nclass", "\nif"])


def _two_token_stop(grading, prompt: str, n: int) -> str | None:
    """A stop sequence made of the last character of one new token and the first of the next."""
    ids = grading.ref("greedy_decode", MODEL, TOKENIZER, prompt, n)
    pieces = [grading.tokenizer.decode([i]) for i in ids]
    text = grading.tokenizer.decode(ids)
    for k in range(1, len(ids) - 1):
        if pieces[k] and pieces[k + 1] and "\ufffd" not in pieces[k] + pieces[k + 1]:
            stop = pieces[k][-1] + pieces[k + 1][0]
            if text.find(stop) >= len("".join(pieces[:k])):  # it does not occur earlier
                return stop
    return None


@pytest.mark.grades("generate_text", weight=3)
def test_stop_spanning_two_tokens(grading):
    """A stop sequence that spans two tokens"""
    prompt = PROMPTS[0]
    stop = _two_token_stop(grading, prompt, 12)
    if stop is None:
        pytest.fail("could not build a two-token stop sequence on this model; the TA should check the model")
    check_text(grading, prompt, HINT_STOP, max_new_tokens=12, stop=[stop])


@pytest.mark.grades("generate_text", weight=1.5)
def test_stop_at_position_zero(grading):
    """A stop sequence at the very start gives ''"""
    prompt = PROMPTS[1]
    first = grading.tokenizer.decode(grading.ref("greedy_decode", MODEL, TOKENIZER, prompt, 1))
    check_text(grading, prompt, HINT_STOP, max_new_tokens=8, stop=["@@never@@", first[:1]])


@pytest.mark.grades("generate_text", weight=2)
def test_sampling_with_generator(grading):
    """temperature > 0 samples like sample_decode (explicit generator)"""
    check_text(grading, PROMPTS[2], "temperature > 0 means sampling with temperature and top_p, drawing from `generator`",
               max_new_tokens=10, temperature=0.9, top_p=0.95, generator=Seeded(grading.seeds[1]))


@pytest.mark.grades("generate_text", weight=1.5)
def test_keeps_eos_as_decode_gives_it(grading):
    """eos ends the text and stays in it, as decode gives it"""
    prompt = eos_prompt(grading, 40)
    if prompt is None:
        pytest.fail("none of the grader's prompts makes this model emit eos; the TA should check the model")
    check_text(grading, prompt, "stop at eos and decode all new ids, special tokens included", max_new_tokens=40)


@pytest.mark.grades("generate_text", weight=1)
def test_no_new_tokens(grading):
    """max_new_tokens=0 gives ''"""
    got = grading.student("generate_text", MODEL, TOKENIZER, "hello", max_new_tokens=0)
    if got != "":
        raise mismatch(call_text("generate_text", (MODEL, TOKENIZER, "hello"), {"max_new_tokens": 0}), "''", abbreviate(got))


@pytest.mark.grades("generate_text", weight=0.5)
@pytest.mark.parametrize("kwargs", [{"temperature": -1.0}, {"stop": ["ok", ""]}], ids=["t<0", "empty stop"])
def test_rejects_bad_arguments(grading, kwargs):
    """ValueError for a negative temperature or an empty stop sequence"""
    grading.expect_value_error("generate_text", MODEL, TOKENIZER, "hello", max_new_tokens=2, **kwargs)
