"""Self-test submission: the reference with one bug. generate_text decodes each new token
on its own and joins the pieces, so a character whose bytes are split over several
tokens (emoji, CJK) comes out as replacement characters.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Iterator, Sequence

import torch


def softmax(scores: torch.Tensor, base: float = math.e, dim: int = -1) -> torch.Tensor:
    """Pr_i = b^{u_i} / sum_j b^{u_j} along `dim`.

    b^u = e^{u ln b}, so this is the usual softmax of `(u - max u) * ln(b)`. Subtracting
    the maximum first keeps scores of magnitude 1e4 finite, and doing it *before* the
    multiplication keeps float32 exact there: 1e4 * ln(b) would carry a rounding error
    of ~1e-3 into the exponent.
    """
    if isinstance(base, bool) or not isinstance(base, numbers.Real) or not math.isfinite(base) or base <= 1:
        raise ValueError(f"base must be a finite number > 1, got {base!r}")
    scores = torch.as_tensor(scores)
    if not scores.is_floating_point():
        scores = scores.to(torch.get_default_dtype())
    shifted = scores - scores.amax(dim=dim, keepdim=True)
    return torch.softmax(shifted * math.log(base), dim=dim)


def temperature_distribution(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(logits / t) over the last dimension."""
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    return softmax(torch.as_tensor(logits) / temperature, dim=-1)


def top_p_filter(probs: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens with total probability >= p; renormalise.

    A token belongs to the nucleus when the mass of the tokens strictly more likely
    than it (in sorted order) is still below p: the token that crosses p is kept.
    """
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 < p <= 1:
        raise ValueError(f"p must satisfy 0 < p <= 1, got {p!r}")
    if probs.dim() != 1:
        raise ValueError(f"probs must be 1-D, got shape {tuple(probs.shape)}")
    if p == 1:
        # Everything is kept. Returning the input unchanged (not re-divided by its float
        # sum) keeps sampling bit-identical to `generate`, which skips top-p at p = 1.
        return probs.clone()
    sorted_probs, order = torch.sort(probs, descending=True)
    mass_before = torch.cumsum(sorted_probs, dim=0) - sorted_probs
    keep_sorted = mass_before < p
    keep_sorted[0] = True  # the most likely token is always kept
    keep = torch.zeros_like(keep_sorted).scatter(0, order, keep_sorted)
    kept = torch.where(keep, probs, torch.zeros_like(probs))
    return kept / kept.sum()


def truncate_at_stop(text: str, stop_sequences: Sequence[str]) -> str:
    """The text before the earliest occurrence of any stop sequence."""
    # A bare string is one stop sequence (not one per character); a one-shot iterator is
    # read once.
    stops = [stop_sequences] if isinstance(stop_sequences, str) else list(stop_sequences)
    if any(len(stop) == 0 for stop in stops):
        raise ValueError("stop sequences must be non-empty strings")
    positions = [text.find(stop) for stop in stops]
    found = [position for position in positions if position >= 0]
    return text[: min(found)] if found else text


def _new_tokens(model, tokenizer, prompt: str, max_new_tokens: int, choose) -> Iterator[int]:
    """Yield new token ids one at a time: `choose(last_logits)` picks each, eos ends it.

    Keeps the model's KV cache between steps, so each step feeds only the newest token
    instead of re-running the whole sequence (same logits in float32, much faster).
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    input_ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(model.device)
    # transformers 5 calls the KV cache `cache`; 4.x (and the lecture) `past_key_values`.
    cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    past = None
    with torch.no_grad():
        for _ in range(max_new_tokens):
            output = model(input_ids=input_ids, use_cache=True, **{cache_name: past})
            # (reading `past_key_values` when `cache` is there warns in transformers 5)
            past = output["cache"] if "cache" in output else output.past_key_values
            token = int(choose(output.logits[0, -1].float()))
            yield token
            if token == tokenizer.eos_token_id:
                return
            input_ids = torch.tensor([[token]], device=model.device)


def _sampler(temperature: float, top_p: float, generator: torch.Generator | None):
    def choose(logits: torch.Tensor) -> int:
        distribution = top_p_filter(temperature_distribution(logits, temperature), top_p)
        return int(torch.multinomial(distribution, 1, generator=generator))

    return choose


def greedy_decode(model, tokenizer, prompt: str, max_new_tokens: int) -> list[int]:
    """The new token ids of greedy decoding (argmax at every step)."""
    return list(_new_tokens(model, tokenizer, prompt, max_new_tokens, lambda logits: torch.argmax(logits)))


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
    """The new token ids of temperature + nucleus sampling, one multinomial draw per step."""
    # Validate before the first forward pass, so a bad argument fails fast.
    temperature_distribution(torch.zeros(1), temperature)
    top_p_filter(torch.ones(1), top_p)
    return list(_new_tokens(model, tokenizer, prompt, max_new_tokens, _sampler(temperature, top_p, generator)))


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
    """The decoded continuation of `prompt`, cut before the first stop sequence."""
    stop = [stop] if isinstance(stop, str) else list(stop or [])
    truncate_at_stop("", stop)  # rejects empty stop sequences up front
    top_p_filter(torch.ones(1), top_p)
    if temperature == 0:
        choose = lambda logits: torch.argmax(logits)  # noqa: E731
    else:
        temperature_distribution(torch.zeros(1), temperature)
        choose = _sampler(temperature, top_p, generator)
    text = ""
    for token in _new_tokens(model, tokenizer, prompt, max_new_tokens, choose):
        text += tokenizer.decode([token])  # BUG: decodes token by token instead of all new ids together
        truncated = truncate_at_stop(text, stop)
        if truncated != text:
            return truncated
    return text
