"""Assignment `basic_prompting`: turn a language model's scores into text.

You implement the seven functions below. Each docstring is the contract the grader
checks: inputs, shapes, dtypes, what to return and which errors to raise. Keep the
names and signatures exactly as they are. Everything runs on the CPU; wrap model calls
in `torch.no_grad()`.

Useful facts about the model and tokenizer (Qwen/Qwen3-0.6B-Base):

* ``tokenizer(prompt, return_tensors="pt")["input_ids"]`` is a LongTensor of shape
  ``(1, prompt_length)``.
* ``model(input_ids=ids).logits`` has shape ``(1, sequence_length, vocab_size)``; the
  scores for the *next* token are the ones at the last position.
* ``tokenizer.eos_token_id`` is the id of ``<|endoftext|>``; ``tokenizer.decode(ids)``
  turns a list of ids back into text.

The decoding functions (`greedy_decode`, `sample_decode`, `generate_text`) are the
decoding loop itself: write the loop; do not call ``model.generate``. Use only
``model(input_ids)`` (with the keyword arguments you like: attention_mask,
past_key_values, use_cache, ...), its ``.logits``, ``model.config``, ``model.device`` and
``model.parameters()``. To control the logits, the grader passes stand-in models that
behave like the real one there but have no ``generate``: calling it raises AttributeError
and the test scores 0. (`generate` is fine in the notebook, to check your results.)

Run the public tests with ``pytest`` in this folder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def softmax(scores: torch.Tensor, base: float = math.e, dim: int = -1) -> torch.Tensor:
    """Turn scores into probabilities with an arbitrary base b > 1.

    The lecture's formula, applied along dimension `dim`:

        Pr{X = t_i} = b^{u_i} / sum_j b^{u_j}

    With b = e this is the usual softmax. A larger b makes the distribution more
    peaked; a b closer to 1 makes it flatter.

    Args:
        scores: a float tensor of any shape (the u's), e.g. logits of shape (vocab,).
        base: the base b; a finite real number greater than 1.
        dim: the dimension whose entries must sum to 1.

    Returns:
        A tensor of the same shape as `scores`: non-negative, summing to 1 along `dim`.
        It must contain no inf or nan, even for float32 scores as large as 1e4 in
        magnitude (b^{10000} overflows: what can you subtract from every score without
        changing the result?).

    Raises:
        ValueError: if `base` is not a finite number > 1.
    """
    raise NotImplementedError("softmax is not implemented yet")


def temperature_distribution(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The next-token distribution at temperature t.

        Pr{X = t_i} = e^{u_i / t} / sum_j e^{u_j / t}

    t = 1 gives the ordinary softmax; t < 1 sharpens the distribution ("more
    confident, less creative"); t > 1 flattens it.

    Args:
        logits: a float tensor whose last dimension runs over the vocabulary.
        temperature: t, a number > 0.

    Returns:
        A tensor shaped like `logits` that sums to 1 over its last dimension.

    Raises:
        ValueError: if `temperature` is not > 0.
    """
    raise NotImplementedError("temperature_distribution is not implemented yet")


def top_p_filter(probs: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus (top-p) filtering of a next-token distribution.

    Keep the smallest set T' of the most likely tokens whose total probability is at
    least p; set every other token's probability to 0; renormalise so the result sums
    to 1 again.

    The lecture says to divide the kept probabilities by p. That is only
    approximately right: the kept tokens' total is at least p, usually a bit more, so
    divide by what they really sum to.

    Think about the token whose probability makes the running total reach p: does it
    belong to T'? When several tokens tie at the boundary, any smallest set is correct.

    Args:
        probs: a 1-D float tensor of shape (vocab,) that sums to 1.
        p: the nucleus mass, 0 < p <= 1. (p = 1 keeps every token.)

    Returns:
        A 1-D tensor of the same shape: zeros outside T', summing to 1.

    Raises:
        ValueError: if p is not in (0, 1].
    """
    raise NotImplementedError("top_p_filter is not implemented yet")


def greedy_decode(model, tokenizer, prompt: str, max_new_tokens: int) -> list[int]:
    """Greedy decoding: at every step append the single most likely next token.

    Tokenize `prompt`, then repeat up to `max_new_tokens` times: run the model, take
    the argmax of the scores at the last position, append it to the sequence. Stop
    early right after emitting `tokenizer.eos_token_id` (keep that id as the last one).
    ``max_new_tokens=0`` gives ``[]``.

    The result must equal what ``model.generate(**inputs, do_sample=False,
    max_new_tokens=max_new_tokens)`` produces after the prompt, but write the loop
    yourself: do not call ``model.generate`` (the grader's stand-in models have none;
    see the top of this file).

    Speed (optional): the plain loop runs the model on the whole sequence at every step,
    so each step costs more than the last (see the student README for measured times).
    Two standard tricks give exactly the same tokens, faster: ``model(input_ids,
    logits_to_keep=1)`` computes the scores of the last position only, and the KV cache
    (``use_cache=True``; next step, pass the output's ``past_key_values`` and only the
    new token) stops the model from re-reading the whole sequence. Neither is required.

    Args:
        model: a causal language model (e.g. Qwen3ForCausalLM) in eval mode.
        tokenizer: its tokenizer.
        prompt: the text to continue.
        max_new_tokens: the most tokens to generate (>= 0).

    Returns:
        Only the new token ids, as a list of Python ints (not the prompt's ids).
    """
    raise NotImplementedError("greedy_decode is not implemented yet")


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
    """Sampling with temperature and nucleus (top-p) filtering.

    Like `greedy_decode`, but each step draws the next token at random from

        distribution = top_p_filter(temperature_distribution(last_logits, temperature), top_p)

    using exactly one call ``torch.multinomial(distribution, 1, generator=generator)``
    per step, over the full vocabulary. (That single draw per step is what makes your
    results reproducible: the same seed gives the same tokens as the reference.)
    Temperature first, then top-p: the nucleus is chosen from the distribution *at
    temperature t*, not from the plain softmax (the two nuclei differ).
    Stop as greedy does: after eos (kept) or after `max_new_tokens` tokens.
    Write the loop yourself, as in `greedy_decode`: do not call ``model.generate``.

    With ``generator=None`` after ``torch.manual_seed(s)``, the result equals
    ``torch.manual_seed(s); model.generate(**inputs, do_sample=True, top_k=0,
    top_p=top_p, temperature=temperature, max_new_tokens=...)``. Note ``top_k=0``:
    `generate` silently keeps only the 50 most likely tokens unless told otherwise,
    which is why the lecture's temperature=500 example still looks half-readable.

    Args:
        model, tokenizer, prompt, max_new_tokens: as in `greedy_decode`.
        temperature: t > 0.
        top_p: nucleus mass p, 0 < p <= 1.
        generator: the torch.Generator to draw from (None: torch's global one).

    Returns:
        Only the new token ids, as a list of Python ints.

    Raises:
        ValueError: for a temperature or top_p outside its range.
    """
    raise NotImplementedError("sample_decode is not implemented yet")


def truncate_at_stop(text: str, stop_sequences: Sequence[str]) -> str:
    """Cut `text` before the earliest occurrence of any stop sequence.

    "Earliest" means the smallest position in `text`, whatever the order of
    `stop_sequences`. Text that contains no stop sequence comes back unchanged.

    Example: truncate_at_stop("a\\n\\nb\\ndef", ["\\ndef", "\\n\\n"]) == "a"

    Raises:
        ValueError: if any stop sequence is the empty string.
    """
    raise NotImplementedError("truncate_at_stop is not implemented yet")


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
    """The lecture's `generate_text`, done properly, with stop sequences.

    temperature == 0 means greedy decoding; otherwise sample as `sample_decode` does
    (same temperature, top_p and generator). Generate one token at a time and stop
    as soon as the decoded continuation contains a stop sequence (a stop sequence may
    span several tokens, so look at the decoded text, not at single tokens), or at
    eos, or after `max_new_tokens` tokens. Write the loop yourself (or build on your
    own functions above); do not call ``model.generate``.

    Returns:
        Only the continuation: ``tokenizer.decode(new_ids)`` with special tokens kept
        as `decode` gives them, cut before the earliest stop sequence. So when
        generation ends at eos, the text ends with ``<|endoftext|>`` (the eos token as
        text): keep it, do not pass ``skip_special_tokens=True``.

    Raises:
        ValueError: for a negative temperature, a top_p outside (0, 1], or an empty
        stop sequence.
    """
    raise NotImplementedError("generate_text is not implemented yet")
