"""Implements nothing: every function hands back (part of) what it was given.

softmax and temperature_distribution return the scores, top_p_filter the probabilities,
the decoding loops the prompt's token ids (or [] when asked for no token),
truncate_at_stop the text, generate_text the prompt (or '' when asked for no token).
It passes identity-like edge cases (p = 1, no stop occurs, max_new_tokens=0) and
nothing else; with those gated by each function's main tests it must score 0."""

from __future__ import annotations

import math


def softmax(scores, base=math.e, dim=-1):
    return scores


def temperature_distribution(logits, temperature):
    return logits


def top_p_filter(probs, p):
    return probs


def greedy_decode(model, tokenizer, prompt, max_new_tokens):
    return tokenizer(prompt)["input_ids"][:max_new_tokens] if max_new_tokens > 0 else []


def sample_decode(model, tokenizer, prompt, max_new_tokens, *, temperature=1.0, top_p=1.0, generator=None):
    return tokenizer(prompt)["input_ids"][:max_new_tokens] if max_new_tokens > 0 else []


def truncate_at_stop(text, stop_sequences):
    return text


def generate_text(model, tokenizer, prompt, *, max_new_tokens=20, temperature=0.0, top_p=1.0, stop=None, generator=None):
    return prompt if max_new_tokens > 0 else ""
