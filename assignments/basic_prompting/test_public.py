"""Public tests for decoding.py. Run them with `pytest` in this folder (a few seconds).

Each test checks one property of one function, on small inputs worked out by hand or on
the course model (the offline `tiny-qwen3` unless you set AUTOGRADER_MODEL). Where the
model is involved, the expected answer comes from Hugging Face's own `model.generate`.

Every test names the function it checks: its name (`test_top_p_filter_...`), its docstring
and every failure message start with it, e.g. "[top_p_filter] called: ...". The tests run
in the order you implement the functions, so with `pytest -x` the first failure is in the
first function to fix. A test of a decoding function that goes wrong while calling one of
your helpers (softmax, temperature_distribution, top_p_filter, ...) first checks that
helper on its own, and says so when the helper is what is wrong.

A failure says what was called, what was expected, what came back, and gives a hint.
Passing every test here is a good sign, not a guarantee: the grader's hidden tests check
more inputs, seeds and edge cases against the same contract (the docstrings).

The decoding functions must write the decoding loop themselves: `model.generate` is not
allowed (the grader passes stand-in models that have no `generate`; see decoding.py).

Useful options: `pytest -x` stops at the first failure; `pytest -k softmax` runs only the
tests whose name contains "softmax", `pytest -k sample_decode` those of sample_decode.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import traceback

import pytest
import torch

import decoding

CONTRACT = ("softmax", "temperature_distribution", "top_p_filter", "greedy_decode", "sample_decode",
            "truncate_at_stop", "generate_text")


# The function the running test checks: the "[name]" its docstring starts with.
CHECKING: str | None = None


@pytest.fixture(autouse=True)
def _label(request):
    """Every failure message starts with the function the test checks."""
    global CHECKING
    match = re.match(r"\s*\[(\w+)\]", request.function.__doc__ or "")
    assert match and match.group(1) in CONTRACT, f"{request.function.__name__}: its docstring must start with [function]"
    CHECKING = match.group(1)
    yield
    CHECKING = None


def label(name: str | None = None) -> str:
    return f"[{name or CHECKING or 'decoding.py'}] "


# -- the model: loaded once; if it cannot be, said once ----------------------------------------

_model_error_shown = False


@pytest.fixture(scope="session")
def _course_model():
    """(model, tokenizer, None), or (None, None, why not): loading is tried once per run."""
    import course_model

    try:
        model, tokenizer = course_model.load_model()
    except course_model.ModelUnavailableError as error:
        return None, None, str(error)
    except Exception as error:  # noqa: BLE001 - any failure to load: explain it once, not in every test
        return None, None, (f"{type(error).__name__}: {error}\n  (is everything in requirements.txt installed in "
                            f"this Python? pip install -r requirements.txt)")
    return model, tokenizer, None


def _loaded(request, course) -> tuple:
    global _model_error_shown
    model, tokenizer, problem = course
    if problem is None:
        return model, tokenizer
    if not _model_error_shown:
        _model_error_shown = True
        import course_model

        pytest.fail(f"[model] the tests that need the model {course_model.resolve_model_name()!r} cannot run: it "
                    f"could not be loaded (they are all skipped; this is the only copy of the message).\n{problem}",
                    pytrace=False)
    # Marked as skipped too, so that the summary folds all of these skips into one line.
    request.node.add_marker(pytest.mark.skip)
    pytest.skip("the model could not be loaded: the first test that needs it says why")


@pytest.fixture
def model(request, _course_model):
    return _loaded(request, _course_model)[0]


@pytest.fixture
def tokenizer(request, _course_model):
    return _loaded(request, _course_model)[1]


# -- helpers: calling your code and explaining what went wrong -------------------------------


def _innermost_function(error: BaseException) -> str | None:
    """The function of the contract that raised `error` (the innermost one in decoding.py)."""
    name = None
    for frame in traceback.extract_tb(error.__traceback__):
        if os.path.basename(frame.filename) == "decoding.py" and frame.name in CONTRACT:
            name = frame.name
    return name


def call(name: str, *args, **kwargs):
    """decoding.<name>(*args, **kwargs); a function that is still a stub fails in one line."""
    try:
        return getattr(decoding, name)(*args, **kwargs)
    except NotImplementedError as error:
        culprit = _innermost_function(error) or name
    via = "" if culprit == name else f" (`{name}` calls it)"
    pytest.fail(f"{label(name)}`{culprit}` is not implemented yet{via}: write it in decoding.py (its docstring is "
                f"the contract), then run pytest again.", pytrace=False)


def show(value) -> str:
    """A short, readable description of a value."""
    if isinstance(value, torch.Tensor):
        if value.numel() <= 12:
            return f"{value!r} (shape {tuple(value.shape)}, {value.dtype})"
        finite = value[torch.isfinite(value)] if value.is_floating_point() else value
        summary = f"sum {float(finite.sum()):.6f}" if finite.numel() else "no finite entries"
        return f"a tensor of shape {tuple(value.shape)} ({value.dtype}), {summary}"
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + "..."


def fail(called: str, expected: str, got: str, hint: str | None = None):
    lines = [f"{label()}called:   {called}", f"expected: {expected}", f"got:      {got}"]
    if hint:
        lines.append(f"hint:     {hint}")
    pytest.fail("\n".join(lines), pytrace=False)


def check_probabilities(called: str, got, expected: torch.Tensor, hint: str) -> None:
    """`got` must be a tensor like `expected`, finite, and equal to it within rounding."""
    if not isinstance(got, torch.Tensor):
        fail(called, show(expected), f"{type(got).__name__}: {show(got)}", "return a torch.Tensor")
    if got.shape != expected.shape:
        fail(called, f"a tensor of shape {tuple(expected.shape)}", show(got), "the result has the same shape as the input")
    if not torch.isfinite(got).all():
        fail(called, show(expected), f"{show(got)}, with inf or nan in it", hint)
    if not torch.allclose(got.double(), expected.double(), atol=1e-6, rtol=1e-4):
        fail(called, show(expected), show(got), hint)


def expect_value_error(called: str, name: str, *args, hint: str, **kwargs) -> None:
    try:
        result = call(name, *args, **kwargs)
    except ValueError:
        return
    except Exception as error:  # noqa: BLE001 - the wrong kind of error: say which
        got = f"{type(error).__name__}: {error}"
    else:
        got = f"no error; it returned {show(result)}"
    fail(called, "a ValueError", got, hint)


def new_ids_from_generate(model, tokenizer, prompt: str, **settings) -> list[int]:
    """What Hugging Face's `generate` produces after `prompt` (new tokens only)."""
    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    with torch.no_grad():
        out = model.generate(**inputs, pad_token_id=tokenizer.eos_token_id, **settings)
    return out[0, inputs["input_ids"].shape[1]:].tolist()


