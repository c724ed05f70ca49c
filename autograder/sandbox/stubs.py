"""Trusted stand-in models, built inside a worker from plain data.

`EosForcingModel` is the real model with eos forced at a given step.
`FrozenLogitsModel` answers every position with the same logits, whatever the input:
sampling from it many times gives i.i.d. draws from one known distribution, so the
statistical tests need no real forward passes.

Both must look like a Hugging Face causal LM to ordinary decoding code, or a correct
submission written in a common idiom loses points for the stand-in's sake: a float32
CPU parameter (``next(model.parameters()).device``), ``.device``, ``.dtype``,
``.config``, ``.generation_config``, ``get_input_embeddings()``, and a ``forward`` with
the real model's signature (``inspect.signature`` reports it, positional arguments bind
as they would there: ``model(input_ids, attention_mask)``), whose output has
``.logits``, ``[0]``, ``["logits"]`` and, when asked for, a KV cache that can be passed
back in.

What they cannot honour they refuse, loudly: the assignment asks for the decoding loop
itself, so ``model.generate`` (and Hugging Face's other generation entry points) is not
available on any stand-in. Reaching for it raises an AttributeError whose message says
so, and the grader's stand-in note (`grading._stand_in_note`) explains the stand-in.
`EosForcingModel` in particular must not hand `generate` to the real model inside it: that
would ignore the forced eos and report a difference the student cannot reproduce.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import math

import torch


class _MirroredForward:
    """`model.forward`, whose `inspect.signature` is the real model's forward (code
    inspects it to name the KV cache argument: `past_key_values` or `cache`)."""

    def __get__(self, instance, owner=None):
        if instance is None:
            return owner._forward
        implementation = instance._forward

        def forward(*args, **kwargs):
            return implementation(*args, **kwargs)

        forward.__signature__ = instance._forward_signature()
        forward.__name__ = forward.__qualname__ = "forward"
        return forward


# Hugging Face's generation entry points (GenerationMixin): a stand-in controls the logits of
# its forward pass only, so none of these could honour it.
GENERATION_METHODS = frozenset({
    "generate", "greedy_search", "sample", "beam_search", "beam_sample", "group_beam_search",
    "constrained_beam_search", "contrastive_search", "assisted_decoding",
})
NO_GENERATE_MESSAGE = (
    "'{cls}' object has no attribute '{name}': this assignment asks you to write the decoding loop yourself: "
    "call model(input_ids) step by step and choose each next token from the logits at the last position; "
    "model.{name} is not available in the grader")


def _refuse_generation(instance, name: str) -> None:
    """Raise the AttributeError that tells a student why `name` is missing here."""
    if name in GENERATION_METHODS:
        raise AttributeError(NO_GENERATE_MESSAGE.format(cls=type(instance).__name__, name=name), name=name, obj=instance)


def _causal_lm_forward(input_ids=None, attention_mask=None, position_ids=None, past_key_values=None, inputs_embeds=None,
                       labels=None, use_cache=None, cache_position=None, logits_to_keep=0, **kwargs):
    """The shape of a causal LM's forward in transformers 4 (used when the model class is unknown)."""


