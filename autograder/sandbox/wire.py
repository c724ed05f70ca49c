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
# Nesting of a whole header: a value tree sits a few levels below its top, and each of its
# levels takes up to three JSON levels ({"__dict__": [[key, value], ...]}).
MAX_HEADER_DEPTH = 3 * MAX_DEPTH + 32
MAX_BLOBS = 1 << 16  # tensors in one frame
MAX_TENSOR_DIMS = 32
# No dimension of a tensor on the wire is larger (a non-empty tensor's dimensions are all
# at most its element count, itself bounded by the frame size).
MAX_TENSOR_DIM = MAX_FRAME_BYTES
# Generator seeds: what torch.Generator.manual_seed accepts.
SEED_RANGE = (-(1 << 63), (1 << 64) - 1)

DTYPES = {
    str(dtype).removeprefix("torch."): dtype
    for dtype in (
        torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8, torch.int8,
        torch.int16, torch.int32, torch.int64, torch.bool,
    )
}


class WireError(Exception):
    """The peer sent something that is not a valid frame (or went away).

    Whatever bytes arrive, `recv_message` and `decode` raise nothing else (besides
    `TimeoutError` when a deadline passes)."""


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
        if dtype not in DTYPES or not _plausible_shape(list(tensor.shape)):
            return {"__object__": f"Tensor[{dtype}]", "repr": f"shape {list(tensor.shape)[:MAX_TENSOR_DIMS]}"[:200]}
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
    """The inverse of `encode`; `resolve_ref(name)` maps `Ref`s to real objects (worker side).

    A forged tree (wrong types, bad sizes, a blob used twice, nesting too deep) raises
    `WireError` and nothing else: what a worker sends is the student's to choose."""
    try:
        return _decode(tree, blobs, resolve_ref, depth, set())
    except WireError:
        raise
    except Exception as error:  # noqa: BLE001 - any surprise (RecursionError, MemoryError...) is a malformed value
        raise WireError(f"malformed value ({type(error).__name__}: {str(error)[:200]})") from None


