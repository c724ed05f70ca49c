"""softmax(scores, base, dim): Pr_i = b^{u_i} / sum_j b^{u_j}."""

from __future__ import annotations

import math

import pytest
import torch

from autograder.suites.basic_prompting.common import call_text, check_tensor_close, fixed_prompt, model_logits

HINT_BASE = "b^u = e^(u ln b): the base changes how peaked the distribution is"
HINT_OVERFLOW = "b^10000 overflows float32; subtracting max(u) from every score leaves the result unchanged"

SCORES = torch.tensor([2.0, -1.0, 0.5, 3.0, 0.0, -4.5])


def check_softmax(grading, scores: torch.Tensor, hint: str | None = None, **kwargs) -> None:
    """The student's softmax(scores, **kwargs) against the reference's."""
    got = grading.student("softmax", scores, **kwargs)
    exponent = float(scores.abs().max()) * math.log(kwargs.get("base", math.e))
    check_tensor_close(call_text("softmax", (scores,), kwargs), got, grading.reference.softmax(scores, **kwargs), hint, exponent)


@pytest.mark.grades("softmax", weight=1.5, group="public")
@pytest.mark.parametrize("base", [2, math.e, 10, 1.5], ids=["b=2", "b=e", "b=10", "b=1.5"])
def test_hand_made_scores(grading, base):
    """Hand-made scores, several bases"""
    check_softmax(grading, SCORES, HINT_BASE, base=base)


@pytest.mark.grades("softmax", weight=1)
def test_default_base_is_e(grading):
    """The default base is e"""
    check_softmax(grading, SCORES, "base=math.e by default")


@pytest.mark.grades("softmax", weight=1.5)
@pytest.mark.parametrize("base", [math.e, 2, 10], ids=["b=e", "b=2", "b=10"])
def test_huge_scores_stay_finite(grading, base):
    """Scores of magnitude 1e4 give no inf or nan"""
    scores = torch.tensor([1e4, -1e4, 9990.0, 0.0, 1e4 - 1])
    check_softmax(grading, scores, HINT_OVERFLOW, base=base)


@pytest.mark.grades("softmax", weight=1)
@pytest.mark.parametrize("dim", [0, -1, 1], ids=["dim=0", "dim=-1", "dim=1"])
def test_two_dimensional_input(grading, dim):
    """2-D scores along the requested dim"""
    scores = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]])
    check_softmax(grading, scores, "normalise along `dim` only: each slice along it must sum to 1", base=2, dim=dim)


@pytest.mark.grades("softmax", weight=1)
@pytest.mark.parametrize("dim", [-1, 0], ids=["dim=-1", "dim=0"])
def test_two_dimensional_huge_scores(grading, dim):
    """2-D scores of magnitude 1e4, rows and columns of very different scales"""
    # Subtracting the maximum of the whole tensor (not of each slice along `dim`) leaves
    # the second row and column far below it: every power underflows to 0, and 0/0 = nan.
    scores = torch.tensor([[1e4, 0.0, 9999.0], [-1e4, -9999.0, -9999.5]])
    check_softmax(grading, scores, "subtract the maximum of each slice along `dim` (keepdim=True), not of the whole tensor",
                  dim=dim)


@pytest.mark.grades("softmax", weight=1)
def test_three_dimensional_input(grading):
    """3-D scores, middle dim"""
    scores = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) / 7
    check_softmax(grading, scores, base=10, dim=1)


@pytest.mark.grades("softmax", weight=1.5)
@pytest.mark.parametrize("base", [math.e, 2], ids=["b=e", "b=2"])
def test_model_next_token_scores(grading, base):
    """The model's next-token logits (151,936 scores)"""
    logits = model_logits(grading, fixed_prompt("lecture"))  # fixed: see common.fixed_prompt
    check_softmax(grading, logits, HINT_BASE, base=base)


@pytest.mark.grades("softmax", weight=0.5, kind="check", group="public")
@pytest.mark.parametrize("base", [1, 0.5, -2, math.inf, math.nan], ids=["b=1", "b=0.5", "b=-2", "b=inf", "b=nan"])
def test_rejects_bases_outside_the_contract(grading, base):
    """ValueError for a base that is not a finite number > 1"""
    grading.expect_value_error("softmax", torch.tensor([1.0, 2.0]), base=base)
