"""`load_model`: names, defaults, float32/eval, the offline models' shape, and clear errors."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from autograder import models


def test_tiny_model_is_float32_eval_with_the_real_vocabulary(tiny_model):
    assert not tiny_model.training
    assert all(p.dtype == torch.float32 for p in tiny_model.parameters())
    assert tiny_model.config.vocab_size == 151936
    assert tiny_model.config.model_type == "qwen3"


def test_model_name_comes_from_argument_then_env_then_default(monkeypatch):
    monkeypatch.delenv(models.MODEL_ENV_VAR, raising=False)
    assert models.resolve_model_name() == "Qwen/Qwen3-0.6B-Base"
    monkeypatch.setenv(models.MODEL_ENV_VAR, "tiny-qwen3")
    assert models.resolve_model_name() == "tiny-qwen3"
    assert models.resolve_model_name("some/folder") == "some/folder"


def test_local_folder_loads_like_a_hub_model(tiny_model):
    folder = models.model_path(models.TINY_MODEL)
    model, tokenizer, info = models.load_model_with_info(folder)
    assert info.name == folder and info.revision.startswith("tiny-qwen3-")
    ids = tokenizer("Shakespeare was a", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(model(ids).logits, tiny_model(ids).logits)


def test_tiny_model_revision_is_stable(tiny):
    _, _, first = models.load_model_with_info(models.TINY_MODEL)
    _, _, second = models.load_model_with_info(models.TINY_MODEL)
    assert first.revision == second.revision


def test_tiny_distributions_range_from_peaked_to_flat(tiny, reference):
    """Sampling tests need both kinds: a near-one-hot step and a wide nucleus."""
    model, tok = tiny
    tops, nucleus_sizes = [], []
    for prompt in ["Shakespeare was a", "def factorial(", "hello hello", "1, 2, 3, 4,", "Once upon a time"]:
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logits = model(ids).logits[0]
        for row in logits:
            probs = row.softmax(-1)
            tops.append(float(probs.max()))
            nucleus_sizes.append(int((reference.top_p_filter(probs, 0.9) > 0).sum()))
    assert max(tops) > 0.6 and min(tops) < 0.15
    assert min(nucleus_sizes) <= 3 and max(nucleus_sizes) >= 50


def test_tiny_model_really_emits_eos(eos_prompts):
    assert eos_prompts


def test_shaped_config_is_qwen3_0_6b():
    from transformers import Qwen3Config, Qwen3ForCausalLM

    with torch.device("meta"):
        model = Qwen3ForCausalLM(Qwen3Config(**models.QWEN3_0_6B_CONFIG))
    assert sum(p.numel() for p in model.parameters()) == 596_049_920
    assert model.config.num_hidden_layers == 28 and model.config.head_dim == 128
    assert model.config.tie_word_embeddings


def test_missing_real_model_gives_a_clear_error():
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=os.path.join(os.environ.get("TMPDIR", "/tmp"), "empty-hf-home"))
    code = "from autograder.models import load_model; load_model('Qwen/Qwen3-0.6B-Base')"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "ModelUnavailableError" in result.stderr
    assert "hf download Qwen/Qwen3-0.6B-Base" in result.stderr
    assert "--model tiny-qwen3" in result.stderr


def test_building_a_model_leaves_the_callers_random_stream_alone(tmp_path):
    # A first load builds the model from a seed; `torch.manual_seed(s)` before it must still
    # give the stream it gives before a later, cached load.
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    models._build_from_config(tmp_path, models.TINY_CONFIG, models.TINY_SEED, torch.float32)
    assert torch.equal(torch.rand(3), expected)
