"""Next-token logits the reference already computed, served to a submission's model calls.

Most correct submissions ask the model about exactly the token sequences the reference
asked about (the prompt, then the prompt plus each token the reference chose). The
reference worker *records* the logits row it got for every such prefix; a student's
worker *answers* a forward call from those rows when it can, and runs the real model
otherwise. The student's code still calls `model(...)` and gets what the model returns
for that sequence, as a fresh tensor; only the arithmetic is skipped.

A call is answered from the memo only when it is a plain causal-LM call on one
sequence whose every needed prefix is known:

* `input_ids` of shape (1, L), no `inputs_embeds`, `labels` or extra outputs;
* an `attention_mask` of ones and default positions, if given;
* no KV cache, or a `MemoCache` this memo returned (one that still stands for tokens);
* a model the student's code has not changed (weights, dtype, hooks).

`MemoCache` is a real `DynamicCache` that holds no tensors while every call it went
through came from the memo. The first time anything else touches it (the real model,
or student code inspecting it), it is filled with one real forward pass over its tokens,
so it is then exactly the cache the student would have had.

Rows come from the grading process one request at a time, and only along one path per
call (see `client.Worker`): student code cannot list what the reference generated.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import torch
from transformers.cache_utils import DynamicCache
from transformers.modeling_outputs import CausalLMOutputWithPast

Prefix = tuple[int, ...]
# Arguments a plain call may pass, with the values that keep it plain.
_HARMLESS_EXTRAS = {"return_dict": (None, True), "output_attentions": (None, False), "output_hidden_states": (None, False)}
LOCAL_ROWS = 64  # rows a worker keeps (about 40 MB at Qwen3's vocabulary)


def cache_argument(forward) -> str:
    """The KV cache's keyword: `past_key_values` in transformers 4, `cache` in 5."""
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def plain_ids(value) -> list[int] | None:
    """The ids of a (1, L) integer tensor with L >= 1, else None."""
    if (isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[0] == 1 and value.shape[1] >= 1
            and value.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)):
        return [int(i) for i in value[0].tolist()]
    return None


# --- the reference's side -------------------------------------------------------------


def install_recorder(model, recorded: dict[Prefix, torch.Tensor]) -> None:
    """Wrap `model.forward` (trusted reference worker): every logits row it computes for
    one sequence lands in `recorded`, keyed by the token prefix it predicts after."""
    original = model.forward
    signature = inspect.signature(original)
    cache_name = cache_argument(original)

    @functools.wraps(original)  # keeps the signature: code inspects it to name the cache
    def forward(*args, **kwargs):
        sequence = _recordable(args, kwargs)  # before the call: the cache grows in place
        output = original(*args, **kwargs)
        if sequence is None:
            return output
        rows, new = output.logits[0], len(sequence[1])
        if rows.shape[0] == new:
            past = sequence[0]
            for i in range(new):
                recorded.setdefault(past + sequence[1][: i + 1], rows[i].detach().clone())
        cache = getattr(output, cache_name, None)
        if cache is not None:
            try:
                cache._recorded_tokens = sequence[0] + sequence[1]
            except AttributeError:
                pass
        return output

    def _recordable(args, kwargs) -> tuple[Prefix, Prefix] | None:
        """(tokens already in the cache, new tokens) for a plain call, else None."""
        try:
            arguments = signature.bind(*args, **kwargs).arguments
        except TypeError:
            return None
        ids = plain_ids(arguments.get("input_ids"))
        past = arguments.get(cache_name)
        plain = all(arguments.get(name) is None for name in ("attention_mask", "position_ids", "inputs_embeds", "labels"))
        past_tokens: Prefix | None = () if past is None else getattr(past, "_recorded_tokens", None)
        if ids is None or not plain or past_tokens is None or (past is not None and past.get_seq_length() != len(past_tokens)):
            return None
        return past_tokens, tuple(ids)

    model.forward = forward


# --- the student's side ---------------------------------------------------------------


class MemoCache(DynamicCache):
    """A KV cache standing for `_memo_tokens`, filled for real on first use (see module doc)."""

    def _memo_materialize(self) -> None:
        state = object.__getattribute__(self, "__dict__")
        fill = state.get("_memo_fill")
        if fill is not None:
            state["_memo_fill"] = None
            fill(self)

    @property
    def _memo_live(self) -> bool:
        return object.__getattribute__(self, "__dict__").get("_memo_fill") is not None

    def __getattribute__(self, name):
        if not name.startswith("_memo") and name not in ("__dict__", "__class__", "get_seq_length"):
            object.__getattribute__(self, "_memo_materialize")()
        return object.__getattribute__(self, name)

    def get_seq_length(self, *args, **kwargs) -> int:
        if self._memo_live:
            return len(self._memo_tokens)
        return super().get_seq_length(*args, **kwargs)


def _materializing(method):
    def wrapper(self, *args, **kwargs):
        self._memo_materialize()
        return method(self, *args, **kwargs)

    wrapper.__name__ = method.__name__
    return wrapper


