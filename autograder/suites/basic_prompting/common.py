"""Inputs and comparisons shared by the hidden tests."""

from __future__ import annotations

import torch

from autograder import checks
from autograder.feedback import Mismatch, abbreviate, call_text, mismatch, top_tokens, type_problem

# Each hidden test of a decoding function (greedy_decode, sample_decode, generate_text)
# comes in VARIANTS variants; a submission gets one of each, drawn from its seed
# (`hidden_inputs`), so answers copied from one report do not fit the next submission.
# Variant i of a test takes the i-th entry of the pools below (its prompt of the kind it
# needs, its seed, its length). The prompts of a kind test the same behaviours; all are
# short, so a correct no-cache loop stays quick on the real model. The first of each kind
# is the lecture's: `fixed_prompt` gives it to the tests whose inputs are fixed.
#
# Fairness: two submissions with the same bug must lose the same points whatever they
# drew. tests/test_variant_fairness.py grades every sample submission on every variant
# and requires equal scores per function.
VARIANTS = 6
LECTURE_PROMPT = "Shakespeare was a great"
_FEW_SHOT = "Review: It is not being improved despite promises by Paradox.\nDecision: bad\n\nReview: "
PROMPT_POOLS = {
    "lecture": (LECTURE_PROMPT, "The city of Rome is famous for", "Albert Einstein was a famous", "The best way to learn a language is",
                "The old lighthouse keeper said", "My favourite season of the year is"),
    "code": ("def factorial(", "def fibonacci(n):", "while True:", "for i in range(", "class Stack:", "def is_prime(n):"),
    "question": tuple(f"Tell me why this person is famous\n\n{name}:"
                      for name in ("Shakespeare", "Marie Curie", "Isaac Newton", "Ada Lovelace", "Mozart", "Frida Kahlo")),
    "few-shot": (_FEW_SHOT + "I dont care what everyone says i loved playing the campaign.\nDecision:",
                 *(_FEW_SHOT + "I dont care what everyone says i loved playing the campaign.\nDecision: good\n\n"
                   f"Review: {review}\nDecision:"
                   for review in ("Crashes every ten minutes, refunded.", "Best strategy game I have played in years.",
                                  "The story drags but the combat is great fun.", "Boring after the first hour.",
                                  "Too expensive for what it offers."))),
}
# Seeds for torch.manual_seed / torch.Generator, one per variant.
SEED_POOL = (1009, 2024, 31337, 4242, 777, 65537)
assert all(len(pool) == VARIANTS for pool in (*PROMPT_POOLS.values(), SEED_POOL))


def draw(grading, test: str) -> int:
    """The variant of the hidden test called `test` that this submission gets."""
    return grading.inputs.variant(test, VARIANTS)


def draw_prompt(grading, test: str, kind: str) -> str:
    """The prompt of `kind` for this submission's variant of `test`."""
    return PROMPT_POOLS[kind][draw(grading, test)]


def fixed_prompt(kind: str) -> str:
    """The lecture's prompt of `kind`, the same for every submission. For the public
    tests, and for the pure functions' tests on a model distribution (softmax,
    temperature_distribution, top_p_filter): their answer is a 151,936-entry tensor that
    feedback shows only abbreviated, so there is nothing short to memorise, while a bug's
    partial credit there depends on the distribution's shape (an off-by-one nucleus
    passes on some prompts, not others): drawing those prompts made the same bug score
    0 or 2.35 of 20 depending on the student."""
    return PROMPT_POOLS[kind][0]


def model_logits(grading, prompt: str) -> torch.Tensor:
    """The model's next-token logits after `prompt` (float32, shape (vocab,))."""
    return grading.logits(grading.prompt_ids(prompt))[-1]


def check_tensor_close(called: str, got, expected: torch.Tensor, hint: str | None = None, largest_exponent: float = 0.0) -> None:
    """`largest_exponent`: the largest |exponent| the computation involves (see `checks`)."""
    problem = type_problem(got, "tensor")
    if problem is None:
        problem = checks.check_distribution(got, expected, largest_exponent)
    if problem:
        raise mismatch(called, abbreviate(expected), f"{abbreviate(got)}: {problem}", hint)


INDENT = "\n          "  # continues a Called/Expected/Got/Hint line


def _piece(tok, token_id: int) -> str:
    return repr(tok.decode([int(token_id)]))


def _probability(value: float) -> str:
    return f"{value:.3f}" if value >= 1e-3 or value == 0 else f"{value:.2g}"


OUTSIDE_NUCLEUS_HINT = ("draw every token from top_p_filter(temperature_distribution(logits, t), p), where logits "
                        "are the LAST position's: a token outside the nucleus can never come out")


