"""top_p_filter(probs, p): the smallest top set with mass >= p, renormalised."""

from __future__ import annotations

import pytest
import torch

from autograder.suites.basic_prompting.common import abbreviate, call_text, checks, fixed_prompt, mismatch, model_logits, type_problem

HINT_CROSSING = "the token whose probability makes the running total reach p belongs to the nucleus"
HINT_RENORM = "divide the kept probabilities by what they really sum to (dividing by p is only approximate)"


def check_nucleus(grading, probs: torch.Tensor, p: float, hint: str | None = None) -> None:
    called = call_text("top_p_filter", (probs, p), {})
    got = grading.student("top_p_filter", probs, p)
    problem = type_problem(got, "tensor") or checks.check_nucleus(probs, p, got)
    if problem:
        expected = grading.reference.top_p_filter(probs, p)
        size = int((expected > 0).sum())
        if hint is None:
            hint = HINT_RENORM if "renormalised" in problem else HINT_CROSSING
        raise mismatch(called, f"{abbreviate(expected)} keeping {size} token(s)", f"{abbreviate(got)}: {problem}", hint)


@pytest.mark.grades("top_p_filter", weight=1)
@pytest.mark.parametrize("p", [0.5, 0.9, 0.95])
@pytest.mark.parametrize("kind", ["lecture", "code", "question"])
def test_model_distributions(grading, kind, p):
    """The model's next-token distribution"""
    check_nucleus(grading, model_logits(grading, fixed_prompt(kind)).softmax(-1), p)  # fixed: see common.fixed_prompt


@pytest.mark.grades("top_p_filter", weight=2, group="public")
def test_crossing_token_is_kept(grading):
    """The token that crosses p is kept"""
    check_nucleus(grading, torch.tensor([0.1, 0.5, 0.3, 0.1]), 0.6, HINT_CROSSING)


@pytest.mark.grades("top_p_filter", weight=1.5)
def test_renormalises(grading):
    """Kept probabilities are renormalised to sum to 1"""
    check_nucleus(grading, torch.tensor([0.05, 0.45, 0.15, 0.35]), 0.7, HINT_RENORM)


@pytest.mark.grades("top_p_filter", weight=1.5, kind="check", group="public")
def test_p_one_keeps_every_token(grading):
    """p = 1 keeps every token"""
    probs = torch.softmax(torch.linspace(-3, 3, 50), -1)
    check_nucleus(grading, probs, 1.0, "with p = 1 the nucleus is the whole vocabulary")


@pytest.mark.grades("top_p_filter", weight=1.5)
def test_tiny_p_keeps_only_the_most_likely(grading):
    """A tiny p keeps only the most likely token"""
    check_nucleus(grading, torch.tensor([0.2, 0.1, 0.4, 0.3]), 1e-6, "the most likely token alone already has mass >= p")


@pytest.mark.grades("top_p_filter", weight=1)
def test_peaked_distribution(grading):
    """A peaked distribution keeps one token"""
    probs = torch.cat([torch.tensor([0.97]), torch.full((30,), 0.001)])
    check_nucleus(grading, probs, 0.9)


@pytest.mark.grades("top_p_filter", weight=1)
def test_flat_distribution(grading):
    """A flat distribution keeps about p of the tokens"""
    probs = torch.softmax(torch.linspace(0, 0.01, 1000), -1)
    check_nucleus(grading, probs, 0.5)


@pytest.mark.grades("top_p_filter", weight=1)
def test_ties_at_the_boundary(grading):
    """Ties at the boundary: any smallest set is right"""
    check_nucleus(grading, torch.tensor([0.2, 0.2, 0.2, 0.2, 0.2]), 0.5)


@pytest.mark.grades("top_p_filter", weight=0.7, kind="check", group="public")
@pytest.mark.parametrize("p", [0, -0.1, 1.5], ids=["p=0", "p=-0.1", "p=1.5"])
def test_rejects_p_outside_the_contract(grading, p):
    """ValueError for p outside (0, 1]"""
    grading.expect_value_error("top_p_filter", torch.tensor([0.5, 0.3, 0.2]), p)