def next_token_logits(model, tokenizer, prompt: str) -> torch.Tensor:
    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    with torch.no_grad():
        return model(**inputs).logits[0, -1].float()


def check_ids(tokenizer, called: str, prompt: str, got, expected: list[int], hint: str) -> None:
    """`got` must be the list of ints `expected`; if not, explain where they part."""
    if not isinstance(got, list) or not all(type(i) is int for i in got):
        fail(called, f"a list of Python ints, e.g. {expected[:3]}", f"{type(got).__name__}: {show(got)}",
             "collect int(token) for each new token in a list (tensor.tolist() also gives Python ints)")
    if got == expected:
        return
    prompt_ids = tokenizer(prompt)["input_ids"]
    if got[: len(prompt_ids)] == prompt_ids and len(got) > len(expected):
        hint = "return only the NEW tokens, not the prompt's ids"
    step = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
    if step < min(len(got), len(expected)):
        detail = (f"the lists part at new token {step}: expected {tokenizer.decode([expected[step]])!r} "
                  f"(id {expected[step]}), got {tokenizer.decode([got[step]])!r} (id {got[step]})")
    elif len(got) > len(expected):
        detail = f"{len(got)} tokens instead of {len(expected)}"
        if expected and expected[-1] == tokenizer.eos_token_id:
            detail += "; generate stopped right after the end-of-text token (eos)"
    else:
        detail = f"only {len(got)} tokens instead of {len(expected)}"
        if expected[len(got)] == tokenizer.eos_token_id:
            detail += "; the missing one is the end-of-text token (eos), which belongs in the result"
    fail(called, f"{expected} = {tokenizer.decode(expected)!r}", f"{got} = {tokenizer.decode(got)!r}\n          {detail}", hint)


def nucleus_problems(probs: torch.Tensor, got, p: float) -> list[str]:
    """What is wrong with `got` as top_p_filter(probs, p), checked by its properties (empty: nothing)."""
    if not isinstance(got, torch.Tensor) or got.shape != probs.shape:
        return [f"it returned {show(got)}, not a tensor of shape {tuple(probs.shape)}"]
    kept = got > 0
    if not kept.any() or not torch.isfinite(got).all():
        return [f"it returned {show(got)}: no token kept, or inf or nan in it"]
    mass = float(probs[kept].sum())
    smallest = float(probs[kept].min())
    problems = []
    if abs(float(got.sum()) - 1) > 1e-4:
        problems.append(f"it sums to {float(got.sum()):.6f}, not 1")
    if not torch.allclose(got[kept].double() * mass, probs[kept].double(), rtol=1e-3, atol=1e-7):
        problems.append("the kept probabilities are not the originals divided by their total")
    if mass < p - 1e-4:
        problems.append(f"the kept tokens hold only {mass:.4f} < p of the probability")
    elif mass - smallest >= p + 1e-4:
        problems.append(f"it keeps {int(kept.sum())} tokens but one fewer would already hold >= p (too many)")
    if (~kept).any() and float(probs[~kept].max()) > smallest + 1e-7:
        problems.append("a dropped token is more likely than a kept one (keep the MOST likely tokens)")
    return problems


# -- when a test fails inside one of your helpers ------------------------------------------------
#
# A bug in temperature_distribution also breaks sample_decode and generate_text, whose tests
# would then send you looking in the wrong place. So a test of a function that builds on
# others watches which of them it calls; if it fails, it checks each one it called on a small
# input of its own (against torch, no reference solution) and names the first that is wrong.


def _same(got, expected: torch.Tensor) -> bool:
    return (isinstance(got, torch.Tensor) and got.shape == expected.shape and bool(torch.isfinite(got).all())
            and torch.allclose(got.double(), expected.double(), atol=1e-6, rtol=1e-4))


def _softmax_problem(model, tokenizer) -> str | None:
    scores = torch.linspace(-2.0, 3.0, 6)
    for base in (math.e, 2.0):
        got, expected = decoding.softmax(scores, base=base), torch.softmax(scores * math.log(base), dim=-1)
        if not _same(got, expected):
            return f"softmax(torch.linspace(-2, 3, 6), base={base:g}) gives {show(got)}, expected {show(expected)}"
    got = decoding.softmax(scores * 1000)
    if not _same(got, torch.softmax(scores * 1000, dim=-1)):
        return f"softmax(torch.linspace(-2000, 3000, 6)) gives {show(got)}: large scores must stay finite"
    return None


def _temperature_problem(model, tokenizer) -> str | None:
    logits = torch.linspace(-1.5, 2.5, 5)
    for t in (0.5, 2.0):
        got, expected = decoding.temperature_distribution(logits, t), torch.softmax(logits / t, dim=-1)
        if not _same(got, expected):
            return (f"temperature_distribution(torch.linspace(-1.5, 2.5, 5), {t}) gives {show(got)}, expected "
                    f"softmax(logits / t) = {show(expected)}")
    return None


def _top_p_problem(model, tokenizer) -> str | None:
    order = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    probs = torch.softmax(torch.linspace(2.0, -1.0, 6), dim=-1)[order]
    for p in (0.3, 0.75, 1.0):
        problems = nucleus_problems(probs, decoding.top_p_filter(probs, p), p)
        if problems:
            return f"top_p_filter(<6 probabilities>, {p}): " + "; ".join(problems)
    return None


def _truncate_problem(model, tokenizer) -> str | None:
    for text, stops, expected in (("ab|cd#ef", ["#", "|"], "ab"), ("no stop here", ["#"], "no stop here")):
        got = decoding.truncate_at_stop(text, stops)
        if got != expected:
            return f"truncate_at_stop({text!r}, {stops!r}) gives {got!r}, expected {expected!r}"
    return None


