"""A self-test submission for few_shot_prompting: label_log_probs reads each label token's log-probability from its own row instead of the row before it (the row that predicts it).

The contract (names, signatures, errors) is the one in
`assignments/few_shot_prompting/prompting.py`; the hidden suite compares student work
with these functions.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch


def _check_label(name: str, label: str) -> None:
    if not isinstance(label, str) or label == "" or "\n" in label or label.endswith(":"):
        raise ValueError(f"{name} must be a non-empty string without a newline and without a final ':', got {label!r}")


def few_shot_prompt(
    examples: Sequence[tuple[str, str]],
    query: str,
    *,
    input_label: str = "Review",
    output_label: str = "Decision",
) -> str:
    """Example blocks "In: x\\nOut: y", then the query block "In: q\\nOut:", separated by blank lines."""
    _check_label("input_label", input_label)
    _check_label("output_label", output_label)
    blocks = [f"{input_label}: {text}\n{output_label}: {answer}" for text, answer in examples]
    blocks.append(f"{input_label}: {query}\n{output_label}:")
    return "\n\n".join(blocks)


def _check_labels(labels: list) -> None:
    if not labels:
        raise ValueError("labels must not be empty")
    if any(not isinstance(label, str) or label == "" for label in labels):
        raise ValueError(f"every label must be a non-empty string, got {labels!r}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be distinct, got {labels!r}")


def label_log_probs(model, tokenizer, prompt: str, labels: Sequence[str]) -> dict[str, float]:
    """ln Pr{label | prompt} for each label: one forward pass over prompt + label, summing
    the log-probabilities of the label's tokens, each predicted by the position before it."""
    labels = list(labels)
    _check_labels(labels)
    prompt_ids = tokenizer(prompt)["input_ids"]
    if not prompt_ids:
        raise ValueError("the prompt must not be empty")
    n = len(prompt_ids)
    scores = {}
    with torch.no_grad():
        for label in labels:
            label_ids = tokenizer(label, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt_ids + label_ids], device=model.device)
            log_probs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
            # The logits at position i are about token i + 1, so label token j (at position
            # n + j) is predicted by row n + j - 1.
            rows = log_probs[n : n + len(label_ids)]
            scores[label] = float(rows[torch.arange(len(label_ids)), label_ids].sum())
    return scores


def classify(model, tokenizer, prompt: str, labels: Sequence[str]) -> str:
    """The most likely label (the first one on a tie)."""
    labels = list(labels)
    scores = label_log_probs(model, tokenizer, prompt, labels)
    return max(labels, key=lambda label: scores[label])  # max keeps the first of equal scores


def _function_end(source: str, completion_start: int) -> int | None:
    """Where the function in `source` ends: the offset of the first line that starts at or
    after `completion_start`, is non-blank at column 0, and follows a body line (a
    non-blank line that starts with whitespace). None while there is no such line."""
    seen_body = False
    offset = 0
    for line in source.split("\n"):
        if line.strip():
            if line[0].isspace():
                seen_body = True
            elif seen_body and offset >= completion_start:
                return offset
        offset += len(line) + 1
    return None


def _greedy_tokens(model, ids: list[int], max_new_tokens: int):
    """Yield greedy next tokens after `ids`, one at a time, reusing the KV cache."""
    # transformers 5 calls the KV cache `cache`; 4.x `past_key_values`.
    cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    input_ids = torch.tensor([ids], device=model.device)
    past = None
    with torch.no_grad():
        for _ in range(max_new_tokens):
            output = model(input_ids=input_ids, use_cache=True, **{cache_name: past})
            past = output["cache"] if "cache" in output else output.past_key_values
            token = int(torch.argmax(output.logits[0, -1]))
            yield token
            input_ids = torch.tensor([[token]], device=model.device)


def complete_function(model, tokenizer, header: str, *, max_new_tokens: int) -> str:
    """The greedy completion of the function that `header` starts, cut where it ends."""
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    header_ids = tokenizer(header)["input_ids"]
    if not header_ids:
        raise ValueError("the header must not be empty")
    new_ids: list[int] = []
    for token in _greedy_tokens(model, header_ids, max_new_tokens):
        if token == tokenizer.eos_token_id:
            break
        new_ids.append(token)
        # Decode all new ids together: a character's bytes may span several tokens.
        text = tokenizer.decode(new_ids)
        end = _function_end(header + text, len(header))
        if end is not None:
            return text[: end - len(header)].rstrip()
    return tokenizer.decode(new_ids).rstrip()
