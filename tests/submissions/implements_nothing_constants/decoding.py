"""Implements nothing: every function returns a constant of the right type.

Tensors of zeros shaped like the input, [] for the token ids, '' for the texts. It
passes trivial edge cases (max_new_tokens=0, a stop at position 0) and nothing else;
with those gated by each function's main tests it must score 0."""

from __future__ import annotations

import math

import torch


def softmax(scores, base=math.e, dim=-1):
    return torch.zeros_like(scores)


def temperature_distribution(logits, temperature):
    return torch.zeros_like(logits)


def top_p_filter(probs, p):
    return torch.zeros_like(probs)


def greedy_decode(model, tokenizer, prompt, max_new_tokens):
    return []


def sample_decode(model, tokenizer, prompt, max_new_tokens, *, temperature=1.0, top_p=1.0, generator=None):
    return []


def truncate_at_stop(text, stop_sequences):
    return ""


def generate_text(model, tokenizer, prompt, *, max_new_tokens=20, temperature=0.0, top_p=1.0, stop=None, generator=None):
    return ""
