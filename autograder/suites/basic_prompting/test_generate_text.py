"""generate_text: greedy or sampled continuation, cut before the first stop sequence."""

from __future__ import annotations

import pytest

from autograder.sandbox.scripted import SCRIPTED_MODEL
from autograder.sandbox.wire import MODEL, TOKENIZER, EosAfter, Seeded

from autograder.suites.basic_prompting.common import (
    INDENT,
    PROMPT_POOLS,
    SEED_POOL,
    abbreviate,
    call_text,
    draw,
    draw_prompt,
    fixed_prompt,
    mismatch,
    text_divergence,
    type_problem,
)

HINT_STOP = ("after each new token, decode the whole continuation so far and look for every stop sequence in it "
             "(a stop can span two tokens); cut before the earliest one")


def check_text(grading, prompt: str, hint: str, **kwargs) -> None:
    expected = grading.ref("generate_text", MODEL, TOKENIZER, prompt, **kwargs)
    got = grading.student("generate_text", MODEL, TOKENIZER, prompt, **kwargs)
    problem = type_problem(got, "str")
    if not problem and got == expected:
        return
    called = call_text("generate_text", (MODEL, TOKENIZER, prompt), kwargs)
    if problem:
        raise mismatch(called, repr(expected), abbreviate(got, 200), problem)
    if got.startswith(prompt) and not expected.startswith(prompt):
        raise mismatch(called, repr(expected), abbreviate(got, 200), "return only the continuation, without the prompt")
    sampling = None if kwargs.get("temperature", 0.0) == 0 else (kwargs["temperature"], kwargs.get("top_p", 1.0))
    lines, better_hint = text_divergence(grading, prompt, got, expected, _expected_ids(grading, prompt, kwargs),
                                         sampling=sampling, stops=kwargs.get("stop") or ())
    raise mismatch(called, repr(expected), abbreviate(got, 200) + "".join(INDENT + line for line in lines), better_hint or hint)


def _expected_ids(grading, prompt: str, kwargs: dict) -> list[int] | None:
    """The new token ids behind the reference's text, where the call determines them."""
    n = kwargs.get("max_new_tokens", 20)
    if kwargs.get("temperature", 0.0) == 0:
        return grading.ref("greedy_decode", MODEL, TOKENIZER, prompt, n)
    if isinstance(kwargs.get("generator"), Seeded):
        return grading.ref("sample_decode", MODEL, TOKENIZER, prompt, n, temperature=kwargs["temperature"],
                           top_p=kwargs.get("top_p", 1.0), generator=kwargs["generator"])
    return None  # drawn from the global random stream: not reproducible here


@pytest.mark.grades("generate_text", weight=2)
@pytest.mark.parametrize("kind", ["lecture", "code"])
def test_greedy_without_stops(grading, kind):
    """temperature=0 gives the greedy continuation"""
    check_text(grading, draw_prompt(grading, f"generate_text.greedy.{kind}", kind),
               "temperature 0 means greedy decoding; return tokenizer.decode(new_ids)", max_new_tokens=10)


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
    pool = PROMPT_POOLS["lecture"]
    start = draw(grading, "generate_text.two_token_stop")
    # the drawn prompt, or the next one whose continuation has such a stop (all the
    # prompts of a kind should; this keeps a model where one does not gradable)
    for prompt in pool[start:] + pool[:start]:
        stop = _two_token_stop(grading, prompt, 12)
        if stop is not None:
            break
    else:
        pytest.fail("could not build a two-token stop sequence on this model; the TA should check the model")
    check_text(grading, prompt, HINT_STOP, max_new_tokens=12, stop=[stop])


# Scripted continuations (fixed texts, tokenized with the model's tokenizer) and a stop
# sequence in each that no single token holds: a loop that looks for stops in the newest
# token's text alone, or only at the end of the text, never sees it while generating.
SCRIPTED_STOPS = {
    # "\n\ndef main" spans '.\n\n', 'def' and ' main' in the Qwen3 tokenizer
    "several tokens": (' playwright and poet.\n\ndef main():\n    print("To be, or not to be")\n\n'
                       'if __name__ == "__main__":\n    main()\n', "\n\ndef main"),
    # "the wor" starts in ' the' and ends inside ' world'
    "ends inside a token": (" playwright, and his plays are still performed all over the world today. "
                            "His sonnets are read in schools.", "the wor"),
}
HINT_STOP_EARLY = ("check for stop sequences after every new token and stop generating right away; "
                   "generating all max_new_tokens and cutting afterwards wastes time (and random draws)")
