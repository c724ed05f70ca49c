"""Edge cases and errors of every reference function, on hand-made inputs."""

from __future__ import annotations

import math

import pytest
import torch


@pytest.mark.parametrize("base", [2, math.e, 10, 1.5])
def test_softmax_matches_the_lectures_formula(reference, base):
    scores = torch.tensor([1.0, -2.0, 0.5, 3.0])
    powers = torch.tensor([base ** float(u) for u in scores], dtype=torch.float64)
    torch.testing.assert_close(reference.softmax(scores, base=base), (powers / powers.sum()).float())


def test_softmax_large_scores_stay_finite(reference):
    scores = torch.tensor([1e4, -1e4, 9999.0, 0.0])
    for base in (1.5, 2, math.e, 10):
        out = reference.softmax(scores, base=base)
        assert torch.isfinite(out).all() and math.isclose(float(out.sum()), 1.0, rel_tol=1e-6)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_any_dim(reference, dim):
    scores = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    out = reference.softmax(scores, base=2, dim=dim)
    assert out.shape == scores.shape
    torch.testing.assert_close(out.sum(dim), torch.ones(scores.shape[1 - (dim % 2)]))
    torch.testing.assert_close(out, torch.softmax(scores * math.log(2), dim))


@pytest.mark.parametrize("base", [1, 1.0, 0.5, 0, -2, math.inf, math.nan, True])
def test_softmax_rejects_bad_bases(reference, base):
    with pytest.raises(ValueError):
        reference.softmax(torch.zeros(3), base=base)


@pytest.mark.parametrize("temperature", [0, 0.0, -1, math.nan])
def test_temperature_must_be_positive(reference, temperature):
    with pytest.raises(ValueError):
        reference.temperature_distribution(torch.zeros(3), temperature)


def test_temperature_extremes(reference):
    logits = torch.tensor([2.0, 1.0, 0.0])
    assert float(reference.temperature_distribution(logits, 0.01)[0]) > 0.999
    torch.testing.assert_close(reference.temperature_distribution(logits, 1e6), torch.full((3,), 1 / 3))
    torch.testing.assert_close(reference.temperature_distribution(logits, 1.0), logits.softmax(-1))
    batch = reference.temperature_distribution(torch.randn(4, 7), 0.5)
    torch.testing.assert_close(batch.sum(-1), torch.ones(4))


def test_top_p_keeps_the_token_that_crosses_p(reference):
    probs = torch.tensor([0.1, 0.5, 0.3, 0.1])
    torch.testing.assert_close(reference.top_p_filter(probs, 0.6), torch.tensor([0.0, 0.625, 0.375, 0.0]))
    # exactly reaching p: the set {0.5, 0.3} already has mass 0.8 >= 0.8
    torch.testing.assert_close(reference.top_p_filter(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), 0.8),
                               torch.tensor([0.625, 0.375, 0.0], dtype=torch.float64))


def test_top_p_tiny_p_keeps_only_the_argmax(reference):
    probs = torch.tensor([0.2, 0.45, 0.35])
    assert reference.top_p_filter(probs, 1e-9).tolist() == [0.0, 1.0, 0.0]


def test_top_p_one_keeps_everything(reference):
    probs = torch.softmax(torch.randn(100), -1)
    assert torch.equal(reference.top_p_filter(probs, 1.0), probs)


def test_top_p_tie_at_the_boundary_keeps_a_smallest_set(reference):
    out = reference.top_p_filter(torch.tensor([0.25, 0.25, 0.25, 0.25]), 0.5)
    assert int((out > 0).sum()) == 2 and math.isclose(float(out.sum()), 1.0)


@pytest.mark.parametrize("p", [0, -0.1, 1.01, math.nan])
def test_top_p_rejects_bad_p(reference, p):
    with pytest.raises(ValueError):
        reference.top_p_filter(torch.tensor([0.5, 0.5]), p)


