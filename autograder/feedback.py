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
    """A short, readable rendering of an argument or a result.

    `value` may be anything a submission returned (decoded from the wire: nested
    containers, huge or odd tensors, forged `Opaque` names); this never raises and never
    renders more than it shows."""
    try:
        return _abbreviate(value, width, 0)
    except Exception as error:  # noqa: BLE001 - a message for a student must not break grading
        return f"<{type(value).__name__} that could not be shown: {type(error).__name__}>"


def _clip(text: str, width: int, tail: str = "...") -> str:
    return text if len(text) <= width else text[: max(width - len(tail), 0)] + tail


def _abbreviate(value, width: int, depth: int) -> str:
    if isinstance(value, wire.Ref):
        return value.name
    if isinstance(value, wire.Seeded):
        return f"torch.Generator().manual_seed({value.seed})"
    if isinstance(value, wire.Frozen):
        return "model"
    if isinstance(value, torch.Tensor):
        flat = value.detach().reshape(-1)
        shown = ", ".join(f"{float(v):.4g}" if value.is_floating_point() else str(int(v)) for v in flat[:4])
        more = ", ..." if flat.numel() > 4 else ""
        return f"tensor(shape={tuple(value.shape)}, dtype={str(value.dtype).removeprefix('torch.')}, [{shown}{more}])"
    if isinstance(value, str):
        text = repr(value[: width + 1])  # repr escapes lone surrogates and control characters
        return text if len(value) <= width and len(text) <= width else text[: width - 5] + "...'"
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return _clip(str(value) if value.bit_length() < 1000 else f"<int of {value.bit_length()} bits>", width)
    if isinstance(value, (list, tuple, dict)):
        if depth >= 3:
            return "[...]" if isinstance(value, list) else "(...)" if isinstance(value, tuple) else "{...}"
        if isinstance(value, dict):
            items = [f"{_abbreviate(k, 20, depth + 1)}: {_abbreviate(v, 20, depth + 1)}" for k, v in list(value.items())[:10]]
        else:
            items = [_abbreviate(v, 20, depth + 1) for v in value[:10]]
        more = f", ... ({len(value)} items)" if len(value) > 10 else ""
        text = ", ".join(items) + more
        if isinstance(value, dict):
            return "{" + text + "}"
        return f"[{text}]" if isinstance(value, list) else f"({text})"
    return _clip(str(value), width)


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
