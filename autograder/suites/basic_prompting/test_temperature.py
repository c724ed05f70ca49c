"""temperature_distribution(logits, t) = softmax(logits / t) over the last dim."""

from __future__ import annotations

import pytest
import torch

from autograder.suites.basic_prompting.common import call_text, check_tensor_close, fixed_prompt, model_logits

HINT = "divide the logits by t (t < 1 sharpens, t > 1 flattens), then softmax over the last dimension"


def check_temperature(grading, logits: torch.Tensor, temperature: float, hint: str = HINT) -> None:
    """The student's temperature_distribution against the reference's."""
    got = grading.student("temperature_distribution", logits, temperature)
    check_tensor_close(call_text("temperature_distribution", (logits, temperature), {}), got,
                       grading.reference.temperature_distribution(logits, temperature), hint,
                       float(logits.abs().max()) / temperature)


@pytest.mark.grades("temperature_distribution", weight=1)
@pytest.mark.parametrize("temperature", [0.1, 0.5, 2.0])
@pytest.mark.parametrize("kind", ["lecture", "code"])
def test_model_logits(grading, kind, temperature):
    """The model's next-token logits at several temperatures"""
    check_temperature(grading, model_logits(grading, fixed_prompt(kind)), temperature)  # fixed: see common.fixed_prompt


# t = 1 is softmax(logits) (what ignoring t gives); at t = 500 every one of the 151,936
# probabilities is within the tolerance of the uniform 1/vocab.
@pytest.mark.grades("temperature_distribution", weight=1, kind="check", group="public")
@pytest.mark.parametrize("temperature", [1.0, 500.0])
@pytest.mark.parametrize("kind", ["lecture", "code"])
def test_model_logits_limit_temperatures(grading, kind, temperature):
    """The model's next-token logits at several temperatures"""
    check_temperature(grading, model_logits(grading, fixed_prompt(kind)), temperature)


@pytest.mark.grades("temperature_distribution", weight=1.5, group="public")
def test_batch_of_rows(grading):
    """A 2-D batch is normalised along its last dim"""
    logits = torch.tensor([[3.0, 1.0, 0.2, -1.0], [0.0, 0.0, 5.0, 1.0]])
    check_temperature(grading, logits, 0.7, "each row is its own distribution")


@pytest.mark.grades("temperature_distribution", weight=1.5)
def test_low_temperature_on_large_logits(grading):
    """t=0.1 on logits near 1e3 stays finite"""
    logits = torch.tensor([1000.0, 999.0, 990.0, -1000.0])
    check_temperature(grading, logits, 0.1, "logits / t can be huge: keep the softmax stable")


@pytest.mark.grades("temperature_distribution", weight=0.75, kind="check", group="public")
@pytest.mark.parametrize("temperature", [0, -1.0], ids=["t=0", "t=-1"])
def test_rejects_non_positive_temperature(grading, temperature):
    """ValueError for t <= 0"""
    grading.expect_value_error("temperature_distribution", torch.tensor([1.0, 2.0]), temperature)
