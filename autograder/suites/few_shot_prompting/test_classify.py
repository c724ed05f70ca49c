"""classify(model, tokenizer, prompt, labels): the label with the highest ln Pr (the first on a tie)."""

from __future__ import annotations

import math

import pytest
import torch

from autograder.sandbox.wire import MODEL, TOKENIZER, Frozen

from autograder.suites.few_shot_prompting.common import (
    GOOD_BAD,
    OTHER_REVIEWS,
    REVIEWS,
    XY,
    abbreviate,
    close,
    few_shot,
    mismatch,
    short,
    type_problem,
)

HINT = "return the label whose label_log_probs value is the largest, exactly as given in `labels`"


def check_choice(grading, model, prompt: str, labels: list[str], what: str, hint: str = HINT) -> None:
    expected = grading.ref("classify", model, TOKENIZER, prompt, labels)
    got = grading.student("classify", model, TOKENIZER, prompt, labels)
    called = f"classify({what}, {labels!r})"
    problem = type_problem(got, "str")
    if problem:
        raise mismatch(called, repr(expected), abbreviate(got), problem)
    if got == expected:
        return
    scores = grading.ref("label_log_probs", model, TOKENIZER, prompt, labels)
    if got in scores and close(scores[got], scores[expected]):
        return  # a tie within rounding: either answer is right
    shown = ", ".join(f"{label!r} {value:.4f}" for label, value in scores.items())
    if got not in labels:
        hint = "return one of the labels, exactly as given (with its leading space), not generated text"
    raise mismatch(called, f"{expected!r}  (ln Pr: {shown})", abbreviate(got), hint)


@pytest.mark.grades("classify", weight=1.5, group="public")
def test_lecture_review(grading):
    """good/bad for the lecture's last review"""
    check_choice(grading, MODEL, few_shot(grading, REVIEWS[-1]), GOOD_BAD, "model, tokenizer, <the lecture's few-shot prompt>")


@pytest.mark.grades("classify", weight=1)
@pytest.mark.parametrize("review", range(5), ids=[f"review {i + 1}" for i in range(5)])
def test_lecture_reviews(grading, review):
    """good/bad for each of the lecture's reviews"""
    check_choice(grading, MODEL, few_shot(grading, REVIEWS[review]), GOOD_BAD,
                 f"model, tokenizer, <few-shot prompt for {short(REVIEWS[review])!r}>")


@pytest.mark.grades("classify", weight=0.75)
@pytest.mark.parametrize("review", [0, 3, 5], ids=["review 1", "review 4", "review 6"])
def test_x_y_labels(grading, review):
    """X/Y for the lecture's reviews"""
    check_choice(grading, MODEL, few_shot(grading, REVIEWS[review], XY), [" X", " Y"],
                 f"model, tokenizer, <X/Y few-shot prompt for {short(REVIEWS[review])!r}>")


@pytest.mark.grades("classify", weight=1.5)
@pytest.mark.parametrize("labels", [[" very good", " very bad"], [" bad", " not bad at all", " good"]],
                         ids=["same first token", "three labels"])
def test_labels_of_several_tokens(grading, labels):
    """Labels of several tokens"""
    check_choice(grading, MODEL, few_shot(grading, OTHER_REVIEWS[2]), labels,
                 f"model, tokenizer, <few-shot prompt for {short(OTHER_REVIEWS[2])!r}>",
                 "compare the log-probabilities of whole labels (all their tokens), not just their first tokens")


def _vocab(grading) -> int:
    return int(grading.logits(grading.prompt_ids("Decision:"))[-1].numel())


@pytest.mark.grades("classify", weight=2)
def test_compares_whole_labels(grading):
    """A label of two likely tokens loses to one less likely token"""
    tok = grading.tokenizer
    very, good, bad = (tok(text, add_special_tokens=False)["input_ids"][0] for text in (" very", " good", " bad"))
    # After every prefix: Pr(' very') = Pr(' good') = 0.4, Pr(' bad') = 0.2, any other token ~0.
    # ln Pr(' very good') = 2 ln 0.4 = -1.83 < ln 0.2 = -1.61; first tokens alone pick ' very good'.
    logits = torch.full((_vocab(grading),), -1e4)
    logits[[very, good]] = math.log(0.4)
    logits[bad] = math.log(0.2)
    check_choice(grading, Frozen(logits), "Decision:", [" very good", " bad"],
                 "<a model that always predicts ' very' 0.4, ' good' 0.4, ' bad' 0.2>, tokenizer, 'Decision:'",
                 "ln Pr(' very good') = 2 ln 0.4 = -1.83 < ln Pr(' bad') = ln 0.2 = -1.61: add up the "
                 "log-probabilities of all of a label's tokens")


@pytest.mark.grades("classify", weight=0.75, kind="check")
@pytest.mark.parametrize("labels", [[" good", " bad", " okay"], [" okay", " bad", " good"]], ids=["good first", "okay first"])
def test_ties_go_to_the_first_label(grading, labels):
    """Equally likely labels: the first one listed"""
    expected = labels[0]
    got = grading.student("classify", Frozen(torch.zeros(_vocab(grading))), TOKENIZER, "Decision:", labels)
    if got != expected:
        raise mismatch(f"classify(<a model that finds every token equally likely>, tokenizer, 'Decision:', {labels!r})",
                       repr(expected), abbreviate(got),
                       "on a tie, return the label that comes first in `labels` (max() over the labels in order does that)")


BAD_ARGUMENTS = {
    "no labels": ("Decision:", []),
    "empty label": ("Decision:", ["", " bad"]),
    "repeated label": ("Decision:", [" good", " good"]),
}


@pytest.mark.grades("classify", weight=0.5, kind="check", group="public")
@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_rejects_bad_arguments(grading, case):
    """ValueError for no labels, an empty label or a repeated label"""
    prompt, labels = BAD_ARGUMENTS[case]
    grading.expect_value_error("classify", MODEL, TOKENIZER, prompt, labels)
