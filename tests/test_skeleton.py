"""What students receive: it imports, matches the reference's signatures, and implements nothing."""

from __future__ import annotations

import inspect

import pytest
import torch

from autograder import assignment

from autograder.assignment import load as _load_assignment

BASIC = _load_assignment("basic_prompting")  # the assignment these tests grade


@pytest.fixture(scope="module")
def skeleton():
    return assignment.load_module(BASIC.skeleton_path, "basic_prompting_skeleton")


@pytest.mark.parametrize("name", BASIC.contract)
def test_skeleton_has_the_reference_signature_and_a_docstring(skeleton, reference, name):
    student_fn, reference_fn = getattr(skeleton, name), getattr(reference, name)
    assert inspect.signature(student_fn) == inspect.signature(reference_fn)
    assert len(inspect.getdoc(student_fn) or "") > 200, "student docstrings state the whole contract"


def _arguments(name, tiny):
    model, tok = tiny
    return {
        "softmax": (torch.zeros(3),),
        "temperature_distribution": (torch.zeros(3), 1.0),
        "top_p_filter": (torch.full((4,), 0.25), 0.5),
        "greedy_decode": (model, tok, "hi", 2),
        "sample_decode": (model, tok, "hi", 2),
        "truncate_at_stop": ("abc", ["b"]),
        "generate_text": (model, tok, "hi"),
    }[name]


@pytest.mark.parametrize("name", BASIC.contract)
def test_every_skeleton_function_raises_not_implemented(skeleton, tiny, name):
    with pytest.raises(NotImplementedError):
        getattr(skeleton, name)(*_arguments(name, tiny))


def test_skeleton_contains_no_reference_code():
    text = BASIC.skeleton_path.read_text()
    for giveaway in ("torch.softmax(", "cumsum", "math.log(base)", "argmax("):
        assert giveaway not in text, giveaway


def test_skeleton_mentions_the_generate_top_k_default():
    assert "top_k=0" in BASIC.skeleton_path.read_text()
