"""Shared fixtures: the offline model, the reference module, and the real model when present."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
import torch

from autograder import models
from autograder.reference_store import STORE_ENV_VAR

from autograder.assignment import load as _load_assignment

BASIC = _load_assignment("basic_prompting")  # the assignment these tests grade


def pytest_configure(config):
    # Reference answers computed by these tests stay in this run (and in the CLI
    # subprocesses it starts): a store left by another run or by a user never decides
    # a result here.
    if not os.environ.get(STORE_ENV_VAR):
        os.environ[STORE_ENV_VAR] = config._reference_store = tempfile.mkdtemp(prefix="reference-store-")


def pytest_unconfigure(config):
    folder = getattr(config, "_reference_store", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(STORE_ENV_VAR, None)


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of the offline `tiny-qwen3`, built on first use."""
    return models.load_model(models.TINY_MODEL)


@pytest.fixture(scope="session")
def tiny_model(tiny):
    return tiny[0]


@pytest.fixture(scope="session")
def tokenizer(tiny):
    return tiny[1]


@pytest.fixture(scope="session")
def reference():
    return BASIC.load_reference()


@pytest.fixture(scope="session")
def real():
    """(model, tokenizer) of the real Qwen/Qwen3-0.6B-Base, or a skip that says why not."""
    if not models.hub_model_cached(models.DEFAULT_MODEL):
        pytest.skip(
            f"the real {models.DEFAULT_MODEL} weights are not in the Hugging Face cache "
            f"(run `hf download {models.DEFAULT_MODEL}` on a machine with internet access)"
        )
    return models.load_model(models.DEFAULT_MODEL)


@pytest.fixture(scope="session")
def eos_prompts(tiny, reference):
    """Prompts for which the tiny model's greedy loop really emits eos within 24 tokens."""
    model, tok = tiny
    found = [p for p in models.EOS_PROBE_PROMPTS if tok.eos_token_id in reference.greedy_decode(model, tok, p, 24)]
    assert found, "the tiny model never emits eos: its builder should guarantee that (see _make_eos_reachable)"
    return found


def hf_generate(model, tokenizer, prompt: str, **kwargs) -> list[int]:
    """`model.generate` as the lecture calls it, returning only the new ids."""
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, pad_token_id=tokenizer.eos_token_id, **kwargs)
    return out[0, inputs["input_ids"].shape[1]:].tolist()
