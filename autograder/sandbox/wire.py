"""Frames on a socket: a JSON header and raw tensor bytes, never pickle.

A frame is ``[8-byte header length][header JSON][blob bytes ...]``; the header lists the
blob lengths. Values are encoded as JSON trees in which tensors point at blobs:

* None, bool, int, str, float (non-finite ones as ``{"__float__": "nan"}``);
* lists; tuples as ``{"__tuple__": [...]}``; dicts as ``{"__dict__": [[key, value], ...]}``;
* tensors as ``{"__tensor__": blob_index, "dtype": "float32", "shape": [...]}``;
* ``{"__ref__": "model"}`` / ``"tokenizer"``: the worker's own model objects;
* ``{"__generator__": seed}``: a fresh ``torch.Generator`` seeded with `seed`;
* anything else as ``{"__object__": type name, "repr": short repr}`` (decoded as `Opaque`).

Decoding builds only plain Python objects and base-class tensors, so a submission's
list, str or tensor subclasses (with lying ``__eq__`` or ``__len__``) never reach the
grading process; sizes are capped so a worker cannot exhaust the grader's memory.
"""

from __future__ import annotations

import json
import math
import socket
import struct
import time
from dataclasses import dataclass

import torch

MAX_HEADER_BYTES = 64 << 20
# Logits rows one memo request may ask for (about 40 MB at Qwen3's vocabulary).
MEMO_ROWS_PER_REQUEST = 64
MAX_FRAME_BYTES = 64 << 20  # far above any honest answer (a 151,936-float distribution is 0.6 MB)
MAX_DEPTH = 50

DTYPES = {
    str(dtype).removeprefix("torch."): dtype
    for dtype in (
        torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8, torch.int8,
        torch.int16, torch.int32, torch.int64, torch.bool,
    )
}


class WireError(Exception):
    """The peer sent something that is not a valid frame (or went away)."""


class PeerClosed(WireError):
    """The peer closed the connection (for a worker: it exited or was killed)."""


@dataclass(frozen=True)
class Ref:
    """A stand-in for an object only the worker holds (the model, the tokenizer)."""

    name: str


MODEL = Ref("model")
TOKENIZER = Ref("tokenizer")


@dataclass(frozen=True)
class Seeded:
    """A `torch.Generator` to build on the worker side, seeded with `seed`."""

    seed: int


@dataclass(frozen=True)
class Frozen:
    """A `FrozenLogitsModel` to build on the worker side from these logits."""

    logits: torch.Tensor


@dataclass(frozen=True)
class EosAfter:
    """The worker's model, with eos forced as the `k`-th new token after a prompt of `prompt_length` tokens."""

    prompt_length: int
    k: int


@dataclass(frozen=True)
class Opaque:
    """Something a submission returned that has no plain-data form."""

    type_name: str
    repr: str

    def __str__(self) -> str:
        return f"<{self.type_name}: {self.repr}>"


def _short_repr(value) -> str:
    try:
        text = object.__repr__(value) if isinstance(value, type) else repr(value)
    except BaseException:  # noqa: BLE001 - a hostile __repr__ must not break encoding
        text = "<unprintable>"
    return str(text)[:200]