def _distributions(grading, context_ids: list[int], sampling: tuple[float, float] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(the distribution the reference picks from after `context_ids`, the same before top-p).
    Greedy (`sampling` None): the model's own softmax, temperature 1."""
    logits = grading.logits(context_ids)[-1].float()
    if sampling is None:
        probs = logits.softmax(-1)
        return probs, probs
    temperature, top_p = sampling
    before = grading.reference.temperature_distribution(logits, temperature)
    return grading.reference.top_p_filter(before, top_p), before


def step_report(grading, prompt_ids: list[int], new_so_far: list[int], expected_id: int, got_id: int | None, *,
                sampling: tuple[float, float] | None = None, forced_eos: bool = False) -> tuple[list[str], str | None]:
    """(lines about the step after `prompt_ids + new_so_far`, a hint or None).

    Where the step is, the token the reference chose, the distribution it picked from
    (the model's own for greedy decoding; temperature + nucleus for sampling) and the
    probability of `got_id` under it."""
    tok = grading.tokenizer
    step = len(new_so_far)
    context = tok.decode(prompt_ids + new_so_far)
    context = context if len(context) <= 40 else "..." + context[-37:]
    lines = [f"first difference at new token {step} (sequence position {len(prompt_ids) + step}, right after {context!r})"]
    got_text = f", got {_piece(tok, got_id)} (id {got_id})" if got_id is not None else ""
    lines.append(f"expected {_piece(tok, expected_id)} (id {expected_id}){got_text}")
    if forced_eos:
        lines.append("the model makes eos the only possible token at this step")
        return lines, None
    probs, before = _distributions(grading, prompt_ids + new_so_far, sampling)
    if sampling is None:
        lines.append(f"model's top tokens there: {top_tokens(tok, probs)}")
        if got_id is not None:
            lines.append(f"your token has probability {_probability(float(probs[got_id]))} there")
        return lines, None
    nucleus = int((probs > 0).sum())
    lines[-1] = lines[-1].replace(f"(id {expected_id})", f"(id {expected_id}, probability {_probability(float(probs[expected_id]))})", 1)
    lines.append(f"distribution to sample from there (t={sampling[0]:g}, top_p={sampling[1]:g}; nucleus of {nucleus} "
                 f"token{'s' if nucleus != 1 else ''}): {top_tokens(tok, probs, min(5, nucleus))}")
    if got_id is None:
        return lines, None
    if float(probs[got_id]) == 0.0:
        lines.append(f"your token {_piece(tok, got_id)} is outside the nucleus (probability 0 after top-p, "
                     f"{_probability(float(before[got_id]))} before)")
        return lines, OUTSIDE_NUCLEUS_HINT
    lines.append(f"your token has probability {_probability(float(probs[got_id]))} there: a possible draw, so the "
                 "difference is in how the random draw was made")
    return lines, None


def check_ids(grading, called: str, prompt: str, got, expected: list[int], *, greedy: bool, hint: str | None = None,
              sampling: tuple[float, float] | None = None, forced_eos_at: int | None = None) -> None:
    """Compare token id lists; explain the first step where they part.

    `greedy`: accept a different token at the first difference when its logit ties the
    maximum (only meaningful when the call used the plain model). `sampling`: the
    call's (temperature, top_p), to show the distribution the reference drew from.
    `forced_eos_at`: the new token where the test's model forces eos."""
    problem = type_problem(got, "ids")
    if problem:
        # A tensor or a list of 0-d tensors holding the right ids earns the points here;
        # the return type has its own test.
        as_ids = _as_ids(got)
        if as_ids is None:
            raise mismatch(called, abbreviate(expected), abbreviate(got), problem)
        got = as_ids
    if got == expected:
        return
    tok = grading.tokenizer
    vocab = int(grading.logits(grading.prompt_ids(prompt))[-1].numel())
    invalid = [i for i in got if not 0 <= i < vocab]
    if invalid:
        raise mismatch(called, f"{abbreviate(expected)} = {tok.decode(expected)!r}", abbreviate(got),
                       f"{invalid[0]} is not a token id (ids run from 0 to {vocab - 1})")
    prompt_ids = grading.prompt_ids(prompt)
    step = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
    if step < len(got) and step < len(expected):
        if greedy and forced_eos_at is None:
            logits = grading.logits(prompt_ids + expected[:step])[-1]
            if float(logits.max() - logits[got[step]]) <= 1e-5 * max(1.0, float(logits.abs().max())):
                return  # an exact tie at the argmax: either token is correct
        lines, step_hint = step_report(grading, prompt_ids, expected[:step], expected[step], got[step],
                                       sampling=sampling, forced_eos=step == forced_eos_at)
        hint = step_hint or hint
        detail = INDENT.join(lines)
    elif len(got) > len(expected):
        detail = (f"you returned {checks.tokens(len(got))}; the reference stopped after {len(expected)}"
                  + (" (it emitted eos, <|endoftext|>, and stops right after it)" if expected and expected[-1] == tok.eos_token_id else ""))
    else:
        detail = f"you returned only {checks.tokens(len(got))}; the reference returned {len(expected)}"
    if got[: len(prompt_ids)] == prompt_ids and len(got) > len(expected):
        hint = "return only the new tokens, not the prompt's"
    raise mismatch(called, f"{abbreviate(expected)} = {tok.decode(expected)!r}", f"{abbreviate(got)} = {tok.decode(got)!r}{INDENT}{detail}", hint)


def text_divergence(grading, prompt: str, got: str, expected: str, expected_ids: list[int] | None, *,
                    sampling: tuple[float, float] | None = None, stops=()) -> tuple[list[str], str | None]:
    """(lines that say where a continuation `got` parts from `expected`, a hint or None);
    with the reference's new token ids (`expected_ids`), at which new token and why."""
    tok = grading.tokenizer
    where = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
    stops = [stops] if isinstance(stops, str) else list(stops or [])
    if expected_ids is not None and not tok.decode(expected_ids).startswith(expected):
        expected_ids = None  # not the tokens behind this text after all
    if expected_ids is None:
        return [(f"the texts agree on their first {where} characters; then expected {expected[where:where + 30]!r}, "
                 f"got {got[where:where + 30]!r}")], None
    agreed = 0  # new tokens whose text both continuations share
    while agreed < len(expected_ids) and len(tok.decode(expected_ids[: agreed + 1])) <= where:
        agreed += 1
    start = len(tok.decode(expected_ids[:agreed]))
    if where == len(expected):
        full = tok.decode(expected_ids)
        if any(full.startswith(stop, where) for stop in stops):
            stop = next(stop for stop in stops if full.startswith(stop, where))
            why = f"the stop sequence {stop!r} begins there (cut it off, with everything after it)"
        elif expected_ids and expected_ids[-1] == tok.eos_token_id and len(tok.decode(expected_ids)) == where:
            why = "the model emitted eos there"
        else:
            why = f"that is all {len(expected_ids)} new {'token' if len(expected_ids) == 1 else 'tokens'} (max_new_tokens)"
        return [(f"your text is the expected one plus {got[where:where + 30]!r}: the expected text ends after "
                 f"{where} characters, because {why}")], None
    if where == len(got):
        return [(f"your text stops after {where} characters ({agreed} new token{'s' if agreed != 1 else ''}); "
                 f"the expected text goes on with {expected[where:where + 30]!r}")], None
    if agreed >= len(expected_ids):
        return [f"the texts part at character {where}: expected {expected[where:where + 30]!r}, got {got[where:where + 30]!r}"], None
    context_ids = grading.prompt_ids(prompt) + expected_ids[:agreed]
    lines, _ = step_report(grading, grading.prompt_ids(prompt), expected_ids[:agreed], expected_ids[agreed], None,
                           sampling=sampling)
    lines[0] = f"the texts part at character {where}, at new token {lines[0].removeprefix('first difference at new token ')}"
    lines[1] += f"; your text goes on with {got[start:start + 20]!r}"
    guess, outside = _token_matching(grading, got[start:], context_ids, sampling)
    if guess is not None:
        lines.append(guess)
    return lines, OUTSIDE_NUCLEUS_HINT if outside else None


def _token_matching(grading, rest: str, context_ids: list[int], sampling: tuple[float, float] | None) -> tuple[str | None, bool]:
    """(which likely token `rest` starts with and its probability under the distribution,
    whether that token is outside the nucleus)."""
    tok = grading.tokenizer
    probs, before = _distributions(grading, context_ids, sampling)
    _, ids = torch.topk(before, min(50, before.numel()))
    pieces = [(tok.decode([int(i)]), int(i)) for i in ids]
    matches = [(len(piece), i) for piece, i in pieces if piece and rest.startswith(piece)]
    if not matches:
        return None, False
    _, token = max(matches)
    outside = sampling is not None and float(probs[token]) == 0
    where = "outside the nucleus" if outside else f"probability {_probability(float(probs[token]))}"
    return f"your text there looks like token {_piece(tok, token)} (id {token}): {where}", outside


def _as_ids(value) -> list[int] | None:
    try:
        if isinstance(value, torch.Tensor) and not value.is_floating_point():
            return [int(i) for i in value.reshape(-1).tolist()]
        if isinstance(value, (list, tuple)) and all(isinstance(v, torch.Tensor) and v.numel() == 1 and not v.is_floating_point() for v in value):
            return [int(v.item()) for v in value]
    except Exception:  # noqa: BLE001
        return None
    return None


__all__ = ["Mismatch", "call_text", "abbreviate", "mismatch", "checks", "top_tokens", "type_problem"]
