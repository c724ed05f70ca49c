"""A model whose continuation only the grading process knows, to see how far a loop asks.

"Stops generating as soon as a stop sequence appears" cannot be checked from anything
the submission's process reports: its code can patch whatever runs there (the wire
module, a forward-pass counter). So that test hands the submission `SCRIPTED_MODEL`:
every time it is called, it asks the grading process which token follows each
position (`stubs.ScriptedModel`). The grading process answers from a continuation it
never sends (`Script`) and notes the furthest new token asked for. A loop that
generates everything and cuts afterwards asks for tokens past the stop, and no code in
the worker can hide that.
"""

from __future__ import annotations

from .wire import Ref

SCRIPTED_MODEL = Ref("scripted_model")
MAX_SEQUENCE_TOKENS = 1 << 15


class Script:
    """The grading process's side: the continuation to follow, and how far a call asked."""

    def __init__(self, prompt_ids: list[int], continuation: list[int], eos_token_id: int):
        self.prompt_length = len(prompt_ids)
        self.continuation = [int(t) for t in continuation]
        self.eos_token_id = int(eos_token_id)
        self.furthest = -1  # index of the furthest new token the submission asked for

    def next_tokens(self, sequence: list[int], positions: list[int]) -> list[int]:
        """The token after each of `positions` of `sequence` (prompt rows: the prompt's own)."""
        answers = []
        for position in positions:
            new_index = position + 1 - self.prompt_length
            if new_index < 0:
                following = position + 1
                answers.append(int(sequence[following]) if following < len(sequence) else self.eos_token_id)
                continue
            self.furthest = max(self.furthest, new_index)
            answers.append(self.continuation[new_index] if new_index < len(self.continuation) else self.eos_token_id)
        return answers


def valid_question(value) -> tuple[list[int], list[int]] | None:
    """(sequence, positions) from a worker's question, or None when it is not one."""
    if not (isinstance(value, dict) and isinstance(value.get("sequence"), list) and isinstance(value.get("positions"), list)):
        return None
    sequence, positions = value["sequence"], value["positions"]
    if len(sequence) > MAX_SEQUENCE_TOKENS or len(positions) > len(sequence):
        return None
    if not all(type(t) is int for t in sequence) or not all(type(p) is int and 0 <= p < len(sequence) for p in positions):
        return None
    return sequence, positions