def encode(value, blobs: list[bytes], depth: int = 0):
    """`value` as a JSON tree; tensor bytes are appended to `blobs`."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    if value is None or isinstance(value, bool):  # bool cannot be subclassed
        return value
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        number = float.__float__(value)
        return number if math.isfinite(number) else {"__float__": repr(number)}
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, Ref):
        return {"__ref__": value.name}
    if isinstance(value, Seeded):
        return {"__generator__": int(value.seed)}
    if isinstance(value, Frozen):
        return {"__frozen_model__": encode(value.logits, blobs, depth + 1)}
    if isinstance(value, EosAfter):
        return {"__eos_after__": [int(value.prompt_length), int(value.k)]}
    if isinstance(value, torch.Tensor):
        tensor = torch.Tensor.detach(value).cpu().contiguous()
        dtype = str(tensor.dtype).removeprefix("torch.")
        if dtype not in DTYPES:
            return {"__object__": f"Tensor[{dtype}]", "repr": f"shape {list(tensor.shape)}"}
        raw = tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        blobs.append(raw)
        return {"__tensor__": len(blobs) - 1, "dtype": dtype, "shape": list(tensor.shape)}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(item, blobs, depth + 1) for item in tuple.__iter__(value)]}
    if isinstance(value, list):
        return [encode(item, blobs, depth + 1) for item in list.__iter__(value)]
    if isinstance(value, dict):
        return {"__dict__": [[encode(k, blobs, depth + 1), encode(v, blobs, depth + 1)] for k, v in dict.items(value)]}
    if type(value).__module__ == "numpy" and hasattr(value, "dtype"):
        try:
            return encode(torch.from_numpy(__import__("numpy").asarray(value).copy()), blobs, depth)
        except Exception:  # noqa: BLE001
            pass
    return {"__object__": f"{type(value).__module__}.{type(value).__qualname__}", "repr": _short_repr(value)}


def decode(tree, blobs: list[bytes], resolve_ref=None, depth: int = 0):
    """The inverse of `encode`; `resolve_ref(name)` maps `Ref`s to real objects (worker side)."""
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    if tree is None or isinstance(tree, (bool, int, str)):
        return tree
    if isinstance(tree, float):
        return tree
    if isinstance(tree, list):
        return [decode(item, blobs, resolve_ref, depth + 1) for item in tree]
    if not isinstance(tree, dict) or len(tree) == 0:
        raise WireError(f"unexpected value {str(tree)[:80]}")
    if "__float__" in tree:
        return float(tree["__float__"])
    if "__tuple__" in tree:
        return tuple(decode(item, blobs, resolve_ref, depth + 1) for item in tree["__tuple__"])
    if "__dict__" in tree:
        return {
            _hashable(decode(k, blobs, resolve_ref, depth + 1)): decode(v, blobs, resolve_ref, depth + 1)
            for k, v in tree["__dict__"]
        }
    if "__tensor__" in tree:
        return _decode_tensor(tree, blobs)
    if "__ref__" in tree:
        if resolve_ref is None:
            raise WireError("references are only valid towards the worker")
        return resolve_ref(tree["__ref__"])
    if "__frozen_model__" in tree:
        if resolve_ref is None:
            raise WireError("stand-in models are only valid towards the worker")
        from .stubs import FrozenLogitsModel

        return FrozenLogitsModel(decode(tree["__frozen_model__"], blobs, None, depth + 1), resolve_ref("model").config)
    if "__eos_after__" in tree:
        if resolve_ref is None:
            raise WireError("stand-in models are only valid towards the worker")
        from .stubs import EosForcingModel

        prompt_length, k = (int(n) for n in tree["__eos_after__"])
        return EosForcingModel(resolve_ref("model"), prompt_length, k, resolve_ref("tokenizer").eos_token_id)
    if "__generator__" in tree:
        return torch.Generator().manual_seed(int(tree["__generator__"]))
    if "__object__" in tree:
        return Opaque(str(tree["__object__"])[:200], str(tree.get("repr", ""))[:200])
    raise WireError(f"unexpected value {str(tree)[:80]}")


def _hashable(key):
    return key if isinstance(key, (str, int, float, bool, tuple, type(None))) else str(key)


def _decode_tensor(tree: dict, blobs: list[bytes]) -> torch.Tensor:
    dtype = DTYPES.get(tree.get("dtype"))
    index, shape = tree.get("__tensor__"), tree.get("shape")
    if dtype is None or not isinstance(index, int) or not 0 <= index < len(blobs):
        raise WireError("malformed tensor")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise WireError("malformed tensor shape")
    raw = blobs[index]
    numel = math.prod(shape)
    itemsize = torch.empty((), dtype=dtype).element_size()
    if len(raw) != numel * itemsize:
        raise WireError("tensor size does not match its shape")
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape).clone()


# --- frames -------------------------------------------------------------------------


def send_message(sock: socket.socket, header: dict, blobs: list[bytes] = ()) -> None:
    header = dict(header, blobs=[len(b) for b in blobs])
    body = json.dumps(header, allow_nan=False, ensure_ascii=True).encode("ascii")
    sock.sendall(struct.pack("!Q", len(body)) + body)
    for blob in blobs:
        sock.sendall(blob)


def send_value_message(sock: socket.socket, header: dict, value=None, *, key: str = "value") -> None:
    blobs: list[bytes] = []
    tree = encode(value, blobs)
    send_message(sock, dict(header, **{key: tree}), blobs)


def _recv_exact(sock: socket.socket, size: int, deadline: float | None = None) -> bytes:
    chunks, remaining = [], size
    while remaining:
        if deadline is not None:
            sock.settimeout(max(deadline - time.monotonic(), 1e-3))  # socket.timeout past it
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise PeerClosed("connection closed")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv_message(sock: socket.socket, deadline: float | None = None) -> tuple[dict, list[bytes]]:
    """One frame: (header, blobs). Raises `PeerClosed` at EOF, `WireError` on garbage,
    `TimeoutError` when `deadline` (a `time.monotonic()` value) passes first."""
    (length,) = struct.unpack("!Q", _recv_exact(sock, 8, deadline))
    if length > MAX_HEADER_BYTES:
        raise WireError(f"header of {length} bytes is too large")
    try:
        header = json.loads(_recv_exact(sock, length, deadline).decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WireError(f"unreadable header: {error}") from None
    if not isinstance(header, dict):
        raise WireError("header is not an object")
    sizes = header.get("blobs", [])
    if not isinstance(sizes, list) or not all(isinstance(n, int) and n >= 0 for n in sizes):
        raise WireError("malformed blob list")
    if sum(sizes) > MAX_FRAME_BYTES:
        raise WireError(f"frame of {sum(sizes)} bytes is too large")
    return header, [_recv_exact(sock, n, deadline) for n in sizes]
