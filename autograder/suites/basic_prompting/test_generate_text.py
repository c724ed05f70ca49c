"""generate_text: greedy or sampled continuation, cut before the first stop sequence."""

from __future__ import annotations

import pytest

from autograder.sandbox.wire import MODEL, TOKENIZER, EosAfter, Seeded

from autograder.suites.basic_prompting.common import PROMPTS, abbreviate, call_text, mismatch, type_problem

HINT_STOP = ("after each new token, decode the whole continuation so far and look for every stop sequence in it "
             "(a stop can span two tokens); cut before the earliest one")


def check_text(grading, prompt: str, hint: str, **kwargs) -> None:
    expected = grading.ref("generate_text", MODEL, TOKENIZER, prompt, **kwargs)
    got = grading.student("generate_text", MODEL, TOKENIZER, prompt, **kwargs)
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


@pytest.mark.grades("generate_text", weight=2)
def test_stops_generating_at_the_stop(grading):
    """Stops generating as soon as a stop sequence appears"""
    prompt, budget = PROMPTS[2], 30
    ids = grading.ref("greedy_decode", MODEL, TOKENIZER, prompt, budget)
    text = grading.tokenizer.decode(ids)
    stop = next((grading.tokenizer.decode([i]) for i in ids[3:] if grading.tokenizer.decode([i]).strip()), None)
    if stop is None or len(ids) < budget // 2:
        pytest.fail("could not build a stop sequence on this model's continuation; the TA should check the model")
    kwargs = {"max_new_tokens": budget, "stop": [stop]}
    check_text(grading, prompt, HINT_STOP, **kwargs)
    used = grading.student_forward_passes
    needed = grading.ref_forward_passes("generate_text", MODEL, TOKENIZER, prompt, **kwargs)
    if used is not None and needed is not None and used > needed + 1:
        raise mismatch(call_text("generate_text", (MODEL, TOKENIZER, prompt), kwargs),
                       f"generation to stop once {stop!r} appears, after about {needed} forward passes",
                       f"the right text, but after {used} forward passes of the model",
                       "check for stop sequences after every new token and stop generating right away; "
                       "generating all max_new_tokens and cutting afterwards wastes time (and random draws)")
    assert text.find(stop) >= 0


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
    prompt = PROMPTS[1]
    model = EosAfter(len(grading.prompt_ids(prompt)), 3)  # the model, but eos is the argmax at new token 3
    expected = grading.ref("generate_text", model, TOKENIZER, prompt, max_new_tokens=10)
    got = grading.student("generate_text", model, TOKENIZER, prompt, max_new_tokens=10)
    if got != expected:
        raise mismatch(f"generate_text(model, tokenizer, {prompt!r}, max_new_tokens=10) on a model that predicts eos at new token 3",
                       repr(expected), abbreviate(got, 200), "stop at eos and decode all new ids, special tokens included")


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
