"""Implements nothing: every function raises ValueError, whatever it is given.

It passes every argument-check test (they expect ValueError) and nothing else; with the
checks gated by each function's main tests it must score 0."""

from __future__ import annotations

import math


def softmax(scores, base=math.e, dim=-1):
    raise ValueError("not implemented")


def temperature_distribution(logits, temperature):
    raise ValueError("not implemented")


def top_p_filter(probs, p):
    raise ValueError("not implemented")


def greedy_decode(model, tokenizer, prompt, max_new_tokens):
    raise ValueError("not implemented")


def sample_decode(model, tokenizer, prompt, max_new_tokens, *, temperature=1.0, top_p=1.0, generator=None):
    raise ValueError("not implemented")


def truncate_at_stop(text, stop_sequences):
    raise ValueError("not implemented")


def generate_text(model, tokenizer, prompt, *, max_new_tokens=20, temperature=0.0, top_p=1.0, stop=None, generator=None):
    raise ValueError("not implemented")