HINT_STOP_SPANNING = ("after each new token, look for the stops in the whole continuation decoded so far (not in the "
                      "newest token alone, not only at the end of the text): a stop can span several tokens and end "
                      "inside one; stop generating as soon as one appears")


ONE_TOKEN_CONTINUATION = 12


def _scripted_stop(grading, case: str, budget: int) -> tuple[list[int], str]:
    """(the continuation the scripted model follows, a stop sequence that occurs in it)."""
    decode = grading.tokenizer.decode
    if case == "one token":
        # the greedy continuation of another prompt; the stop is one of its tokens. The
        # model gives eos after it: ONE_TOKEN_CONTINUATION tokens leave room beyond any
        # stop chosen below, at a third of the reference's cost of the whole budget.
        continuation = grading.ref("greedy_decode", MODEL, TOKENIZER, draw_prompt(grading, "generate_text.one_token_stop", "lecture"),
                                   min(budget, ONE_TOKEN_CONTINUATION))
        k = next((j for j in range(3, len(continuation)) if decode(continuation[j:j + 1]).strip()
                  and continuation[j] != grading.tokenizer.eos_token_id), None)
        if k is None or k + 4 > len(continuation):
            pytest.fail("could not build a stop sequence on this model's continuation; the TA should check the model")
        return continuation, decode(continuation[k:k + 1])
    text, stop = SCRIPTED_STOPS[case]
    continuation = grading.tokenizer(text, add_special_tokens=False)["input_ids"][:budget]
    first = next((j for j in range(len(continuation)) if stop in decode(continuation[: j + 1])), None)
    shown = decode(continuation[: first + 1]) if first is not None else ""
    if (first is None or first + 4 > len(continuation) or any(stop in decode([t]) for t in continuation)
            or (case == "ends inside a token" and shown.endswith(stop))):
        pytest.fail(f"the scripted continuation for {case!r} does not tokenize as this test needs on this "
                    f"tokenizer; the TA should check the test")
    return continuation, stop


@pytest.mark.grades("generate_text", weight=1)
@pytest.mark.parametrize("case", ["one token", *SCRIPTED_STOPS])
def test_stops_generating_at_the_stop(grading, case):
    """Stops generating as soon as a stop sequence appears"""
    # The model here follows a continuation that only the grader knows and the grader sees
    # which of its tokens were asked for: generating past the stop shows, whatever the
    # submission's process reports or patches.
    prompt, budget = draw_prompt(grading, f"generate_text.stops_generating.{case}", "question"), 30
    continuation, stop = _scripted_stop(grading, case, budget)
    decode = grading.tokenizer.decode
    first = next(j for j in range(len(continuation)) if stop in decode(continuation[: j + 1]))
    text = decode(continuation[: first + 1])
    expected = text[: text.find(stop)]
    kwargs = {"max_new_tokens": budget, "stop": [stop]}
    called = call_text("generate_text", (MODEL, TOKENIZER, prompt), kwargs)
    hint = HINT_STOP if case == "one token" else HINT_STOP_SPANNING
    with grading.scripted(prompt, continuation) as script:
        got = grading.student("generate_text", SCRIPTED_MODEL, TOKENIZER, prompt, **kwargs)
    problem = type_problem(got, "str")
    if problem or got != expected:
        raise mismatch(called + f" on a model that always continues with {abbreviate(decode(continuation), 80)}",
                       repr(expected), abbreviate(got, 200), problem or hint)
    if script.furthest > first + 1:
        pieces = ", ".join(repr(decode([t])) for t in continuation[max(0, first - 2): first + 1])
        where = "" if case == "one token" else f" (it ends in new token {first}: ... {pieces})"
        raise mismatch(called, f"generation to stop once {stop!r} appears, at new token {first}{where}",
                       f"the right text, but the model was asked for new tokens up to {script.furthest}",
                       HINT_STOP_EARLY if case == "one token" else hint)
    if script.furthest < first:
        raise mismatch(called, f"the model to be asked for each new token up to {first}",
                       f"the text came back after asking only up to new token {script.furthest}",
                       "every new token comes from a call of the model")


# Characters whose UTF-8 bytes the byte-level tokenizer splits over two tokens (東, ✨, Ω
# here): one such token decoded alone is '\ufffd'.
MULTIBYTE_TEXT = " café 🙂 東京 ✨ 你好, 世界! naïve 😀 Ω≈ç"