# Special methods bypass __getattribute__: they must fill the cache themselves.
for _name in ("__len__", "__getitem__", "__iter__", "__contains__", "__repr__", "__bool__"):
    if _name in vars(DynamicCache) or any(_name in vars(base) for base in DynamicCache.__mro__[1:-1]):
        setattr(MemoCache, _name, _materializing(getattr(DynamicCache, _name)))


def _model_state_probe(model) -> Callable[[], bool]:
    """A cheap check that the model still computes what the reference's model did: the
    same weight tensors, unmodified in place (version counters), in the same dtype, and
    no hooks added (a hook on a submodule would not run for an answered call). Code
    that changes any of this gets the real model from then on."""
    import torch.nn.modules.module as module_globals

    def state():
        tensors = [(id(t), t.data_ptr(), t._version, t.dtype) for t in (*model.parameters(), *model.buffers())]
        hooks = [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()]
        hooks.append(len(module_globals._global_forward_hooks) + len(module_globals._global_forward_pre_hooks))
        return tensors, hooks

    original = state()
    changed = [False]

    def untouched() -> bool:
        if not changed[0] and state() != original:
            changed[0] = True
        return not changed[0]

    return untouched


def install_memo(model, lookup: Callable[[list[Prefix]], list[torch.Tensor | None]]) -> None:
    """Wrap `model.forward` (student worker) to answer plain calls from `lookup`.

    `lookup(prefixes)` returns the reference's next-token row for each prefix, or None."""
    original = model.forward
    signature = inspect.signature(original)
    cache_name = cache_argument(original)
    extras_name = next((p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD), None)
    local: dict[Prefix, torch.Tensor] = {}

    def fill(cache: MemoCache) -> None:
        with torch.no_grad():
            original(input_ids=torch.tensor([cache._memo_tokens]), use_cache=True, **{cache_name: cache})

    def rows_for(prefixes: list[Prefix]) -> list[torch.Tensor] | None:
        found = {p: local.pop(p) for p in prefixes if p in local}
        local.update(found)  # most recently used last: eviction takes the least recent
        missing = [p for p in prefixes if p not in found]
        if missing:
            for prefix, row in zip(missing, lookup(missing)):
                if row is None:
                    return None
                found[prefix] = row
                if len(local) >= LOCAL_ROWS:
                    local.pop(next(iter(local)))
                local[prefix] = row
        return [found[p] for p in prefixes]

    untouched = _model_state_probe(model)

    def answer(args, kwargs):
        if not untouched():
            return None
        try:
            arguments = dict(signature.bind(*args, **kwargs).arguments)
        except TypeError:
            return None
        extras = dict(arguments.pop(extras_name, {})) if extras_name else {}
        if cache_name != "past_key_values" and "past_key_values" in extras:  # transformers 5's old name for it
            if arguments.get(cache_name) is not None:
                return None
            arguments[cache_name] = extras.pop("past_key_values")
        if any(name not in _HARMLESS_EXTRAS or value not in _HARMLESS_EXTRAS[name] for name, value in extras.items()):
            return None
        ids = plain_ids(arguments.pop("input_ids", None))
        cache = arguments.pop(cache_name, None)
        use_cache = arguments.pop("use_cache", None)
        keep = arguments.pop("logits_to_keep", 0)
        mask, positions, cache_positions = (arguments.pop(n, None) for n in ("attention_mask", "position_ids", "cache_position"))
        if ids is None or any(value is not None for value in arguments.values()) or not isinstance(keep, int) or keep < 0:
            return None
        if cache is not None and not (isinstance(cache, MemoCache) and cache._memo_live):
            return None
        use_cache = model.config.use_cache if use_cache is None else bool(use_cache)
        if cache is not None and not use_cache:
            return None
        past = cache._memo_tokens if cache is not None else ()
        sequence = past + tuple(ids)
        expected_positions = torch.arange(len(past), len(sequence))
        if mask is not None and not (isinstance(mask, torch.Tensor) and tuple(mask.shape) == (1, len(sequence)) and bool((mask == 1).all())):
            return None
        if positions is not None and not (isinstance(positions, torch.Tensor) and positions.numel() == len(ids) and torch.equal(positions.reshape(-1).long(), expected_positions)):
            return None
        if cache_positions is not None and not (isinstance(cache_positions, torch.Tensor) and torch.equal(cache_positions.reshape(-1).long(), expected_positions)):
            return None
        shown = len(ids) if keep == 0 else min(keep, len(ids))
        rows = rows_for([sequence[: len(past) + i + 1] for i in range(len(ids) - shown, len(ids))])
        if rows is None:
            return None
        if use_cache:
            if cache is None:
                cache = MemoCache()
                cache._memo_fill = fill
            cache._memo_tokens = sequence
        return CausalLMOutputWithPast(logits=torch.stack(rows).unsqueeze(0), **{cache_name: cache if use_cache else None})

    @functools.wraps(original)  # keeps the signature: code inspects it to name the cache
    def forward(*args, **kwargs):
        answered = answer(args, kwargs)
        if answered is not None:
            return answered
        for value in (*args, *kwargs.values()):
            if isinstance(value, MemoCache):
                value._memo_materialize()  # before the real model reads it
        return original(*args, **kwargs)

    model.forward = forward