def _output_cache_field() -> str:
    """The output's KV cache field: `past_key_values` in transformers 4, `cache` in 5."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    names = {field.name for field in dataclasses.fields(CausalLMOutputWithPast)}
    return "cache" if "cache" in names else "past_key_values"


@functools.lru_cache(maxsize=16)
def _forward_signature(config_class) -> inspect.Signature:
    """The forward signature of the causal LM class that `config_class` configures."""
    try:
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

        signature = inspect.signature(MODEL_FOR_CAUSAL_LM_MAPPING[config_class].forward)
        return signature.replace(parameters=list(signature.parameters.values())[1:])  # without self
    except Exception:  # noqa: BLE001 - an unknown architecture: the usual shape
        signature = inspect.signature(_causal_lm_forward)
        if _output_cache_field() == "cache":
            signature = signature.replace(parameters=[
                p.replace(name="cache") if p.name == "past_key_values" else p for p in signature.parameters.values()])
        return signature


def _bind(signature: inspect.Signature, args: tuple, kwargs: dict) -> tuple[dict, dict]:
    """(named arguments, extra keyword arguments) of a call; TypeError as the real model gives."""
    arguments = dict(signature.bind(*args, **kwargs).arguments)
    extras_name = next((p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD), None)
    extras = dict(arguments.pop(extras_name, {})) if extras_name else {}
    return arguments, extras


def _cache_in(arguments: dict, extras: dict, cache_name: str):
    """The KV cache a call passes (transformers 5 still takes the old name `past_key_values`)."""
    past = arguments.get(cache_name)
    return past if past is not None else extras.get("past_key_values")


def _new_length(arguments: dict) -> int | None:
    """How many new positions a call feeds."""
    for name in ("input_ids", "inputs_embeds"):
        value = arguments.get(name)
        if isinstance(value, torch.Tensor) and value.dim() >= 1:
            return int(value.shape[1] if value.dim() >= 2 else value.shape[0])
    return None


class FrozenLogitsModel(torch.nn.Module):
    """Looks like a causal LM to a decoding loop; logits are `logits` at every position."""

    forward = _MirroredForward()

    def __init__(self, logits: torch.Tensor, config=None):
        super().__init__()
        self.register_buffer("frozen", logits.float().reshape(-1))
        vocab = int(self.frozen.numel())
        # The float32 CPU parameter that `next(model.parameters())` finds; it also checks
        # token ids as the real embedding does (an id outside the vocabulary fails).
        self.embed_tokens = torch.nn.Embedding(vocab, 1, _weight=torch.zeros(vocab, 1))
        # A copy: code that edits it must not change the real model's configuration.
        self.config = copy.deepcopy(config)
        self.generation_config = None
        if config is not None:
            from transformers import GenerationConfig

            try:
                self.generation_config = GenerationConfig.from_model_config(config)
            except Exception:  # noqa: BLE001
                self.generation_config = None
        self.name_or_path = getattr(config, "_name_or_path", "")

    def __getattr__(self, name: str):
        _refuse_generation(self, name)
        return super().__getattr__(name)

    @property
    def device(self) -> torch.device:
        return self.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embed_tokens.weight.dtype

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.embed_tokens

    def _forward_signature(self) -> inspect.Signature:
        return _forward_signature(type(self.config))

    def _forward(self, *args, **kwargs):
        from transformers.modeling_outputs import CausalLMOutputWithPast

        from .memo import cache_argument

        arguments, extras = _bind(self._forward_signature(), args, kwargs)
        ids, embeds = arguments.get("input_ids"), arguments.get("inputs_embeds")
        if (ids is None) == (embeds is None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        if ids is not None:
            ids = torch.as_tensor(ids)
            self.embed_tokens(ids)  # the real model's errors for ids that are not token ids
            shape = tuple(ids.shape)
        else:
            shape = tuple(embeds.shape[:-1])
        batch, length = (shape[:-1] or (1,)), shape[-1]
        keep = arguments.get("logits_to_keep", 0)
        kept = torch.arange(length)[slice(-keep, None) if isinstance(keep, int) else keep]
        past = _cache_in(arguments, extras, cache_argument(self.forward))
        logits = self._logits(ids, past, batch, kept)

        use_cache = arguments.get("use_cache")
        if use_cache is None:
            use_cache = getattr(self.config, "use_cache", True)
        cache = None
        if use_cache:
            cache = self._grown_cache(past, batch, length)
        self._seen_by(cache, past, ids)
        output = CausalLMOutputWithPast(logits=logits, **{_output_cache_field(): cache})
        return output.to_tuple() if extras.get("return_dict") is False else output

    def _logits(self, ids, past, batch: tuple[int, ...], kept: torch.Tensor) -> torch.Tensor:
        """The logits rows at positions `kept` of this call's input, shape (*batch, len(kept), vocab)."""
        return self.frozen.expand(*batch, int(kept.numel()), -1).clone()

    def _seen_by(self, cache, past, ids) -> None:
        """Hook: `cache` now holds `past`'s positions and `ids`'."""

    def _grown_cache(self, past, batch: tuple[int, ...], length: int):
        """`past` (or a new cache) grown by `length` positions, in place as the real model does."""
        from transformers.cache_utils import Cache, DynamicCache

        if not isinstance(past, Cache):
            legacy = past if isinstance(past, (tuple, list)) and len(past) else None
            past = DynamicCache.from_legacy_cache(legacy) if legacy is not None and hasattr(DynamicCache, "from_legacy_cache") else DynamicCache()
        config = self.config
        layers = int(getattr(config, "num_hidden_layers", 1) or 1)
        heads = int(getattr(config, "num_key_value_heads", None) or getattr(config, "num_attention_heads", 1) or 1)
        head_dim = getattr(config, "head_dim", None)
        if not head_dim:
            head_dim = int(getattr(config, "hidden_size", heads)) // heads or 1
        states = torch.zeros(math.prod(batch), heads, length, int(head_dim), dtype=self.dtype)
        for layer in range(layers):
            past.update(states, states, layer)
        return past