@pytest.mark.grades("generate_text", weight=2)
def test_characters_split_across_tokens(grading):
    """Characters split across tokens (emoji, CJK) come out whole"""
    prompt = draw_prompt(grading, "generate_text.split_characters", "lecture")
    decode = grading.tokenizer.decode
    continuation = grading.tokenizer(MULTIBYTE_TEXT, add_special_tokens=False)["input_ids"]
    if not any("\ufffd" in decode([t]) for t in continuation) or "\ufffd" in decode(continuation):
        pytest.fail("the multi-byte text does not split a character over tokens on this tokenizer; "
                    "the TA should check the test")
    expected = decode(continuation)
    kwargs = {"max_new_tokens": len(continuation)}
    called = call_text("generate_text", (MODEL, TOKENIZER, prompt), kwargs)
    with grading.scripted(prompt, continuation):
        got = grading.student("generate_text", SCRIPTED_MODEL, TOKENIZER, prompt, **kwargs)
    problem = type_problem(got, "str")
    if problem or got != expected:
        split = [j for j, t in enumerate(continuation) if "\ufffd" in decode([t])]
        detail = "" if problem else (INDENT + f"new tokens {split} each hold only part of a character's bytes: "
                                     f"decoded alone, each gives '\\ufffd'")
        raise mismatch(called + f" on a model that always continues with {abbreviate(expected, 80)}",
                       repr(expected), abbreviate(got, 200) + detail,
                       problem or "decode all the new ids together, tokenizer.decode(new_ids), not token by token: "
                                  "a character's bytes can be split over several tokens")


@pytest.mark.grades("generate_text", weight=1.5, kind="check", group="public")
def test_stop_at_position_zero(grading):
    """A stop sequence at the very start gives ''"""
    prompt = fixed_prompt("code")
    first = grading.tokenizer.decode(grading.ref("greedy_decode", MODEL, TOKENIZER, prompt, 1))
    check_text(grading, prompt, HINT_STOP, max_new_tokens=8, stop=["@@never@@", first[:1]])


@pytest.mark.grades("generate_text", weight=2)
def test_sampling_with_generator(grading):
    """temperature > 0 samples like sample_decode (explicit generator)"""
    variant = draw(grading, "generate_text.sampling")
    check_text(grading, PROMPT_POOLS["question"][variant],
               "temperature > 0 means sampling with temperature and top_p, drawing from `generator`",
               max_new_tokens=10, temperature=0.9, top_p=0.95, generator=Seeded(SEED_POOL[variant]))


@pytest.mark.grades("generate_text", weight=1.5)
def test_keeps_eos_as_decode_gives_it(grading):
    """eos ends the text and stays in it, as decode gives it"""
    prompt = draw_prompt(grading, "generate_text.keeps_eos", "code")
    model = EosAfter(len(grading.prompt_ids(prompt)), 3)  # the model, but eos is the argmax at new token 3
    expected = grading.ref("generate_text", model, TOKENIZER, prompt, max_new_tokens=10)
    got = grading.student("generate_text", model, TOKENIZER, prompt, max_new_tokens=10)
    if got != expected:
        raise mismatch(f"generate_text(model, tokenizer, {prompt!r}, max_new_tokens=10) on a model that predicts eos at new token 3",
                       repr(expected), abbreviate(got, 200), "stop at eos and decode all new ids, special tokens included")


@pytest.mark.grades("generate_text", weight=1, kind="check", group="public")
def test_no_new_tokens(grading):
    """max_new_tokens=0 gives ''"""
    got = grading.student("generate_text", MODEL, TOKENIZER, "hello", max_new_tokens=0)
    if got != "":
        raise mismatch(call_text("generate_text", (MODEL, TOKENIZER, "hello"), {"max_new_tokens": 0}), "''", abbreviate(got))


BAD_ARGUMENTS = {
    "t<0": {"temperature": -1.0},
    "empty stop": {"stop": ["ok", ""]},
    "p=0 when sampling": {"temperature": 0.7, "top_p": 0.0},
    "p>1 when sampling": {"temperature": 0.7, "top_p": 1.5},
}


@pytest.mark.grades("generate_text", weight=0.25, kind="check", group="public")
@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_rejects_bad_arguments(grading, case):
    """ValueError for a negative temperature, an empty stop sequence, or top_p outside (0, 1] when sampling"""
    grading.expect_value_error("generate_text", MODEL, TOKENIZER, "hello", max_new_tokens=2, **BAD_ARGUMENTS[case])
