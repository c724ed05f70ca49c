"""Inputs and comparisons shared by the hidden tests."""

from __future__ import annotations

import torch

from autograder import checks
from autograder.feedback import Mismatch, abbreviate, call_text, mismatch, top_tokens, type_problem

# The lecture's prompts and a few more; short, so a correct no-cache loop stays quick
# on the real model.
LECTURE_PROMPT = "Shakespeare was a great"
PROMPTS = [
    LECTURE_PROMPT,
    "def factorial(",
    "Tell me why this person is famous\n\nShakespeare:",
    "Review: It is not being improved despite promises by Paradox.\nDecision: bad\n\nReview: I dont care what everyone says i loved playing the campaign.\nDecision:",
]


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


def check_ids(grading, called: str, prompt: str, got, expected: list[int], *, greedy: bool, hint: str | None = None) -> None:
    """Compare token id lists; explain the first step where they part.

    `greedy`: accept a different token at the first difference when its logit ties the
    maximum (only meaningful when the call used the plain model)."""
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
        logits = grading.logits(prompt_ids + expected[:step])[-1]
        if greedy and float(logits.max() - logits[got[step]]) <= 1e-5 * max(1.0, float(logits.abs().max())):
            return  # an exact tie at the argmax: either token is correct
        probs = logits.softmax(-1)
        detail = (f"first difference at new token {step}: expected {tok.decode([expected[step]])!r} (id {expected[step]}, "
                  f"p={float(probs[expected[step]]):.3f}), got {tok.decode([got[step]])!r} (id {got[step]}, "
                  f"p={float(probs[got[step]]):.3f}).\n          Model's top tokens there: {top_tokens(tok, probs)}")
    elif len(got) > len(expected):
        detail = (f"you returned {len(got)} tokens; the reference stopped after {len(expected)}"
                  + (" (it emitted eos, <|endoftext|>, and stops right after it)" if expected and expected[-1] == tok.eos_token_id else ""))
    else:
        detail = f"you returned only {len(got)} tokens; the reference returned {len(expected)}"
    if got[: len(prompt_ids)] == prompt_ids and len(got) > len(expected):
        hint = hint or "return only the new tokens, not the prompt's"
    raise mismatch(called, f"{abbreviate(expected)} = {tok.decode(expected)!r}", f"{abbreviate(got)} = {tok.decode(got)!r}\n          {detail}", hint)


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