def _decode(tree, blobs: list[bytes], resolve_ref, depth: int, used: set[int]):
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    if tree is None or isinstance(tree, (bool, str)):
        return tree
    if isinstance(tree, int):
        return int(tree)
    if isinstance(tree, float):
        return tree
    if isinstance(tree, list):
        return [_decode(item, blobs, resolve_ref, depth + 1, used) for item in tree]
    if not isinstance(tree, dict) or len(tree) == 0:
        raise WireError(f"unexpected value {_short(tree)}")
    if "__float__" in tree:
        text = tree["__float__"]
        if not isinstance(text, str) or len(text) > 32:
            raise WireError("malformed float")
        return float(text)
    if "__tuple__" in tree:
        items = _expect_list(tree["__tuple__"], "tuple")
        return tuple(_decode(item, blobs, resolve_ref, depth + 1, used) for item in items)
    if "__dict__" in tree:
        result = {}
        for pair in _expect_list(tree["__dict__"], "dict"):
            if not isinstance(pair, list) or len(pair) != 2:
                raise WireError("malformed dict item")
            key = _hashable(_decode(pair[0], blobs, resolve_ref, depth + 1, used))
            result[key] = _decode(pair[1], blobs, resolve_ref, depth + 1, used)
        return result
    if "__tensor__" in tree:
        return _decode_tensor(tree, blobs, used)
    if "__ref__" in tree:
        if resolve_ref is None:
            raise WireError("references are only valid towards the worker")
        name = tree["__ref__"]
        if not isinstance(name, str) or len(name) > 100:
            raise WireError(f"malformed reference {_short(name)}")
        return resolve_ref(name)  # an unknown name (KeyError) becomes a WireError in `decode`
    if "__frozen_model__" in tree:
        if resolve_ref is None:
            raise WireError("stand-in models are only valid towards the worker")
        from .stubs import FrozenLogitsModel

        logits = _decode(tree["__frozen_model__"], blobs, None, depth + 1, used)
        if not isinstance(logits, torch.Tensor):
            raise WireError("a stand-in model needs a logits tensor")
        return FrozenLogitsModel(logits, resolve_ref("model").config)
    if "__eos_after__" in tree:
        if resolve_ref is None:
            raise WireError("stand-in models are only valid towards the worker")
        from .stubs import EosForcingModel

        numbers = _expect_list(tree["__eos_after__"], "eos_after")
        if len(numbers) != 2 or not all(_is_int(n) for n in numbers):
            raise WireError("malformed eos_after")
        prompt_length, k = numbers
        return EosForcingModel(resolve_ref("model"), prompt_length, k, resolve_ref("tokenizer").eos_token_id)
    if "__generator__" in tree:
        seed = tree["__generator__"]
        if not _is_int(seed) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
            raise WireError("malformed generator seed")
        return torch.Generator().manual_seed(seed)
    if "__object__" in tree:
        type_name, text = tree["__object__"], tree.get("repr", "")
        return Opaque(_short(type_name, 200, quote=False), _short(text, 200, quote=False))
    raise WireError(f"unexpected value {_short(tree)}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _expect_list(value, what: str) -> list:
    if not isinstance(value, list):
        raise WireError(f"malformed {what}")
    return value


def _short(value, width: int = 80, quote: bool = True) -> str:
    """A bounded rendering of a (possibly huge, possibly deep) forged value."""
    if isinstance(value, str):
        return (repr(value[:width]) if quote else value[:width])[: width + 2]
    if value is None or isinstance(value, (bool, int, float)):
        text = repr(value) if not isinstance(value, int) or value.bit_length() < 256 else f"<int of {value.bit_length()} bits>"
        return text[:width]
    return f"<{type(value).__name__}>"


def _hashable(key):
    try:
        hash(key)
    except TypeError:
        return str(key)[:200]
    return key


def _plausible_shape(shape) -> bool:
    return (isinstance(shape, list) and len(shape) <= MAX_TENSOR_DIMS
            and all(_is_int(n) and 0 <= n <= MAX_TENSOR_DIM for n in shape))


def _decode_tensor(tree: dict, blobs: list[bytes], used: set[int] | None = None) -> torch.Tensor:
    name, index, shape = tree.get("dtype"), tree.get("__tensor__"), tree.get("shape")
    dtype = DTYPES.get(name) if isinstance(name, str) else None
    if dtype is None or not _is_int(index) or not 0 <= index < len(blobs):
        raise WireError("malformed tensor")
    if used is not None:
        if index in used:  # each blob backs one tensor: a frame cannot multiply its size
            raise WireError("a blob used twice")
        used.add(index)
    if not _plausible_shape(shape):
        raise WireError("malformed tensor shape")
    raw = blobs[index]
    numel = math.prod(shape)
    itemsize = torch.empty((), dtype=dtype).element_size()
    if len(raw) != numel * itemsize:
        raise WireError("tensor size does not match its shape")
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    data = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    if dtype == torch.bool:  # any byte but 0 or 1 would be an invalid bool
        return data.ne(0).reshape(shape)
    return data.view(dtype).reshape(shape).clone()


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
    """One frame: (header, blobs). Raises `PeerClosed` at EOF (or a reset connection),
    `WireError` on anything that is not a valid frame, and `TimeoutError` when `deadline`
    (a `time.monotonic()` value) passes first; nothing else, whatever the peer sends."""
    try:
        (length,) = struct.unpack("!Q", _recv_exact(sock, 8, deadline))
        if length > MAX_HEADER_BYTES:
            raise WireError(f"header of {length} bytes is too large")
        header = parse_header(_recv_exact(sock, length, deadline))
        sizes = header.get("blobs", [])
        if not isinstance(sizes, list) or len(sizes) > MAX_BLOBS or not all(_is_int(n) and n >= 0 for n in sizes):
            raise WireError("malformed blob list")
        if sum(sizes) > MAX_FRAME_BYTES:
            raise WireError(f"frame of {sum(sizes)} bytes is too large")
        return header, [_recv_exact(sock, n, deadline) for n in sizes]
    except ConnectionError as error:  # reset or broken: the peer went away
        raise PeerClosed(f"connection lost ({type(error).__name__})") from None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e400 parses as inf
        raise ValueError(f"number out of range: {text[:40]}")
    return number


def parse_header(raw: bytes) -> dict:
    """A frame's header: a JSON object of ASCII text, finite numbers, ints of at most
    Python's digit limit, nested at most `MAX_HEADER_DEPTH` deep; else `WireError`."""
    try:
        header = json.loads(raw.decode("ascii"), parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError, MemoryError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise WireError(f"unreadable header: {type(error).__name__}: {str(error)[:200]}") from None
    if not isinstance(header, dict):
        raise WireError("header is not an object")
    _check_depth(header, MAX_HEADER_DEPTH)
    return header


def _check_depth(value, limit: int) -> None:
    """Raise `WireError` if `value` (parsed JSON) nests deeper than `limit` (no recursion)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            raise WireError("header nested too deeply")
        if isinstance(item, dict):
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