@pytest.mark.parametrize(
    "text,stops,expected",
    [
        ("a\n\nb\ndef", ["\ndef", "\n\n"], "a"),  # later-listed stop occurs first
        ("abcabc", ["bca", "cab"], "a"),  # overlapping stops
        ("stop here", ["stop"], ""),  # stop at position 0
        ("nothing to cut", ["\n\n", "xyz"], "nothing to cut"),
        ("anything", [], "anything"),
        ("", ["x"], ""),
    ],
)
def test_truncate_at_stop(reference, text, stops, expected):
    assert reference.truncate_at_stop(text, stops) == expected


def test_truncate_takes_a_bare_string_as_one_stop(reference):
    assert reference.truncate_at_stop("hello world", "wor") == "hello "


def test_truncate_reads_a_one_shot_iterator_of_stops(reference):
    assert reference.truncate_at_stop("abc", (stop for stop in ["b"])) == "a"


def test_truncate_rejects_empty_stop(reference):
    with pytest.raises(ValueError):
        reference.truncate_at_stop("abc", ["x", ""])


def test_greedy_zero_tokens(tiny, reference):
    assert reference.greedy_decode(*tiny, "hello", 0) == []


def test_generate_text_greedy_is_decoded_greedy(tiny, reference):
    model, tok = tiny
    ids = reference.greedy_decode(model, tok, "def factorial(", 15)
    assert reference.generate_text(model, tok, "def factorial(", max_new_tokens=15) == tok.decode(ids)


def test_generate_text_keeps_eos_as_decode_gives_it(tiny, reference, eos_prompts):
    model, tok = tiny
    text = reference.generate_text(model, tok, eos_prompts[0], max_new_tokens=40)
    assert text.endswith("<|endoftext|>")


def test_generate_text_stop_spanning_two_tokens_stops_generation(tiny, reference):
    model, tok = tiny
    prompt = "Shakespeare was a great"
    ids = reference.greedy_decode(model, tok, prompt, 12)
    pieces = [tok.decode([i]) for i in ids]
    k = next(i for i in range(3, len(ids) - 1) if pieces[i] and pieces[i + 1])
    stop = pieces[k][-1] + pieces[k + 1][0]  # spans tokens k and k+1
    full = tok.decode(ids)
    calls = []
    handle = model.register_forward_hook(lambda *a: calls.append(1))
    try:
        text = reference.generate_text(model, tok, prompt, max_new_tokens=12, stop=[stop])
    finally:
        handle.remove()
    assert text == full[: full.find(stop)]
    assert len(calls) <= k + 2  # stopped as soon as the stop appeared, not after 12 tokens


def test_generate_text_zero_tokens_is_empty(tiny, reference):
    assert reference.generate_text(*tiny, "hello", max_new_tokens=0) == ""


def test_generate_text_takes_a_bare_string_stop(tiny, reference):
    model, tok = tiny
    full = reference.generate_text(model, tok, "def factorial(", max_new_tokens=15)
    stop = full[len(full) // 2:][:2]
    assert stop and reference.generate_text(model, tok, "def factorial(", max_new_tokens=15, stop=stop) == full[: full.find(stop)]


def test_generate_text_sampling_matches_sample_decode(tiny, reference):
    model, tok = tiny
    ids = reference.sample_decode(model, tok, "hello", 10, temperature=0.8, top_p=0.9, generator=torch.Generator().manual_seed(3))
    text = reference.generate_text(model, tok, "hello", max_new_tokens=10, temperature=0.8, top_p=0.9,
                                   generator=torch.Generator().manual_seed(3))
    assert text == tok.decode(ids)


@pytest.mark.parametrize("kwargs", [dict(temperature=-0.5), dict(temperature=0.5, top_p=0), dict(stop=["ok", ""])])
def test_generate_text_errors(tiny, reference, kwargs):
    with pytest.raises(ValueError):
        reference.generate_text(*tiny, "hello", **kwargs)


@pytest.mark.parametrize("kwargs", [dict(temperature=0), dict(top_p=1.5)])
def test_sample_decode_errors(tiny, reference, kwargs):
    with pytest.raises(ValueError):
        reference.sample_decode(*tiny, "hello", 3, **kwargs)
