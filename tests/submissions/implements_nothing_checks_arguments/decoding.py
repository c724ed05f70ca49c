"""Implements nothing, shrewdly: every function checks its arguments as the contract asks
(ValueError), then returns a trivial answer that some edge case expects, never the
function's real result.

Uniform distributions (or softmax(logits) at t = 1, the probabilities unchanged), the
single token [eos] (or []), the text if no stop sequence occurs in it (else ''), and ''
for generate_text. It passes every argument check and every trivial edge case and no
main test; with those gated by each function's main tests it must score 0."""

from __future__ import annotations

import math

import torch


def _uniform(scores, dim=-1):
    return torch.full_like(scores, 1.0 / scores.shape[dim], dtype=torch.float32)


def _check_base(base):
    if not isinstance(base, (int, float)) or not math.isfinite(base) or base <= 1:
        raise ValueError("base must be a finite number > 1")


def _check_temperature(temperature):
    if not temperature > 0:
        raise ValueError("temperature must be > 0")


def _check_p(p):
    if not 0 < p <= 1:
        raise ValueError("p must be in (0, 1]")


def _check_stops(stops):
    if any(len(s) == 0 for s in stops):
        raise ValueError("empty stop sequence")


def softmax(scores, base=math.e, dim=-1):
    _check_base(base)
    return _uniform(scores, dim)


def temperature_distribution(logits, temperature):
    _check_temperature(temperature)
    return softmax(logits) if temperature == 1 else _uniform(logits)


def top_p_filter(probs, p):
    _check_p(p)
    return probs


def greedy_decode(model, tokenizer, prompt, max_new_tokens):
    return [tokenizer.eos_token_id] if max_new_tokens > 0 else []


def sample_decode(model, tokenizer, prompt, max_new_tokens, *, temperature=1.0, top_p=1.0, generator=None):
    _check_temperature(temperature)
    _check_p(top_p)
    return [tokenizer.eos_token_id] if max_new_tokens > 0 else []


def truncate_at_stop(text, stop_sequences):
    stops = [stop_sequences] if isinstance(stop_sequences, str) else list(stop_sequences)
    _check_stops(stops)
    return "" if any(stop in text for stop in stops) else text


def generate_text(model, tokenizer, prompt, *, max_new_tokens=20, temperature=0.0, top_p=1.0, stop=None, generator=None):
    if temperature < 0:
        raise ValueError("temperature must be >= 0")
    _check_stops([stop] if isinstance(stop, str) else list(stop or []))
    if temperature > 0:
        _check_p(top_p)
    return ""
