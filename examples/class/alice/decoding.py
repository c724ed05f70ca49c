"""Assignment `basic_prompting`: turn a language model's scores into text."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def softmax(scores: torch.Tensor, base: float = math.e, dim: int = -1) -> torch.Tensor:
    if isinstance(base, bool) or not math.isfinite(base) or base <= 1:
        raise ValueError(f"base must be a finite number > 1, got {base}")
    # b^u = e^(u * ln b)
    exponents = scores * math.log(base)
    # subtracting the maximum does not change the result but avoids overflow
    exponents = exponents - exponents.max(dim=dim, keepdim=True).values
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
    # the tokens before the running total reaches p, plus the one that makes it reach p
    keep_count = min(int((cumulative < p).sum()) + 1, probs.numel())
    filtered = torch.zeros_like(probs)
    kept = order[:keep_count]
    filtered[kept] = probs[kept]
    return filtered / filtered.sum()


def greedy_decode(model, tokenizer, prompt: str, max_new_tokens: int) -> list[int]:
    input_ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    new_ids = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = model(input_ids=input_ids).logits
            next_id = int(torch.argmax(logits[0, -1]))
            new_ids.append(next_id)
            if next_id == tokenizer.eos_token_id:
                break
            input_ids = torch.cat([input_ids, torch.tensor([[next_id]])], dim=1)
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
    input_ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    new_ids = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = model(input_ids=input_ids).logits[0, -1]
            distribution = top_p_filter(temperature_distribution(logits, temperature), top_p)
            next_id = int(torch.multinomial(distribution, 1, generator=generator))
            new_ids.append(next_id)
            if next_id == tokenizer.eos_token_id:
                break
            input_ids = torch.cat([input_ids, torch.tensor([[next_id]])], dim=1)
    return new_ids


def truncate_at_stop(text: str, stop_sequences: Sequence[str]) -> str:
    if any(stop == "" for stop in stop_sequences):
        raise ValueError("stop sequences must not be empty")
    cut = len(text)
    for stop in stop_sequences:
        position = text.find(stop)
        if position != -1 and position < cut:
            cut = position
    return text[:cut]


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
    if stop is None:
        stop = []
    elif isinstance(stop, str):
        stop = [stop]
    if any(s == "" for s in stop):
        raise ValueError("stop sequences must not be empty")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature > 0 and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    input_ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    new_ids = []
    text = ""
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = model(input_ids=input_ids).logits[0, -1]
            if temperature == 0:
                next_id = int(torch.argmax(logits))
            else:
                distribution = top_p_filter(temperature_distribution(logits, temperature), top_p)
                next_id = int(torch.multinomial(distribution, 1, generator=generator))
            new_ids.append(next_id)
            # decode everything so far: a stop sequence can span several tokens
            text = tokenizer.decode(new_ids)
            if truncate_at_stop(text, stop) != text:
                text = truncate_at_stop(text, stop)
                break
            if next_id == tokenizer.eos_token_id:
                break
            input_ids = torch.cat([input_ids, torch.tensor([[next_id]])], dim=1)
    return text
