"""greedy_decode(model, tokenizer, prompt, n): argmax at every step, eos ends it."""

from __future__ import annotations

import pytest

from autograder.sandbox.wire import MODEL, TOKENIZER, EosAfter

from autograder.suites.basic_prompting.common import abbreviate, call_text, check_ids, draw, draw_prompt, fixed_prompt, PROMPT_POOLS, mismatch, type_problem

HINT = "take the argmax of the logits at the LAST position, append it, and run the model again on the longer sequence"
# The number of new tokens per kind of prompt, one per variant (see common.VARIANTS).
LENGTHS = {"lecture": (12, 10, 13, 11, 14, 12), "code": (8, 6, 9, 7, 10, 8), "question": (6, 5, 7, 8, 6, 5),
           "few-shot": (3, 2, 4, 3, 2, 4)}


@pytest.mark.grades("greedy_decode", weight=2)
@pytest.mark.parametrize("kind", list(LENGTHS))
def test_matches_reference(grading, kind):
    """Same tokens as greedy decoding with generate()"""
    variant = draw(grading, f"greedy.matches.{kind}")
    prompt, n = PROMPT_POOLS[kind][variant], LENGTHS[kind][variant]
    expected = grading.ref("greedy_decode", MODEL, TOKENIZER, prompt, n)
    got = grading.student("greedy_decode", MODEL, TOKENIZER, prompt, n)
    check_ids(grading, call_text("greedy_decode", (MODEL, TOKENIZER, prompt, n), {}), prompt, got, expected, greedy=True, hint=HINT)


@pytest.mark.grades("greedy_decode", weight=1)
def test_single_token(grading):
    """max_new_tokens=1 gives the argmax of the prompt's last position"""
    prompt = "hello hello"
    expected = grading.ref("greedy_decode", MODEL, TOKENIZER, prompt, 1)
    got = grading.student("greedy_decode", MODEL, TOKENIZER, prompt, 1)
    check_ids(grading, call_text("greedy_decode", (MODEL, TOKENIZER, prompt, 1), {}), prompt, got, expected, greedy=True, hint=HINT)


def check_stops_at_eos(grading, prompt: str, k: int) -> None:
    budget = 12
    model = EosAfter(len(grading.prompt_ids(prompt)), k)  # the model, but eos is the argmax at new token k
    expected = grading.ref("greedy_decode", model, TOKENIZER, prompt, budget)
    got = grading.student("greedy_decode", model, TOKENIZER, prompt, budget)
    check_ids(grading, f"greedy_decode(model, tokenizer, {prompt!r}, {budget}) on a model that predicts eos at new token {k}",
              prompt, got, expected, greedy=False, forced_eos_at=k,
              hint="stop as soon as the new token is tokenizer.eos_token_id, and keep that id as the last one")


@pytest.mark.grades("greedy_decode", weight=1.5)
@pytest.mark.parametrize("k", [4], ids=["fifth token"])
def test_stops_at_eos(grading, k):
    """Stops right after emitting eos, and keeps it"""
    check_stops_at_eos(grading, draw_prompt(grading, f"greedy.stops_at_eos.{k}", "lecture"), k)


# eos at the very first new token: the constant [tokenizer.eos_token_id] passes it.
@pytest.mark.grades("greedy_decode", weight=1.5, kind="check", group="public")
@pytest.mark.parametrize("k", [0], ids=["first token"])
def test_stops_at_eos_at_once(grading, k):
    """Stops right after emitting eos, and keeps it"""
    check_stops_at_eos(grading, fixed_prompt("lecture"), k)


@pytest.mark.grades("greedy_decode", weight=1, kind="check", group="public")
def test_zero_new_tokens(grading):
    """max_new_tokens=0 returns an empty list"""
    got = grading.student("greedy_decode", MODEL, TOKENIZER, "hello", 0)
    if got != [] and not (hasattr(got, "__len__") and len(got) == 0 and not isinstance(got, str)):
        raise mismatch(call_text("greedy_decode", (MODEL, TOKENIZER, "hello", 0), {}), "[]", abbreviate(got))


@pytest.mark.grades("greedy_decode", weight=1)
def test_returns_a_list_of_python_ints(grading):
    """Returns the right ids as a list of Python ints"""
    prompt = draw_prompt(grading, "greedy.list_of_ints", "lecture")
    called = call_text("greedy_decode", (MODEL, TOKENIZER, prompt, 3), {})
    expected = grading.ref("greedy_decode", MODEL, TOKENIZER, prompt, 3)
    got = grading.student("greedy_decode", MODEL, TOKENIZER, prompt, 3)
    check_ids(grading, called, prompt, got, expected, greedy=True, hint=HINT)
    problem = type_problem(got, "ids")
    if problem:
        raise mismatch(called, "a list of ints, e.g. [2244, 6916, 11]", abbreviate(got), problem + " (tensor.tolist() gives one)")
