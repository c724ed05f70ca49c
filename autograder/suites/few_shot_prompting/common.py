"""Inputs and comparisons shared by the hidden tests of few_shot_prompting."""

from __future__ import annotations

import math

import torch

from autograder.feedback import Mismatch, abbreviate, call_text, mismatch, type_problem  # noqa: F401 - re-exported

# The lecture's few-shot examples (Steam reviews of Cities: Skylines II) and the six Diablo IV
# reviews it classified.
LECTURE_EXAMPLES = (
    ("tried on gamepass, and freaking love it, might as well get it on steam while its on sale.", "good"),
    ("Game was released defunct, with Paradox and Colossal lying about the state of the game and the game play aspects.", "bad"),
    ("It is not being improved despite promises by Paradox.", "bad"),
    ("Almost seven months after launch this game is still not were it is supposed to.", "bad"),
)
XY = {"good": "X", "bad": "Y"}
REVIEWS = (
    "1)I know Blizzard gets a lot of hate, but personally, I don't think it gets enough. 2)During my childhood Blizzard couldn’t get it wrong. As an adult, they can’t get it right",
    "Either you work as a laborer or you farm in Diablo 4. They're both the same.",
    "If you had fun with previous Diablo titles, you'll enjoy this one. It's nothing new or groundbreaking, more or less the same as Diablo III with a graphics upgrade",
    "I'm not really the target audience here, as I don't stick around with ARPGs for long, but so far it's been quite enjoyable and addicting... and also the one I've played the most.",
    "I heard a lot of trash talk about D4, and let’s be honest here - a lot of criticism is absolutely justified, but the game is nowhere near as bad as some people paint it to be",
    "I dont care what everyone says i loved playing the campaign.",
)
# Reviews the lecture did not show.
OTHER_REVIEWS = (
    "Crashes every ten minutes, refunded.",
    "Best strategy game I have played in years.",
    "The story drags but the combat is great fun.",
    "Too expensive for what it offers.",
)
GOOD_BAD = [" good", " bad"]


def lecture_examples(labels: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """The lecture's examples, their answers renamed by `labels` (e.g. XY)."""
    return [(text, (labels or {}).get(answer, answer)) for text, answer in LECTURE_EXAMPLES]


def few_shot(grading, query: str, labels: dict[str, str] | None = None) -> str:
    """The lecture's few-shot prompt for `query`, built by the reference's few_shot_prompt."""
    return grading.reference.few_shot_prompt(lecture_examples(labels), query)


def zero_shot(review: str) -> str:
    """The lecture's last zero-shot prompt."""
    return f"Tell me if this is a good or a bad review for the game:\n\n{review}\n\nDecision (good/bad):"


def short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


# -- log-probabilities ----------------------------------------------------------------------

# Two correct float32 computations (one sequence at a time or a padded batch, a KV cache or
# not) agree far more closely than this; every mistake we know of is off by far more.
ABS_TOL, REL_TOL = 2e-4, 1e-5


def close(got: float, expected: float) -> bool:
    return math.isclose(got, expected, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def as_float(value) -> float | None:
    """A returned value as a float (a one-element tensor counts here: the type has its own test)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point():
        return float(value)
    return None


def _rows(grading, ids: list[int]) -> torch.Tensor:
    """ln Pr{next token | ids[:i+1]} for every i: shape (len(ids), vocab), float64."""
    return torch.log_softmax(grading.logits(ids).double(), dim=-1)


def known_mistakes(grading, prompt: str, label: str) -> dict[str, float]:
    """What some wrong ways of computing ln Pr{label | prompt} give, by name."""
    tok = grading.tokenizer
    prompt_ids, label_ids = grading.prompt_ids(prompt), tok(label, add_special_tokens=False)["input_ids"]
    n, k = len(prompt_ids), len(label_ids)
    ids = prompt_ids + label_ids
    rows = _rows(grading, ids)
    right = float(sum(rows[n - 1 + j, label_ids[j]] for j in range(k)))
    mistakes = {
        "off by one": float(sum(rows[n + j, label_ids[j]] for j in range(k))),
        "the first token only": float(rows[n - 1, label_ids[0]]) if k > 1 else None,
        "the prompt scored too": float(sum(rows[i - 1, ids[i]] for i in range(1, len(ids)))) if n > 1 else None,
        "a probability, not its log": math.exp(right),
        "log base 2": right / math.log(2),
        "log base 10": right / math.log(10),
    }
    joined = tok(prompt + label)["input_ids"]
    if joined != ids and len(joined) > k:
        # prompt + label tokenized as one string, and its last k tokens scored
        joint_rows = _rows(grading, joined)
        last = range(len(joined) - k, len(joined))
        mistakes["prompt + label tokenized together"] = float(sum(joint_rows[i - 1, joined[i]] for i in last))
    return {name: value for name, value in mistakes.items() if value is not None}


MISTAKE_HINTS = {
    "off by one": "row i of the logits predicts token i + 1: read each label token's log-probability from the row of "
                  "the position BEFORE it (the first label token from the prompt's last row)",
    "the first token only": "a label of several tokens: add up the log-probabilities of ALL its tokens",
    "the prompt scored too": "score only the label's tokens, never the prompt's: we want Pr{label | prompt}",
    "a probability, not its log": "return the natural log of the probability (sum of log_softmax values), not the probability",
    "log base 2": "use the natural log (torch.log_softmax), not log base 2",
    "log base 10": "use the natural log (torch.log_softmax), not log base 10",
    "prompt + label tokenized together": "tokenize the prompt and the label separately and join the two id lists: "
                                         "tokenizer(prompt + label) merges characters across the boundary into other tokens",
}
HINT_LOG_PROBS = ("ids = prompt ids + label ids (tokenized separately); one forward pass; log_softmax over the "
                  "vocabulary; add up the label tokens' values, each from the row of the position just before it")


def check_log_probs(grading, called: str, prompt: str, labels: list[str], got, expected: dict[str, float],
                    *, diagnose: bool = True) -> None:
    """`got` must map each label (in order) to a float close to the reference's."""
    shown = "{" + ", ".join(f"{label!r}: {value:.5f}" for label, value in expected.items()) + "}"
    if not isinstance(got, dict):
        raise mismatch(called, shown, abbreviate(got), f"return a dict (label -> float), not {type(got).__name__}")
    if list(got) != list(expected):
        raise mismatch(called, shown, abbreviate(got),
                       "one entry per label, keyed by the label exactly as given, in the order of `labels`")
    for label, value in expected.items():
        number = as_float(got[label])
        if number is not None and close(number, value):
            continue
        hint = HINT_LOG_PROBS
        if number is not None and diagnose:
            found = next((name for name, wrong in known_mistakes(grading, prompt, label).items()
                          if math.isclose(number, wrong, rel_tol=1e-4, abs_tol=1e-3)), None)
            hint = MISTAKE_HINTS.get(found, hint)
        raise mismatch(called, shown, abbreviate(got) + f"\n          the value for {label!r} differs", hint)