def _greedy_problem(model, tokenizer) -> str | None:
    prompt = "Once upon a time"
    expected = new_ids_from_generate(model, tokenizer, prompt, do_sample=False, max_new_tokens=4)
    got = decoding.greedy_decode(model, tokenizer, prompt, 4)
    return None if got == expected else f"greedy_decode(model, tokenizer, {prompt!r}, 4) gives {show(got)}, expected {expected}"


def _sample_problem(model, tokenizer) -> str | None:
    prompt, settings = "My favourite food is", {"temperature": 1.2, "top_p": 0.8}
    torch.manual_seed(31)
    expected = new_ids_from_generate(model, tokenizer, prompt, do_sample=True, top_k=0, max_new_tokens=4, **settings)
    got = decoding.sample_decode(model, tokenizer, prompt, 4, generator=torch.Generator().manual_seed(31), **settings)
    return None if got == expected else (f"sample_decode(model, tokenizer, {prompt!r}, 4, temperature=1.2, top_p=0.8, "
                                         f"generator=torch.Generator().manual_seed(31)) gives {show(got)}, expected {expected}")


HELPER_CHECKS = {"softmax": _softmax_problem, "temperature_distribution": _temperature_problem,
                 "top_p_filter": _top_p_problem, "greedy_decode": _greedy_problem, "sample_decode": _sample_problem,
                 "truncate_at_stop": _truncate_problem}


def helper_problem(name: str, model=None, tokenizer=None) -> str | None:
    """What is wrong with your `name` on a small check of its own (None: nothing found)."""
    try:
        return HELPER_CHECKS[name](model, tokenizer)
    except NotImplementedError:
        return None  # a stub says so itself, in one line
    except Exception as error:  # noqa: BLE001 - the helper's own bug
        return f"{name} raised {type(error).__name__}: {error} on a small input"


# The functions each one may build on (the contract builds sample_decode on the two helpers).
BUILDS_ON = {
    "temperature_distribution": ("softmax",),
    "greedy_decode": ("softmax",),
    "sample_decode": ("softmax", "temperature_distribution", "top_p_filter"),
    "generate_text": ("softmax", "temperature_distribution", "top_p_filter", "greedy_decode", "sample_decode",
                      "truncate_at_stop"),
}


