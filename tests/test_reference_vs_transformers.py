"""The reference solution equals transformers' own generation on the offline model."""

from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from autograder import checks
from tests.conftest import hf_generate

PROMPTS = ["Shakespeare was a great", "def factorial(", "Tell me why this person is famous\n\nShakespeare:", "hello hello"]


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("max_new_tokens", [1, 7, 30])
def test_greedy_decode_equals_generate(tiny, reference, prompt, max_new_tokens):
    model, tok = tiny
    expected = hf_generate(model, tok, prompt, do_sample=False, max_new_tokens=max_new_tokens)
    assert reference.greedy_decode(model, tok, prompt, max_new_tokens) == expected


def test_greedy_decode_stops_at_eos_like_generate(tiny, reference, eos_prompts):
    model, tok = tiny
    for prompt in eos_prompts:
        ours = reference.greedy_decode(model, tok, prompt, 40)
        assert ours == hf_generate(model, tok, prompt, do_sample=False, max_new_tokens=40)
        assert ours[-1] == tok.eos_token_id and tok.eos_token_id not in ours[:-1]


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9), (1.5, 0.5), (0.3, 1.0), (1.0, 0.95), (5.0, 0.8)])
@pytest.mark.parametrize("seed", [0, 1234])
def test_sample_decode_equals_generate_under_the_same_seed(tiny, reference, temperature, top_p, seed):
    model, tok = tiny
    prompt = "Shakespeare was a great"
    torch.manual_seed(seed)
    expected = hf_generate(model, tok, prompt, do_sample=True, top_k=0, temperature=temperature, top_p=top_p, max_new_tokens=25)
    torch.manual_seed(seed)
    assert reference.sample_decode(model, tok, prompt, 25, temperature=temperature, top_p=top_p) == expected


def test_sample_decode_stops_at_eos_like_generate(tiny, reference, eos_prompts):
    # A cold temperature keeps sampling close to the greedy path that reaches eos.
    model, tok = tiny
    reached_eos = 0
    for prompt in eos_prompts:
        for seed in (0, 1, 2):
            torch.manual_seed(seed)
            expected = hf_generate(model, tok, prompt, do_sample=True, top_k=0, temperature=0.05, top_p=0.9, max_new_tokens=40)
            torch.manual_seed(seed)
            ours = reference.sample_decode(model, tok, prompt, 40, temperature=0.05, top_p=0.9)
            assert ours == expected
            reached_eos += ours[-1] == tok.eos_token_id
    assert reached_eos, "no sampled run reached eos, so this test checked no stopping"


def test_sample_decode_with_a_generator_ignores_the_global_seed(tiny, reference):
    model, tok = tiny
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        runs.append(reference.sample_decode(model, tok, "hello", 20, temperature=1.2, generator=torch.Generator().manual_seed(7)))
    assert runs[0] == runs[1]


def _logit_cases():
    g = torch.Generator().manual_seed(0)
    near_tie = torch.randn(1000, generator=g)
    near_tie[:4] = torch.tensor([5.0, 5.0 - 1e-6, 5.0 - 2e-6, 4.9])
    return {
        "random": torch.randn(151936, generator=g) * 3,
        "peaked": torch.cat([torch.tensor([30.0]), torch.randn(5000, generator=g)]),
        "flat": torch.randn(151936, generator=g) * 0.01,
        "near_tie": near_tie,
    }


@pytest.mark.parametrize("case", list(_logit_cases()))
@pytest.mark.parametrize("temperature", [0.1, 0.7, 1.0, 2.0, 500.0])
def test_temperature_distribution_equals_transformers_warper(reference, case, temperature):
    logits = _logit_cases()[case]
    expected = TemperatureLogitsWarper(temperature)(None, logits[None].clone())[0].softmax(-1)
    torch.testing.assert_close(reference.temperature_distribution(logits, temperature), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("case", list(_logit_cases()))
@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 0.99])
def test_top_p_filter_equals_transformers_warper(reference, case, p):
    logits = _logit_cases()[case]
    probs = logits.softmax(-1)
    warped = TopPLogitsWarper(top_p=p)(None, logits[None].clone())[0].softmax(-1)
    ours = reference.top_p_filter(probs, p)
    # On these cases the reference's float32 nucleus has exactly float64's size. Float32
    # cumsums over 150k tokens (the reference's descending one on very flat distributions,
    # transformers' ascending one more often) can be off by a few boundary tokens, which
    # the grader's 1e-4 mass tolerance accepts.
    assert int((ours > 0).sum()) == checks.nucleus_size_range(probs, p, tol=0)[0]
    assert checks.check_nucleus(probs, p, ours) is None
    assert checks.check_nucleus(probs, p, warped) is None
    both = (ours > 0) & (warped > 0)
    torch.testing.assert_close(ours[both], warped[both], rtol=1e-3, atol=1e-7)
