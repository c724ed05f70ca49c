"""Assignment `basic_prompting`: turn a language model's scores into text."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def softmax(scores: torch.Tensor, base: float = math.e, dim: int = -1) -> torch.Tensor:
    if isinstance(base, bool) or not math.isfinite(base) or base <= 1:
        raise ValueError(f"base must be a finite number > 1, got {base}")
    # b^u = e^(u * ln b); subtract the maximum along dim so nothing overflows
    exponents = scores * math.log(base)
    exponents = exponents - exponents.amax(dim=dim, keepdim=True)
    powers = torch.exp(exponents)
    return powers / powers.sum(dim=dim, keepdim=True)


def temperature_distribution(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return softmax(logits / temperature, dim=-1)


def top_p_filter(probs: torch.Tensor, p: float) -> torch.Tensor:
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    if p == 1:
        return probs.clone()
    sorted_probs, order = torch.sort(probs, descending=True)
    cumulative = torch.cumsum(sorted_probs, dim=0)
    keep_count = min(int((cumulative < p).sum()) + 1, probs.numel())
    filtered = torch.zeros_like(probs)
    filtered[order[:keep_count]] = probs[order[:keep_count]]
    return filtered / filtered.sum()


def _encode(model, tokenizer, prompt: str):
    """The prompt's ids and attention mask, on the model's device (the usual HF idiom)."""
    device = next(model.parameters()).device
    encoded = tokenizer(prompt, return_tensors="pt")
    return encoded["input_ids"].to(device), encoded["attention_mask"].to(device)


def greedy_decode(model, tokenizer, prompt: str, max_new_tokens: int) -> list[int]:
    input_ids, attention_mask = _encode(model, tokenizer, prompt)
    new_ids: list[int] = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            outputs = model(input_ids, attention_mask)  # positional, as in many tutorials
            next_token_logits = outputs.logits[:, -1, :]  # (batch, vocab)
            next_token = next_token_logits.argmax(dim=-1)  # (batch,)
            new_ids.append(next_token.item())
            if next_token.item() == tokenizer.eos_token_id:
                break
            input_ids = torch.cat([input_ids, next_token.unsqueeze(-1)], dim=-1)
            attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], dim=-1)
    return new_ids


def sample_decode(
    model,
    tokenizer,
    prompt: str,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> list[int]:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    input_ids, attention_mask = _encode(model, tokenizer, prompt)
    past_key_values = None
    new_ids: list[int] = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            # KV cache: after the first step, feed only the newest token (the mask covers everything)
            outputs = model(input_ids, attention_mask, past_key_values=past_key_values, use_cache=True)
            past_key_values = outputs.past_key_values
            next_token_logits = outputs.logits[:, -1, :]  # (1, vocab)
            probs = temperature_distribution(next_token_logits, temperature)[0]
            probs = top_p_filter(probs, top_p)
            next_token = torch.multinomial(probs, 1, generator=generator)  # (1,)
            new_ids.append(int(next_token))
            if int(next_token) == tokenizer.eos_token_id:
                break
            input_ids = next_token.view(1, 1)
            attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], dim=-1)
    return new_ids


def truncate_at_stop(text: str, stop_sequences: Sequence[str]) -> str:
    if any(stop == "" for stop in stop_sequences):
        raise ValueError("stop sequences must not be empty")
    positions = [text.find(stop) for stop in stop_sequences]
    positions = [p for p in positions if p >= 0]
    return text[: min(positions)] if positions else text


def generate_text(
    model,
    tokenizer,
    prompt: str,
    *,
    max_new_tokens: int = 20,
    temperature: float = 0.0,
    top_p: float = 1.0,
    stop: Sequence[str] | None = None,
    generator: torch.Generator | None = None,
) -> str:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if any(s == "" for s in stops):
        raise ValueError("stop sequences must not be empty")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature > 0 and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    input_ids, attention_mask = _encode(model, tokenizer, prompt)
    new_ids: list[int] = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            outputs = model(input_ids, attention_mask)
            next_token_logits = outputs.logits[:, -1, :]
            if temperature == 0:
                next_token = next_token_logits.argmax(dim=-1)
            else:
                probs = top_p_filter(temperature_distribution(next_token_logits, temperature)[0], top_p)
                next_token = torch.multinomial(probs, 1, generator=generator)
            new_ids.append(int(next_token))
            text = tokenizer.decode(new_ids)
            if truncate_at_stop(text, stops) != text:
                return truncate_at_stop(text, stops)
            if new_ids[-1] == tokenizer.eos_token_id:
                break
            input_ids = torch.cat([input_ids, next_token.view(1, 1)], dim=-1)
            attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], dim=-1)
    return tokenizer.decode(new_ids)
