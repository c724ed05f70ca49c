"""label_log_probs(model, tokenizer, prompt, labels): ln Pr{label | prompt} for each label."""

from __future__ import annotations

import pytest
import torch

from autograder.sandbox.wire import MODEL, TOKENIZER, Frozen

from autograder.suites.few_shot_prompting.common import (
    GOOD_BAD,
    OTHER_REVIEWS,
    REVIEWS,
    XY,
    abbreviate,
    call_text,
    check_log_probs,
    few_shot,
    mismatch,
    short,
    zero_shot,
)


def check(grading, prompt: str, labels: list[str], what: str) -> None:
    expected = grading.ref("label_log_probs", MODEL, TOKENIZER, prompt, labels)
    got = grading.student("label_log_probs", MODEL, TOKENIZER, prompt, labels)
    check_log_probs(grading, f"label_log_probs(model, tokenizer, <{what}>, {labels!r})", prompt, labels, got, expected)


@pytest.mark.grades("label_log_probs", weight=2, group="public")
def test_good_bad_lecture_prompt(grading):
    """' good' and ' bad' after the lecture's few-shot prompt"""
    check(grading, few_shot(grading, REVIEWS[-1]), GOOD_BAD, "the lecture's few-shot prompt")


@pytest.mark.grades("label_log_probs", weight=1)
@pytest.mark.parametrize("review", range(5), ids=[f"review {i + 1}" for i in range(5)])
def test_good_bad_on_the_lecture_reviews(grading, review):
    """' good' and ' bad' for each of the lecture's reviews"""
    check(grading, few_shot(grading, REVIEWS[review]), GOOD_BAD, f"few-shot prompt for {short(REVIEWS[review])!r}")


@pytest.mark.grades("label_log_probs", weight=1.5)
@pytest.mark.parametrize("review", [REVIEWS[3], OTHER_REVIEWS[1]], ids=["lecture review", "other review"])
def test_x_y_labels(grading, review):
    """The lecture's X/Y labels"""
    check(grading, few_shot(grading, review, XY), [" X", " Y"], f"X/Y few-shot prompt for {short(review)!r}")


@pytest.mark.grades("label_log_probs", weight=3)
@pytest.mark.parametrize("labels", [[" very good", " very bad"], [" not bad at all", " bad", " a total waste of money"]],
                         ids=["two tokens each", "one to five tokens"])
def test_labels_of_several_tokens(grading, labels):
    """Labels of several tokens: all of their tokens, each given those before it"""
    check(grading, few_shot(grading, OTHER_REVIEWS[2]), labels, f"few-shot prompt for {short(OTHER_REVIEWS[2])!r}")


@pytest.mark.grades("label_log_probs", weight=1.5)
def test_zero_shot_prompt(grading):
    """Four labels after the lecture's zero-shot prompt"""
    check(grading, zero_shot(REVIEWS[-1]), [" good", " bad", " Good", " Bad"], "the lecture's zero-shot prompt")


@pytest.mark.grades("label_log_probs", weight=3)
def test_prompt_and_label_tokenized_separately(grading):
    """A prompt ending in a space: the label is tokenized on its own"""
    prompt, labels = few_shot(grading, REVIEWS[2]) + " ", ["good", "bad"]
    tok = grading.tokenizer
    if tok(prompt + labels[0])["input_ids"] == grading.prompt_ids(prompt) + tok(labels[0], add_special_tokens=False)["input_ids"]:
        pytest.fail("the tokenizer does not merge ' ' + 'good' on this model; the TA should check the test")
    check(grading, prompt, labels, "few-shot prompt ending in ': '")


@pytest.mark.grades("label_log_probs", weight=2)
def test_label_that_merges_with_the_prompt(grading):
    """A label whose first characters would merge with the prompt's last ones"""
    # Tokenized together, " isn't" is ' isn', "'t"; the prompt alone ends in ' is' and "n't" alone is 'n', "'t".
    prompt, labels = "The movie was good, but the book is", ["n't", " not", " better"]
    tok = grading.tokenizer
    if tok(prompt + labels[0])["input_ids"] == grading.prompt_ids(prompt) + tok(labels[0], add_special_tokens=False)["input_ids"]:
        pytest.fail("the tokenizer does not merge across the boundary here; the TA should check the test")
    check(grading, prompt, labels, repr(prompt))


@pytest.mark.grades("label_log_probs", weight=1.5)
def test_one_token_prompt(grading):
    """A prompt of one token: its only row predicts the label's first token"""
    prompt = "Review"
    if len(grading.prompt_ids(prompt)) != 1:
        pytest.fail("'Review' is not one token on this tokenizer; the TA should check the test")
    check(grading, prompt, [":", " of", " the game"], repr(prompt))


def _frozen_logits(grading) -> torch.Tensor:
    vocab = int(grading.logits(grading.prompt_ids("Decision:"))[-1].numel())
    return torch.randn(vocab, generator=torch.Generator().manual_seed(20260601)) * 3


@pytest.mark.grades("label_log_probs", weight=2)
def test_only_the_label_is_scored(grading):
    """Only the label's tokens are scored (a model that predicts the same distribution everywhere)"""
    # Each label token then adds the same known log-probability whatever precedes it: a
    # prompt token scored too, or a token left out, changes the sum.
    logits = _frozen_logits(grading)
    model, prompt, labels = Frozen(logits), "Review: Loved it.\nDecision:", [" good", " very good indeed", " bad"]
    expected = grading.ref("label_log_probs", model, TOKENIZER, prompt, labels)
    got = grading.student("label_log_probs", model, TOKENIZER, prompt, labels)
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    sums = {label: " + ".join(f"{float(log_probs[t]):.3f}" for t in grading.tokenizer(label, add_special_tokens=False)["input_ids"])
            for label in labels}
    check_log_probs(grading, f"label_log_probs(<a model whose next-token distribution is the same after every prefix>, "
                    f"tokenizer, {prompt!r}, {labels!r})  # ln Pr of each label: {sums}", prompt, labels, got, expected,
                    diagnose=False)


@pytest.mark.grades("label_log_probs", weight=1, kind="check", group="public")
def test_returns_python_floats(grading):
    """Returns a dict of plain Python floats"""
    prompt, labels = few_shot(grading, OTHER_REVIEWS[0]), GOOD_BAD
    got = grading.student("label_log_probs", MODEL, TOKENIZER, prompt, labels)
    if not isinstance(got, dict) or not all(type(value) is float for value in got.values()):
        raise mismatch(call_text("label_log_probs", (MODEL, TOKENIZER, "<few-shot prompt>", labels), {}),
                       "a dict of Python floats, e.g. {' good': -1.23, ' bad': -0.45}", abbreviate(got),
                       "float(tensor) turns a one-element tensor into a Python float")


BAD_ARGUMENTS = {
    "no labels": ("Decision:", []),
    "empty label": ("Decision:", [" good", ""]),
    "repeated label": ("Decision:", [" good", " bad", " good"]),
    "empty prompt": ("", [" good", " bad"]),
}


@pytest.mark.grades("label_log_probs", weight=0.5, kind="check", group="public")
@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_rejects_bad_arguments(grading, case):
    """ValueError for no labels, an empty or repeated label, or an empty prompt"""
    prompt, labels = BAD_ARGUMENTS[case]
    grading.expect_value_error("label_log_probs", MODEL, TOKENIZER, prompt, labels)
