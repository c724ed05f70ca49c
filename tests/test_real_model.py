"""The lecture's numbers, on the real Qwen/Qwen3-0.6B-Base. Skipped (with the reason) without its weights."""

from __future__ import annotations

import pytest
import torch

from tests.test_tokenizer import LECTURE_GREEDY_IDS

pytestmark = pytest.mark.real_model


def test_lecture_logits_and_argmaxes(real):
    model, tok = real
    inputs = tok("Shakespeare was a", return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs, use_cache=False).logits
    assert logits.shape[-1] == 151936
    torch.testing.assert_close(logits[0, -1, :3], torch.tensor([8.7087, 12.7536, 6.7422]), atol=2e-3, rtol=0)
    assert int(torch.argmax(logits[0, -1])) == 2244
    inputs = tok("Shakespeare was a great", return_tensors="pt")
    with torch.no_grad():
        assert int(torch.argmax(model(**inputs).logits[0, -1])) == 6916


def test_lecture_greedy_continuation(real, reference):
    model, tok = real
    new_ids = reference.greedy_decode(model, tok, "Shakespeare was a great", 50)
    assert [2016, 36871, 572, 264, 2244] + new_ids == LECTURE_GREEDY_IDS


def test_shakespeare_worked_as_a(real, reference):
    model, tok = real
    assert reference.generate_text(model, tok, "Shakespeare worked as a", max_new_tokens=3) == " playwright, actor"
