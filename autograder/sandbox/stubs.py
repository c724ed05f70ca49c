"""Trusted stand-in models, built inside a worker from plain data.

`EosForcingModel` is the real model with eos forced at a given step.
`FrozenLogitsModel` answers every position with the same logits, whatever the input:
sampling from it many times gives i.i.d. draws from one known distribution, so the
statistical tests need no real forward passes.
"""

from __future__ import annotations

import torch


class FrozenLogitsModel(torch.nn.Module):
    """Looks like a causal LM to a decoding loop; logits are `logits` at every position."""

    def __init__(self, logits: torch.Tensor, config=None):
        super().__init__()
        self.register_buffer("frozen", logits.float().reshape(-1))
        self.config = config

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def forward(self, input_ids=None, **_):
        from transformers.modeling_outputs import CausalLMOutputWithPast

        length = 1 if input_ids is None else int(torch.as_tensor(input_ids).shape[-1])
        logits = self.frozen.expand(1, length, -1).clone()
        return CausalLMOutputWithPast(logits=logits, past_key_values=None)


class EosForcingModel(torch.nn.Module):
    """The real model, except that the `k`-th new token (0-based) is forced to be eos.

    Works whatever model the course uses, so tests of "stop right after eos" need no
    prompt that happens to reach eos. Positions are absolute: for each output row, the
    past length (from `past_key_values`) plus the row index says which token it predicts.
    """

    def __init__(self, model, prompt_length: int, k: int, eos_token_id: int):
        super().__init__()
        self.inner = model
        self.prompt_length, self.k, self.eos_token_id = prompt_length, k, eos_token_id
        self.config = getattr(model, "config", None)

    @property
    def device(self) -> torch.device:
        return self.inner.device

    @property
    def dtype(self) -> torch.dtype:
        return self.inner.dtype

    def forward(self, input_ids=None, past_key_values=None, cache=None, **kwargs):
        # The KV cache is `past_key_values` in transformers 4, `cache` in 5: accept both,
        # hand it on under the name the wrapped model knows.
        past = cache if cache is not None else past_key_values
        past_length = _past_length(past)  # before the call: the cache grows in place
        if past is not None:
            from .memo import cache_argument

            kwargs[cache_argument(self.inner.forward)] = past
        output = self.inner(input_ids=input_ids, **kwargs)
        logits = output.logits
        for row in range(logits.shape[1]):
            if past_length + row + 1 - self.prompt_length == self.k:
                forced = torch.full_like(logits[:, row], float("-inf"))
                forced[:, self.eos_token_id] = 0.0
                logits = logits.clone()
                logits[:, row] = forced
        output.logits = logits
        return output


def _past_length(past) -> int:
    if past is None:
        return 0
    if hasattr(past, "get_seq_length"):
        return int(past.get_seq_length())
    return int(past[0][0].shape[-2])  # legacy tuple of (key, value) per layer