class EosForcingModel(torch.nn.Module):
    """The real model, except that the `k`-th new token (0-based) is forced to be eos.

    Works whatever model the course uses, so tests of "stop right after eos" need no
    prompt that happens to reach eos. Positions are absolute: for each output row, the
    past length (from the KV cache) plus the row's position among the new ones says
    which token it predicts. Calls bind exactly as they would on the real model (same
    signature, positional arguments included) and go to it unchanged.
    """

    forward = _MirroredForward()

    def __init__(self, model, prompt_length: int, k: int, eos_token_id: int):
        super().__init__()
        self.inner = model
        self.prompt_length, self.k, self.eos_token_id = prompt_length, k, eos_token_id
        self.config = getattr(model, "config", None)
        self.generation_config = getattr(model, "generation_config", None)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("_"):
                raise
            # Not `generate` of the real model inside: it would ignore the forced eos.
            _refuse_generation(self, name)
            return getattr(self._modules["inner"], name)  # name_or_path, get_output_embeddings, ...

    @property
    def device(self) -> torch.device:
        return self.inner.device

    @property
    def dtype(self) -> torch.dtype:
        return self.inner.dtype

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.inner.get_input_embeddings()

    def _forward_signature(self) -> inspect.Signature:
        return inspect.signature(self.inner.forward)

    def _forward(self, *args, **kwargs):
        from .memo import cache_argument

        arguments, extras = _bind(self._forward_signature(), args, kwargs)
        past_length = _past_length(_cache_in(arguments, extras, cache_argument(self.inner.forward)))  # before: the cache grows in place
        new = _new_length(arguments)
        output = self.inner(*args, **kwargs)
        as_tuple = isinstance(output, tuple)
        index = 1 if as_tuple and arguments.get("labels") is not None else 0
        logits = output[index] if as_tuple else output.logits
        if new is None:
            new = int(logits.shape[-2])
        offset = new - int(logits.shape[-2])  # rows dropped by logits_to_keep
        for row in range(logits.shape[-2]):
            if past_length + offset + row + 1 - self.prompt_length == self.k:
                forced = torch.full_like(logits[..., row, :], float("-inf"))
                forced[..., self.eos_token_id] = 0.0
                logits = logits.clone()
                logits[..., row, :] = forced
        if as_tuple:
            return output[:index] + (logits,) + output[index + 1:]
        output["logits"] = logits
        return output


def _past_length(past) -> int:
    if past is None:
        return 0
    if hasattr(past, "get_seq_length"):
        return int(past.get_seq_length())
    try:
        return int(past[0][0].shape[-2])  # legacy tuple of (key, value) per layer
    except (IndexError, TypeError, AttributeError):
        return 0


class ScriptedModel(FrozenLogitsModel):
    """A causal LM whose next tokens come from the grading process, one question per
    position: `ask(sequence, positions)` gives the token that follows each position of
    the token sequence so far (see `scripted`). The scripted token gets logit 20, every
    other 0 (softmax: ~0.9997 on it), so a greedy loop follows the script."""

    SCRIPTED_LOGIT, OTHER_LOGIT = 20.0, 0.0

    def __init__(self, ask, config):
        vocab = int(getattr(config, "vocab_size", 0) or 151936)
        super().__init__(torch.full((vocab,), self.OTHER_LOGIT), config)
        self.ask = ask
        # The tokens behind each cache this model filled (the cache kept alive with them,
        # so its id cannot be reused by another object).
        self._tokens: dict[int, tuple[object, list[int]]] = {}

    def _held(self, past) -> list[int]:
        return self._tokens.get(id(past), (None, []))[1] if past is not None else []

    def _logits(self, ids, past, batch, kept):
        if ids is None:
            raise ValueError("this model needs input_ids (token ids)")
        held = self._held(past)
        sequence = held + [int(t) for t in ids.reshape(-1, ids.shape[-1])[0].tolist()]
        tokens = self.ask(sequence, [len(held) + int(i) for i in kept])
        logits = torch.full((*batch, int(kept.numel()), self.frozen.numel()), self.OTHER_LOGIT)
        logits[..., torch.arange(int(kept.numel())), torch.tensor(tokens, dtype=torch.long)] = self.SCRIPTED_LOGIT
        return logits

    def _seen_by(self, cache, past, ids) -> None:
        if cache is not None and ids is not None:
            sequence = self._held(past) + [int(t) for t in ids.reshape(-1, ids.shape[-1])[0].tolist()]
            self._tokens[id(cache)] = (cache, sequence)
