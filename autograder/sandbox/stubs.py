"""Trusted stand-in models, built inside a worker from plain data.

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
