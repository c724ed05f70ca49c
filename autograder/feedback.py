"""Messages for students: what was called, what was expected, what came back.

Hidden tests raise `Mismatch` with a message built here. The message is all the
student sees of a failing test: never the test's source, never the reference's code.
"""

from __future__ import annotations

import torch

from .sandbox import wire


class Mismatch(AssertionError):
    """A submission's answer is wrong; the message says how, for the student."""


def abbreviate(value, width: int = 90) -> str:
    """A short, readable rendering of an argument or a result."""
    if isinstance(value, wire.Ref):
        return value.name
    if isinstance(value, wire.Seeded):
        return f"torch.Generator().manual_seed({value.seed})"
    if isinstance(value, wire.Frozen):
        return "model"
    if isinstance(value, torch.Tensor):
        flat = value.reshape(-1)
        shown = ", ".join(f"{float(v):.4g}" if value.is_floating_point() else str(int(v)) for v in flat[:4])
        more = ", ..." if flat.numel() > 4 else ""
        return f"tensor(shape={tuple(value.shape)}, dtype={str(value.dtype).removeprefix('torch.')}, [{shown}{more}])"
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= width else text[: width - 5] + "...'"
    if isinstance(value, (list, tuple)):
        items = [abbreviate(v, 20) for v in value[:10]]
        more = f", ... ({len(value)} items)" if len(value) > 10 else ""
        text = ", ".join(items) + more
        return f"[{text}]" if isinstance(value, list) else f"({text})"
    text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def call_text(function: str, args: tuple, kwargs: dict) -> str:
    parts = [abbreviate(a) for a in args] + [f"{k}={abbreviate(v)}" for k, v in kwargs.items()]
    return f"{function}({', '.join(parts)})"


def mismatch(called: str, expected: str, got: str, hint: str | None = None) -> Mismatch:
    lines = [f"Called:   {called}", f"Expected: {expected}", f"Got:      {got}"]
    if hint:
        lines.append(f"Hint:     {hint}")
    return Mismatch("\n".join(lines))


def top_tokens(tokenizer, probs: torch.Tensor, k: int = 5) -> str:
    values, ids = torch.topk(probs, min(k, probs.numel()))
    return ", ".join(f"{tokenizer.decode([int(i)])!r} (id {int(i)}) {float(v):.3f}" for v, i in zip(values, ids))


def type_problem(value, expected: str) -> str | None:
    """A sentence when `value` is not of the expected kind, else None."""
    checks = {
        "tensor": lambda v: isinstance(v, torch.Tensor),
        "ids": lambda v: isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in v),
        "str": lambda v: isinstance(v, str),
    }
    if checks[expected](value):
        return None
    described = type(value).__name__ if not isinstance(value, wire.Opaque) else value.type_name
    wanted = {"tensor": "a torch.Tensor", "ids": "a list of Python ints", "str": "a str"}[expected]
    return f"returned {described} ({abbreviate(value, 60)}), but the contract asks for {wanted}"