@contextlib.contextmanager
def blaming(model=None, tokenizer=None):
    """Run a test's calls and checks; if they fail after the code under test called one of
    the functions it builds on, and that one fails its own small check, say so first."""
    helpers = BUILDS_ON.get(CHECKING, ())
    used: set[str] = set()
    originals = {name: getattr(decoding, name) for name in helpers}

    def watched(name, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            used.add(name)
            return function(*args, **kwargs)
        return wrapper

    for name, function in originals.items():
        setattr(decoding, name, watched(name, function))
    try:
        yield
    except pytest.fail.Exception as failure:
        for name, function in originals.items():
            setattr(decoding, name, function)
        blamed = next(((name, problem) for name in CONTRACT if name in used and name != CHECKING
                       for problem in [helper_problem(name, model, tokenizer)] if problem), None)
        if blamed is None:
            raise
        message = (f"{label()}this test uses your {blamed[0]}, which is wrong (see its own tests first: "
                   f"pytest -k {blamed[0]}):\n  {blamed[1]}\n\nThe failure it caused here:\n{failure}")
    else:
        return
    finally:
        for name, function in originals.items():
            setattr(decoding, name, function)
    # One message: not chained to the failure it replaces (that one is quoted in it).
    raise pytest.fail.Exception(message, pytrace=False) from None


# The grader's stand-in models have no `generate`; this one neither, so that a decoding
# function that calls it fails here too, where the reason can be said.
GENERATION_METHODS = frozenset({"generate", "greedy_search", "sample", "beam_search", "beam_sample",
                                "contrastive_search", "assisted_decoding"})
NO_GENERATE = ("model.{name} is not available: this assignment asks you to write the decoding loop yourself: call "
               "model(input_ids) step by step and choose each next token from the logits at the last position "
               "(the grader's models have no `{name}` either)")


class ModelWithoutGenerate(torch.nn.Module):
    """The course model, minus `generate`: calls go to it unchanged, attributes come from it."""

    def __init__(self, model):
        super().__init__()
        self.inner = model

    @property
    def forward(self):
        return self.inner.forward

    @property
    def device(self):
        return self.inner.device

    @property
    def dtype(self):
        return self.inner.dtype

    def __getattr__(self, name: str):
        if name in GENERATION_METHODS:
            raise AttributeError(NO_GENERATE.format(name=name), name=name, obj=self)
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("_"):
                raise
            return getattr(self._modules["inner"], name)


HINT_NO_GENERATE = ("write the decoding loop yourself: call model(input_ids) step by step and pick each token from "
                    "the logits at the last position; model.generate is not allowed (the grader's stand-in models "
                    "have no generate, so such code scores 0 on their tests)")


def call_without_generate(name: str, called: str, *args, **kwargs):
    """decoding.<name>(...) on `ModelWithoutGenerate`; an attempt to use generate fails with the policy."""
    try:
        return call(name, *args, **kwargs)
    except AttributeError as error:
        if getattr(error, "name", None) not in GENERATION_METHODS and "generate" not in str(error):
            raise
        refused = f"AttributeError: {error}"
    fail(called, "the new tokens, computed by your own loop over model(input_ids)", refused, HINT_NO_GENERATE)


# -- softmax -----------------------------------------------------------------------------------

HINT_SOFTMAX = "b^u_i / sum_j b^u_j; note b^u = e^(u ln b)"


def test_softmax_base_3_by_hand():
    """[softmax] Scores 0, 1, 2 in base 3: 3^0, 3^1, 3^2 = 1, 3, 9, divided by 13."""
    got = call("softmax", torch.tensor([0.0, 1.0, 2.0]), base=3)
    check_probabilities("softmax(tensor([0., 1., 2.]), base=3)", got, torch.tensor([1.0, 3.0, 9.0]) / 13, HINT_SOFTMAX)


def test_softmax_base_10_negative_scores():
    """[softmax] Scores -1, -2 in base 10: 0.1 and 0.01, i.e. 10/11 and 1/11."""
    got = call("softmax", torch.tensor([-1.0, -2.0]), base=10)
    check_probabilities("softmax(tensor([-1., -2.]), base=10)", got, torch.tensor([10 / 11, 1 / 11]), HINT_SOFTMAX)


def test_softmax_default_base_is_e():
    """[softmax] Scores ln 1, ln 2, ln 5 in the default base e: 1, 2, 5, divided by 8."""
    scores = torch.log(torch.tensor([1.0, 2.0, 5.0]))
    got = call("softmax", scores)
    check_probabilities("softmax(torch.log(tensor([1., 2., 5.])))", got, torch.tensor([1 / 8, 2 / 8, 5 / 8]),
                        "with no base given, use base=math.e (the default in the signature)")


def test_softmax_huge_scores_stay_finite():
    """[softmax] Scores in the thousands: e^5000 overflows, the probabilities must not."""
    got = call("softmax", torch.tensor([5000.0, 4999.0, -3000.0]))
    e = math.exp(-1)
    check_probabilities("softmax(tensor([5000., 4999., -3000.]))", got, torch.tensor([1 / (1 + e), e / (1 + e), 0.0]),
                        "adding the same number to every score does not change the result: subtract the largest "
                        "score first, so the largest power is b^0 = 1")


@pytest.mark.parametrize("dim", [0, 1])
def test_softmax_along_a_dimension(dim):
    """[softmax] A 3x4 tensor: each slice along `dim` is its own distribution."""
    scores = torch.tensor([[0.5, -1.0, 2.0, 0.0], [1.5, 1.5, -0.5, 3.0], [-2.0, 0.25, 1.0, 0.75]])
    powers = 2.0 ** scores.double()
    expected = (powers / powers.sum(dim=dim, keepdim=True)).float()
    got = call("softmax", scores, base=2, dim=dim)
    check_probabilities(f"softmax(<3x4 scores>, base=2, dim={dim})", got, expected,
                        f"normalise along dim={dim} only: sum over that dimension (keepdim=True keeps shapes aligned)")


@pytest.mark.parametrize("base", [0.9, 0.0])
def test_softmax_rejects_a_base_not_above_1(base):
    """[softmax] A base of 1 or less is not allowed: ValueError."""
    expect_value_error(f"softmax(tensor([1., 2.]), base={base})", "softmax", torch.tensor([1.0, 2.0]), base=base,
                       hint="check `base` first and raise ValueError unless it is a finite number > 1")


def test_softmax_of_the_models_scores(model, tokenizer):
    """[softmax] On the model's real next-token scores: one probability per vocabulary entry, summing to 1."""
    logits = next_token_logits(model, tokenizer, "The weather today is")
    called = "softmax(<the model's logits after 'The weather today is'>)"
    got = call("softmax", logits)
    check_probabilities(called, got, torch.softmax(logits.double(), dim=-1).float(), HINT_SOFTMAX)
    if int(torch.argmax(got)) != int(torch.argmax(logits)):
        fail(called, f"the most likely token to be the one with the highest score (id {int(torch.argmax(logits))})",
             f"id {int(torch.argmax(got))}", "softmax keeps the order of the scores")


# -- temperature_distribution --------------------------------------------------------------------

HINT_TEMPERATURE = "divide the logits by t, then take the softmax over the last dimension"


def test_temperature_distribution_half_squares_the_weights():
    """[temperature_distribution] Logits ln 1, ln 2, ln 4 at t = 0.5: e^(2 ln k) = k^2, so 1, 4, 16 divided by 21."""
    with blaming():
        logits = torch.log(torch.tensor([1.0, 2.0, 4.0]))
        got = call("temperature_distribution", logits, 0.5)
        check_probabilities("temperature_distribution(torch.log(tensor([1., 2., 4.])), 0.5)", got,
                            torch.tensor([1.0, 4.0, 16.0]) / 21, HINT_TEMPERATURE)


def test_temperature_distribution_two_takes_square_roots():
    """[temperature_distribution] Logits ln 4, ln 9, ln 16 at t = 2: e^(ln(k^2) / 2) = k, so 2, 3, 4 divided by 9."""
    with blaming():
        logits = torch.log(torch.tensor([4.0, 9.0, 16.0]))
        got = call("temperature_distribution", logits, 2.0)
        check_probabilities("temperature_distribution(torch.log(tensor([4., 9., 16.])), 2.0)", got,
                            torch.tensor([2.0, 3.0, 4.0]) / 9, HINT_TEMPERATURE)


def test_temperature_distribution_rows_of_a_batch():
    """[temperature_distribution] A 2x5 batch at t = 1.7: each row sums to 1 on its own."""
    with blaming():
        logits = torch.tensor([[1.0, 0.0, -1.0, 2.0, 0.5], [3.0, 3.0, 0.0, -2.0, 1.0]])
        weights = torch.exp(logits.double() / 1.7)
        expected = (weights / weights.sum(dim=-1, keepdim=True)).float()
        got = call("temperature_distribution", logits, 1.7)
        check_probabilities("temperature_distribution(<2x5 logits>, 1.7)", got, expected,
                            "normalise over the LAST dimension: every row is a separate distribution")


def test_temperature_distribution_low_t_on_large_logits():
    """[temperature_distribution] Logits of a few hundred at t = 0.05: logits / t reach 6000, the result must stay finite."""
    with blaming():
        got = call("temperature_distribution", torch.tensor([300.0, 299.5, -50.0]), 0.05)
        e = math.exp(-10)
        check_probabilities("temperature_distribution(tensor([300., 299.5, -50.]), 0.05)", got,
                            torch.tensor([1 / (1 + e), e / (1 + e), 0.0]), "logits / t can be huge: reuse your stable softmax")


def test_temperature_distribution_sharpens_and_flattens(model, tokenizer):
    """[temperature_distribution] On the model's scores: t = 1 is plain softmax; lower t raises the top probability, higher t lowers it."""
    with blaming(model, tokenizer):
        logits = next_token_logits(model, tokenizer, "Once upon a time")
        at_one = call("temperature_distribution", logits, 1.0)
        check_probabilities("temperature_distribution(<the model's logits>, 1.0)", at_one,
                            torch.softmax(logits.double(), dim=-1).float(), "at t = 1 nothing changes: it is the softmax")
        tops = {t: float(call("temperature_distribution", logits, t).max()) for t in (0.4, 1.0, 2.5)}
        if not tops[0.4] > tops[1.0] > tops[2.5]:
            fail("temperature_distribution(<the model's logits>, t) for t = 0.4, 1.0, 2.5",
                 "the top probability to shrink as t grows", f"top probabilities {tops}",
                 "divide by t (do not multiply): t < 1 sharpens, t > 1 flattens")


def test_temperature_distribution_rejects_a_negative_t():
    """[temperature_distribution] t must be > 0: ValueError."""
    expect_value_error("temperature_distribution(tensor([1., 2.]), -0.5)", "temperature_distribution",
                       torch.tensor([1.0, 2.0]), -0.5, hint="raise ValueError unless temperature > 0")


# -- top_p_filter --------------------------------------------------------------------------------

HINT_NUCLEUS = ("keep the most likely tokens until their total reaches p (the token that makes it reach p is "
                "kept), zero the rest, then divide by the kept total (not by p)")


def test_top_p_filter_keeps_the_token_that_reaches_p():
    """[top_p_filter] 0.4 alone is below p = 0.65, 0.4 + 0.3 = 0.7 reaches it: keep both, rescale by 0.7."""
    got = call("top_p_filter", torch.tensor([0.4, 0.3, 0.2, 0.1]), 0.65)
    check_probabilities("top_p_filter(tensor([0.4, 0.3, 0.2, 0.1]), 0.65)", got,
                        torch.tensor([4 / 7, 3 / 7, 0.0, 0.0]), HINT_NUCLEUS)


def test_top_p_filter_on_unsorted_probabilities():
    """[top_p_filter] The input is not sorted: the nucleus is {0.6, 0.25}, in their original places."""
    got = call("top_p_filter", torch.tensor([0.1, 0.25, 0.05, 0.6]), 0.8)
    check_probabilities("top_p_filter(tensor([0.1, 0.25, 0.05, 0.6]), 0.8)", got,
                        torch.tensor([0.0, 0.25 / 0.85, 0.0, 0.6 / 0.85]),
                        "sort to find the nucleus, but give each kept probability back at its own index")


def test_top_p_filter_small_p_keeps_only_the_favourite():
    """[top_p_filter] The most likely token (0.5) already has p = 0.3: it alone is kept, with probability 1."""
    got = call("top_p_filter", torch.tensor([0.2, 0.5, 0.3]), 0.3)
    check_probabilities("top_p_filter(tensor([0.2, 0.5, 0.3]), 0.3)", got, torch.tensor([0.0, 1.0, 0.0]), HINT_NUCLEUS)


def test_top_p_filter_one_keeps_everything():
    """[top_p_filter] With p = 1 nothing is dropped: the distribution comes back unchanged."""
    probs = torch.tensor([0.5, 0.25, 0.125, 0.125])
    got = call("top_p_filter", probs, 1.0)
    check_probabilities("top_p_filter(tensor([0.5, 0.25, 0.125, 0.125]), 1.0)", got, probs,
                        "p = 1 asks for all of the probability: every token stays")


def test_top_p_filter_on_the_models_distribution(model, tokenizer):
    """[top_p_filter] On a real next-token distribution: the smallest top set with mass >= 0.8, rescaled to sum to 1."""
    probs = torch.softmax(next_token_logits(model, tokenizer, "Dear diary,"), dim=-1)
    p = 0.8
    called = "top_p_filter(<the model's next-token probabilities after 'Dear diary,'>, 0.8)"
    got = call("top_p_filter", probs, p)
    if not isinstance(got, torch.Tensor) or got.shape != probs.shape:
        fail(called, f"a tensor of shape {tuple(probs.shape)}", show(got), "return a tensor shaped like the input")
    problems = nucleus_problems(probs, got, p)
    if problems:
        fail(called, "the smallest set of most likely tokens holding >= 0.8, rescaled to sum to 1",
             f"{int((got > 0).sum())} kept tokens: " + "; ".join(problems), HINT_NUCLEUS)


@pytest.mark.parametrize("p", [1.2, -1.0])
def test_top_p_filter_rejects_p_outside_0_1(p):
    """[top_p_filter] p must be in (0, 1]: ValueError."""
    expect_value_error(f"top_p_filter(tensor([0.7, 0.3]), {p})", "top_p_filter", torch.tensor([0.7, 0.3]), p,
                       hint="raise ValueError unless 0 < p <= 1")


# -- greedy_decode ---------------------------------------------------------------------------------

HINT_GREEDY = ("run the model on the whole sequence so far, take the argmax of the logits at the LAST position, "
               "append it, repeat; stop after eos")


@pytest.mark.parametrize("prompt,n", [("Once upon a time", 8), ("The quick brown fox", 5)])
def test_greedy_decode_matches_generate(model, tokenizer, prompt, n):
    """[greedy_decode] Same new tokens as model.generate(do_sample=False)."""
    with blaming(model, tokenizer):
        expected = new_ids_from_generate(model, tokenizer, prompt, do_sample=False, max_new_tokens=n)
        got = call("greedy_decode", model, tokenizer, prompt, n)
        check_ids(tokenizer, f"greedy_decode(model, tokenizer, {prompt!r}, {n})", prompt, got, expected, HINT_GREEDY)


EOS_CANDIDATES = ["Roses are red,", "Violets are blue,", "The end.", "Thank you for reading."]


def test_greedy_decode_stops_after_eos(model, tokenizer):
    """[greedy_decode] On a prompt where the model soon predicts eos: stop right after it, and keep it."""
    with blaming(model, tokenizer):
        for prompt in EOS_CANDIDATES:
            expected = new_ids_from_generate(model, tokenizer, prompt, do_sample=False, max_new_tokens=30)
            if expected and expected[-1] == tokenizer.eos_token_id:
                break
        else:
            pytest.skip("none of this test's prompts makes this model predict eos within 30 tokens")
        got = call("greedy_decode", model, tokenizer, prompt, 30)
        check_ids(tokenizer, f"greedy_decode(model, tokenizer, {prompt!r}, 30)", prompt, got, expected,
                  "when the token you just chose is tokenizer.eos_token_id, append it and end the loop")


def test_greedy_decode_asked_for_no_token(model, tokenizer):
    """[greedy_decode] max_new_tokens=0 asks for no new token: the result is []."""
    with blaming(model, tokenizer):
        got = call("greedy_decode", model, tokenizer, "The quick brown fox", 0)
        if got != []:
            fail("greedy_decode(model, tokenizer, 'The quick brown fox', 0)", "[]", show(got),
                 "max_new_tokens=0: run the loop zero times (check the count before choosing a token, not after)")


def test_greedy_decode_writes_the_loop_itself(model, tokenizer):
    """[greedy_decode] Works on a model without `generate`, as the grader's are: the loop is yours to write."""
    prompt, n = "Once upon a time", 6
    called = f"greedy_decode(<the model without generate>, tokenizer, {prompt!r}, {n})"
    with blaming(model, tokenizer):
        expected = new_ids_from_generate(model, tokenizer, prompt, do_sample=False, max_new_tokens=n)
        got = call_without_generate("greedy_decode", called, ModelWithoutGenerate(model), tokenizer, prompt, n)
        check_ids(tokenizer, called, prompt, got, expected, HINT_GREEDY)


# -- sample_decode ---------------------------------------------------------------------------------

HINT_SAMPLE = ("per step: distribution = top_p_filter(temperature_distribution(last logits, t), p), then exactly "
               "one torch.multinomial(distribution, 1, generator=generator)")


@pytest.mark.parametrize("temperature,top_p", [(1.2, 0.8), (0.6, 1.0)])
def test_sample_decode_matches_generate_under_the_same_seed(model, tokenizer, temperature, top_p):
    """[sample_decode] After torch.manual_seed(31): the same tokens as generate(do_sample=True, top_k=0, ...)."""
    with blaming(model, tokenizer):
        prompt, n = "My favourite food is", 8
        settings = {"temperature": temperature, "top_p": top_p}
        torch.manual_seed(31)
        expected = new_ids_from_generate(model, tokenizer, prompt, do_sample=True, top_k=0, max_new_tokens=n, **settings)
        torch.manual_seed(31)
        got = call("sample_decode", model, tokenizer, prompt, n, **settings)
        check_ids(tokenizer, f"torch.manual_seed(31); sample_decode(model, tokenizer, {prompt!r}, {n}, "
                  f"temperature={temperature}, top_p={top_p})", prompt, got, expected, HINT_SAMPLE)


def test_sample_decode_draws_from_the_generator_passed(model, tokenizer):
    """[sample_decode] With generator=..., the draws come from it (as if torch.manual_seed(5)) and torch's global RNG is untouched."""
    with blaming(model, tokenizer):
        prompt, n = "Dear diary,", 6
        settings = {"temperature": 0.9, "top_p": 0.95}
        torch.manual_seed(5)
        expected = new_ids_from_generate(model, tokenizer, prompt, do_sample=True, top_k=0, max_new_tokens=n, **settings)
        called = f"sample_decode(model, tokenizer, {prompt!r}, {n}, temperature=0.9, top_p=0.95, generator=torch.Generator().manual_seed(5))"
        torch.manual_seed(123)
        got = call("sample_decode", model, tokenizer, prompt, n, generator=torch.Generator().manual_seed(5), **settings)
        after = torch.rand(1)
        check_ids(tokenizer, called, prompt, got, expected, HINT_SAMPLE + "; pass `generator` on to torch.multinomial")
        torch.manual_seed(123)
        if not torch.equal(after, torch.rand(1)):
            fail(called, "torch's global random numbers left alone", "the global random state moved",
                 "draw only from `generator` when one is given: torch.multinomial(distribution, 1, generator=generator)")


ORDER_PROMPTS = ["My favourite food is", "Paris is the capital of", "Roses are red,", "In 1969, the first", "Dear diary,"]


def _nucleus_mask(probs: torch.Tensor, p: float) -> torch.Tensor:
    """The contract's nucleus of `probs` (computed here with torch, for the test's own use)."""
    ordered, order = torch.sort(probs, descending=True)
    inside = (torch.cumsum(ordered, 0) - ordered) < p
    inside[0] = True
    return torch.zeros_like(inside).scatter(0, order, inside)


def test_sample_decode_applies_temperature_before_top_p(model, tokenizer):
    """[sample_decode] The nucleus is taken at temperature t: top_p_filter(temperature_distribution(logits, t), p)."""
    temperature, top_p, seeds = 2.0, 0.6, range(700, 712)
    with blaming(model, tokenizer):
        # A prompt where the two orders disagree most: the nucleus of the plain softmax (t = 1) is
        # small, the nucleus at t = 2 much larger, so draws from the right one often fall outside the other.
        cases = []
        for prompt in ORDER_PROMPTS:
            logits = next_token_logits(model, tokenizer, prompt)
            heated = torch.softmax(logits / temperature, dim=-1)
            right, plain = _nucleus_mask(heated, top_p), _nucleus_mask(torch.softmax(logits, dim=-1), top_p)
            cases.append((float(heated[right & ~plain].sum()), prompt, heated, right, plain))
        outside, prompt, heated, right, plain = max(cases, key=lambda case: case[0])
        if outside < 0.3:
            pytest.skip("on this model, no prompt of this test tells the two orders apart")
        distribution = torch.where(right, heated, torch.zeros_like(heated))
        distribution = distribution / distribution.sum()
        expected = [int(torch.multinomial(distribution, 1, generator=torch.Generator().manual_seed(s))) for s in seeds]
        called = (f"sample_decode(model, tokenizer, {prompt!r}, 1, temperature={temperature}, top_p={top_p}, "
                  f"generator=torch.Generator().manual_seed(s)) for s = {seeds.start}..{seeds.stop - 1}")
        got = []
        for s in seeds:
            ids = call("sample_decode", model, tokenizer, prompt, 1, temperature=temperature, top_p=top_p,
                       generator=torch.Generator().manual_seed(s))
            if not isinstance(ids, list) or len(ids) != 1:
                fail(called, "one new token per call (max_new_tokens=1)", show(ids), HINT_SAMPLE)
            got.append(ids[0])
        if got == expected:
            return
        hint = HINT_SAMPLE
        if all(bool(plain[t]) for t in got) and not all(bool(plain[t]) for t in expected):
            hint = ("every token you drew lies in the nucleus of the PLAIN softmax (t = 1): apply temperature first, "
                    "then top-p: top_p_filter(temperature_distribution(logits, t), p), not the other way round")
        fail(called, f"the first tokens {expected} (drawn from the {int(right.sum())}-token nucleus at t = {temperature})",
             f"{got}", hint)


def test_sample_decode_asked_for_no_token(model, tokenizer):
    """[sample_decode] max_new_tokens=0 asks for no new token: the result is [] (and nothing is drawn)."""
    with blaming(model, tokenizer):
        generator = torch.Generator().manual_seed(3)
        got = call("sample_decode", model, tokenizer, "Dear diary,", 0, generator=generator)
        called = "sample_decode(model, tokenizer, 'Dear diary,', 0, generator=torch.Generator().manual_seed(3))"
        if got != []:
            fail(called, "[]", show(got), "max_new_tokens=0: run the loop zero times")
        if not torch.equal(generator.get_state(), torch.Generator().manual_seed(3).get_state()):
            fail(called, "[] without drawing anything", "[], but the generator was used",
                 "with no token to choose, draw nothing: the loop runs zero times")


def test_sample_decode_writes_the_loop_itself(model, tokenizer):
    """[sample_decode] Works on a model without `generate`, as the grader's are: the loop is yours to write."""
    prompt, n, settings = "Dear diary,", 6, {"temperature": 1.1, "top_p": 0.9}
    called = (f"sample_decode(<the model without generate>, tokenizer, {prompt!r}, {n}, temperature=1.1, top_p=0.9, "
              f"generator=torch.Generator().manual_seed(8))")
    with blaming(model, tokenizer):
        torch.manual_seed(8)
        expected = new_ids_from_generate(model, tokenizer, prompt, do_sample=True, top_k=0, max_new_tokens=n, **settings)
        got = call_without_generate("sample_decode", called, ModelWithoutGenerate(model), tokenizer, prompt, n,
                                    generator=torch.Generator().manual_seed(8), **settings)
        check_ids(tokenizer, called, prompt, got, expected, HINT_SAMPLE)


@pytest.mark.parametrize("settings", [{"temperature": -0.3}, {"top_p": 1.5}])
def test_sample_decode_rejects_bad_settings(model, tokenizer, settings):
    """[sample_decode] temperature <= 0 or top_p outside (0, 1]: ValueError."""
    text = ", ".join(f"{k}={v}" for k, v in settings.items())
    expect_value_error(f"sample_decode(model, tokenizer, 'Hi', 3, {text})", "sample_decode", model, tokenizer, "Hi", 3,
                       hint="check the settings (your helper functions already raise ValueError) before or while sampling",
                       **settings)


# -- truncate_at_stop --------------------------------------------------------------------------------

HINT_STOP = "find where each stop sequence first occurs and cut at the smallest position"


@pytest.mark.parametrize("text,stops,expected", [
    ("one. two! three?", ["?", "!"], "one. two"),
    ("Decision: good\nReview: meh", ["\nReview"], "Decision: good"),
    ("plain words", ["zzz", "\n"], "plain words"),
], ids=["earliest wins", "multi-character stop", "nothing to cut"])
def test_truncate_at_stop_cuts_at_the_earliest(text, stops, expected):
    """[truncate_at_stop] Cut before the earliest stop sequence, whatever the order of the list."""
    got = call("truncate_at_stop", text, stops)
    if got != expected:
        fail(f"truncate_at_stop({text!r}, {stops!r})", repr(expected), show(got), HINT_STOP)


def test_truncate_at_stop_rejects_an_empty_stop():
    """[truncate_at_stop] An empty stop sequence would cut everything: ValueError."""
    expect_value_error("truncate_at_stop('xyz', ['', 'x'])", "truncate_at_stop", "xyz", ["", "x"],
                       hint="raise ValueError if any stop sequence is ''")


# -- generate_text ---------------------------------------------------------------------------------

HINT_STOPS = ("after each new token, decode the whole continuation so far and look for every stop sequence in it "
              "(a stop sequence can span two tokens); cut before the earliest one")


def check_text(called: str, prompt: str, got, expected: str, hint: str) -> None:
    if isinstance(got, str) and got == expected:
        return
    if isinstance(got, str) and got.startswith(prompt) and not expected.startswith(prompt):
        hint = "return only the continuation, not the prompt"
    elif not isinstance(got, str):
        hint = "return a str: tokenizer.decode(new_ids), cut before the first stop sequence"
    fail(called, repr(expected), show(got), hint)


def test_generate_text_greedy(model, tokenizer):
    """[generate_text] temperature=0: the decoded greedy continuation, without the prompt."""
    with blaming(model, tokenizer):
        prompt, n = "In 1969, the first", 8
        expected = tokenizer.decode(new_ids_from_generate(model, tokenizer, prompt, do_sample=False, max_new_tokens=n))
        got = call("generate_text", model, tokenizer, prompt, max_new_tokens=n)
        check_text(f"generate_text(model, tokenizer, {prompt!r}, max_new_tokens={n})", prompt, got, expected,
                   "with temperature=0 pick the argmax at every step, then return the decoded new tokens (tokenizer.decode)")


def test_generate_text_samples_with_the_generator(model, tokenizer):
    """[generate_text] temperature > 0: samples like sample_decode, from the generator passed."""
    with blaming(model, tokenizer):
        prompt, n = "Paris is the capital of", 8
        torch.manual_seed(11)
        expected = tokenizer.decode(new_ids_from_generate(model, tokenizer, prompt, do_sample=True, top_k=0,
                                                          temperature=1.3, top_p=0.85, max_new_tokens=n))
        got = call("generate_text", model, tokenizer, prompt, max_new_tokens=n, temperature=1.3, top_p=0.85,
                   generator=torch.Generator().manual_seed(11))
        check_text(f"generate_text(model, tokenizer, {prompt!r}, max_new_tokens={n}, temperature=1.3, top_p=0.85, "
                   f"generator=torch.Generator().manual_seed(11))", prompt, got, expected,
                   "for temperature > 0 sample exactly as sample_decode does (same temperature, top_p and generator)")


def _stop_in_one_token(tokenizer, ids: list[int]):
    """A stop sequence: the text of one new token (4 <= k < 12) that did not occur before it."""
    for k in range(4, min(12, len(ids))):
        yield k, tokenizer.decode([ids[k]]).strip()


def _stop_across_two_tokens(tokenizer, ids: list[int]):
    """A stop sequence: the last character of new token k and the first of token k + 1."""
    for k in range(2, len(ids) - 1):
        first, second = tokenizer.decode([ids[k]]), tokenizer.decode([ids[k + 1]])
        if first and second:
            yield k + 1, first[-1] + second[0]


def _find_stop(model, tokenizer, prompts, candidates):
    """(prompt, k, stop, expected text): a stop sequence that first appears once new token k is decoded."""
    for prompt in prompts:
        ids = new_ids_from_generate(model, tokenizer, prompt, do_sample=False, max_new_tokens=16)
        for k, stop in candidates(tokenizer, ids):
            before, upto = tokenizer.decode(ids[:k]), tokenizer.decode(ids[: k + 1])
            if stop and "\ufffd" not in upto + stop and stop not in before and stop in upto:
                return prompt, k, stop, upto[: upto.find(stop)]
    pytest.skip("could not find a usable stop sequence in this model's continuations")


def test_generate_text_stops_at_a_stop_sequence(model, tokenizer):
    """[generate_text] Stops generating as soon as the decoded continuation contains a stop sequence, and cuts before it."""
    with blaming(model, tokenizer):
        prompt, k, stop, expected = _find_stop(model, tokenizer, ["import numpy as np\n", "Once upon a time"], _stop_in_one_token)
        called = f"generate_text(model, tokenizer, {prompt!r}, max_new_tokens=16, stop=['@@@', {stop!r}])"
        passes = []
        hook = model.register_forward_hook(lambda *_: passes.append(1))
        try:
            got = call("generate_text", model, tokenizer, prompt, max_new_tokens=16, stop=["@@@", stop])
        finally:
            hook.remove()
        check_text(called, prompt, got, expected, HINT_STOPS)
        if len(passes) > k + 2:
            fail(called, f"to stop generating once {stop!r} appears (new token {k}, so about {k + 1} forward passes)",
                 f"the right text, but the model ran {len(passes)} times",
                 "check for stop sequences after every new token and stop right away; generating all "
                 "max_new_tokens and cutting afterwards wastes time")


def test_generate_text_stop_spanning_two_tokens(model, tokenizer):
    """[generate_text] A stop sequence made of the end of one token and the start of the next is found too."""
    with blaming(model, tokenizer):
        prompt, k, stop, expected = _find_stop(model, tokenizer, ["The weather today is", "Dear diary,"], _stop_across_two_tokens)
        got = call("generate_text", model, tokenizer, prompt, max_new_tokens=16, stop=[stop])
        check_text(f"generate_text(model, tokenizer, {prompt!r}, max_new_tokens=16, stop=[{stop!r}])  "
                   f"# {stop!r} spans new tokens {k - 1} and {k}", prompt, got, expected, HINT_STOPS)


def test_generate_text_rejects_an_empty_stop(model, tokenizer):
    """[generate_text] An empty stop sequence: ValueError."""
    expect_value_error("generate_text(model, tokenizer, 'Hi', max_new_tokens=3, stop=[''])", "generate_text",
                       model, tokenizer, "Hi", max_new_tokens=3, stop=[""],
                       hint="an empty stop sequence is an error: raise ValueError before generating")


def test_generate_text_keeps_the_end_of_text_token(model, tokenizer):
    """[generate_text] Generation that ends at eos keeps it: the text ends with '<|endoftext|>', as decode gives it."""
    with blaming(model, tokenizer):
        for prompt in EOS_CANDIDATES:
            ids = new_ids_from_generate(model, tokenizer, prompt, do_sample=False, max_new_tokens=30)
            if ids and ids[-1] == tokenizer.eos_token_id:
                break
        else:
            pytest.skip("none of this test's prompts makes this model predict eos within 30 tokens")
        expected = tokenizer.decode(ids)
        eos_text = tokenizer.decode([tokenizer.eos_token_id])
        called = f"generate_text(model, tokenizer, {prompt!r}, max_new_tokens=30)"
        got = call("generate_text", model, tokenizer, prompt, max_new_tokens=30)
        hint = ("stop right after eos and return tokenizer.decode(new_ids) with the eos id in new_ids")
        if isinstance(got, str) and got + eos_text == expected:
            hint = (f"the continuation ends at eos, and its text {eos_text!r} belongs in the result: decode the new ids "
                    f"as they are (no skip_special_tokens=True, no stripping of {eos_text!r})")
        check_text(called, prompt, got, expected, hint)


def test_generate_text_asked_for_no_token(model, tokenizer):
    """[generate_text] max_new_tokens=0 asks for no new token: the result is ''."""
    with blaming(model, tokenizer):
        got = call("generate_text", model, tokenizer, "In 1969, the first", max_new_tokens=0)
        check_text("generate_text(model, tokenizer, 'In 1969, the first', max_new_tokens=0)", "In 1969, the first",
                   got, "", "max_new_tokens=0: generate nothing and return the empty continuation ''")


def test_generate_text_writes_the_loop_itself(model, tokenizer):
    """[generate_text] Works on a model without `generate`, as the grader's are: the loop is yours to write."""
    prompt, n = "The weather today is", 8
    called = f"generate_text(<the model without generate>, tokenizer, {prompt!r}, max_new_tokens={n})"
    with blaming(model, tokenizer):
        expected = tokenizer.decode(new_ids_from_generate(model, tokenizer, prompt, do_sample=False, max_new_tokens=n))
        got = call_without_generate("generate_text", called, ModelWithoutGenerate(model), tokenizer, prompt,
                                    max_new_tokens=n)
        check_text(called, prompt, got, expected, HINT_NO_GENERATE)
