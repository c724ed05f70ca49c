"""Public tests for prompting.py. Run them with `pytest` in this folder (a few seconds).

Each test checks one property of one function, on small inputs worked out by hand or on
the course model (the offline `tiny-qwen3` unless you set AUTOGRADER_MODEL). Where the
model is involved, the expected answer is computed here from the model's next-token
distributions, one prefix at a time (slower than what the contract asks of you, and the
same numbers).

Every test names the function it checks: its name (`test_classify_...`), its docstring
and every failure message start with it, e.g. "[classify] called: ...". The tests run in
the order you implement the functions, so with `pytest -x` the first failure is in the
first function to fix.

A failure says what was called, what was expected, what came back, and gives a hint.
Passing every test here is a good sign, not a guarantee: the grader's hidden tests check
more inputs and edge cases against the same contract (the docstrings).

`complete_function` is tested on stand-in models that follow a fixed script (the real
model underneath, with its scores replaced), so that we know exactly where the function
ends and can see how far your loop generated. Like the grader's, they have no `generate`.

Useful options: `pytest -x` stops at the first failure; `pytest -k classify` runs only the
tests whose name contains "classify".
"""

from __future__ import annotations

import math
import os
import re
import traceback

import pytest
import torch

import prompting

CONTRACT = ("few_shot_prompt", "label_log_probs", "classify", "complete_function")

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
    return f"[{name or CHECKING or 'prompting.py'}] "


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
    request.node.add_marker(pytest.mark.skip)
    pytest.skip("the model could not be loaded: the first test that needs it says why")


@pytest.fixture
def model(request, _course_model):
    return _loaded(request, _course_model)[0]


@pytest.fixture
def tokenizer(request, _course_model):
    return _loaded(request, _course_model)[1]


# -- calling your code and explaining what went wrong -----------------------------------------


def _innermost_function(error: BaseException) -> str | None:
    """The function of the contract that raised `error` (the innermost one in prompting.py)."""
    name = None
    for frame in traceback.extract_tb(error.__traceback__):
        if os.path.basename(frame.filename) == "prompting.py" and frame.name in CONTRACT:
            name = frame.name
    return name


def call(name: str, *args, **kwargs):
    """prompting.<name>(*args, **kwargs); a function that is still a stub fails in one line."""
    try:
        return getattr(prompting, name)(*args, **kwargs)
    except NotImplementedError as error:
        culprit = _innermost_function(error) or name
    via = "" if culprit == name else f" (`{name}` calls it)"
    pytest.fail(f"{label(name)}`{culprit}` is not implemented yet{via}: write it in prompting.py (its docstring is "
                f"the contract), then run pytest again.", pytrace=False)


def show(value) -> str:
    """A short, readable description of a value."""
    if isinstance(value, torch.Tensor):
        return f"a tensor {value!r}" if value.numel() <= 6 else f"a tensor of shape {tuple(value.shape)}"
    text = repr(value)
    return text if len(text) <= 400 else text[:400] + "..."


def fail(called: str, expected: str, got: str, hint: str | None = None):
    lines = [f"{label()}called:   {called}", f"expected: {expected}", f"got:      {got}"]
    if hint:
        lines.append(f"hint:     {hint}")
    pytest.fail("\n".join(lines), pytrace=False)


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


# -- few_shot_prompt ------------------------------------------------------------------------------

LECTURE_EXAMPLES = [
    ("tried on gamepass, and freaking love it, might as well get it on steam while its on sale.", "good"),
    ("Game was released defunct, with Paradox and Colossal lying about the state of the game and the game play aspects.", "bad"),
    ("It is not being improved despite promises by Paradox.", "bad"),
    ("Almost seven months after launch this game is still not were it is supposed to.", "bad"),
]
QUERY = "I dont care what everyone says i loved playing the campaign."

HINT_FORMAT = ('each example is "{input_label}: {text}\\n{output_label}: {answer}", blocks are joined with "\\n\\n", '
               'and the prompt ends with "{input_label}: {query}\\n{output_label}:"')


def check_prompt(called: str, got, expected: str, hint: str = HINT_FORMAT) -> None:
    if isinstance(got, str) and got == expected:
        return
    if not isinstance(got, str):
        hint = "return the prompt as one str"
    elif got == expected + " ":
        hint = ("no space after the final colon: the space belongs to the answer's token (' good'), which the model "
                "is to produce")
    elif got.strip() == expected:
        hint = "nothing before the first block and nothing after the final colon: no extra newlines or spaces"
    else:
        where = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
        hint = (f"the texts part at character {where}: expected {expected[where:where + 25]!r}, got "
                f"{got[where:where + 25]!r}; " + HINT_FORMAT)
    fail(called, repr(expected), show(got), hint)


def test_few_shot_prompt_two_examples_by_hand():
    """[few_shot_prompt] Two lecture examples and a query, in the lecture's format."""
    examples = LECTURE_EXAMPLES[:2]
    expected = ("Review: tried on gamepass, and freaking love it, might as well get it on steam while its on sale.\n"
                "Decision: good\n"
                "\n"
                "Review: Game was released defunct, with Paradox and Colossal lying about the state of the game and "
                "the game play aspects.\n"
                "Decision: bad\n"
                "\n"
                "Review: I dont care what everyone says i loved playing the campaign.\n"
                "Decision:")
    got = call("few_shot_prompt", examples, QUERY)
    check_prompt("few_shot_prompt(<the lecture's first two examples>, <its last review>)", got, expected)


def test_few_shot_prompt_zero_shot():
    """[few_shot_prompt] No examples: the query block alone."""
    got = call("few_shot_prompt", [], "Boring after the first hour.")
    check_prompt("few_shot_prompt([], 'Boring after the first hour.')", got,
                 "Review: Boring after the first hour.\nDecision:",
                 "with no examples the prompt is just the query block: no blank line before it")


def test_few_shot_prompt_other_labels_and_texts_as_given():
    """[few_shot_prompt] Other line names; texts are used exactly as given (a tuple of examples works too)."""
    examples = (("2 + 2", "4"), (" 10 - 3 ", "seven"))
    got = call("few_shot_prompt", examples, "6 * 7", input_label="Question", output_label="Answer")
    check_prompt("few_shot_prompt((('2 + 2', '4'), (' 10 - 3 ', 'seven')), '6 * 7', input_label='Question', "
                 "output_label='Answer')", got,
                 "Question: 2 + 2\nAnswer: 4\n\nQuestion:  10 - 3 \nAnswer: seven\n\nQuestion: 6 * 7\nAnswer:",
                 "use input_label and output_label for the two line names, and the texts exactly as given "
                 "(no strip)")


@pytest.mark.parametrize("labels", [{"input_label": ""}, {"output_label": "Decision:"}, {"input_label": "Re\nview"}],
                         ids=["empty", "ends with a colon", "has a newline"])
def test_few_shot_prompt_rejects_bad_labels(labels):
    """[few_shot_prompt] A line name that is empty, ends with ':' or has a newline: ValueError."""
    arguments = ", ".join(f"{key}={value!r}" for key, value in labels.items())
    expect_value_error(f"few_shot_prompt([('Great.', 'good')], 'Meh.', {arguments})", "few_shot_prompt",
                       [("Great.", "good")], "Meh.", **labels,
                       hint="check both labels first: raise ValueError if one is '', contains '\\n' or ends with ':'")


# -- label_log_probs ------------------------------------------------------------------------------


def next_token_log_probs(model, ids: list[int]) -> torch.Tensor:
    """ln Pr{next token | ids}, for every token of the vocabulary (shape (vocab,))."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1].double()
    return torch.log_softmax(logits, dim=-1)


def expected_log_prob(model, tokenizer, prompt: str, label: str) -> float:
    """ln Pr{label | prompt} by the chain rule, one forward pass per label token."""
    ids = tokenizer(prompt)["input_ids"]
    total = 0.0
    for token in tokenizer(label, add_special_tokens=False)["input_ids"]:
        total += float(next_token_log_probs(model, ids)[token])
        ids = ids + [token]
    return total


HINT_LOG_PROBS = ("ids = prompt ids + label ids (tokenized separately); one forward pass; log_softmax; add up the "
                  "label tokens' log-probabilities, each from the row of the position just BEFORE it")


def check_log_probs(model, tokenizer, prompt: str, labels: list[str], called: str, hint: str = HINT_LOG_PROBS) -> dict:
    expected = {lab: expected_log_prob(model, tokenizer, prompt, lab) for lab in labels}
    got = call("label_log_probs", model, tokenizer, prompt, labels)
    shown = "{" + ", ".join(f"{lab!r}: {value:.5f}" for lab, value in expected.items()) + "}"
    if not isinstance(got, dict) or list(got) != labels:
        fail(called, shown, show(got), "return a dict with one entry per label, keyed by the label as given, in order")
    for lab in labels:
        value = got[lab]
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = float(value)
        if not isinstance(value, (int, float)) or not math.isclose(float(value), expected[lab], rel_tol=1e-5, abs_tol=1e-4):
            extra = ""
            label_ids = tokenizer(lab, add_special_tokens=False)["input_ids"]
            if isinstance(value, (int, float)) and len(label_ids) > 1:
                first = expected_log_prob(model, tokenizer, prompt, tokenizer.decode(label_ids[:1]))
                if math.isclose(float(value), first, rel_tol=1e-5, abs_tol=1e-4):
                    extra = f" ({lab!r} is {len(label_ids)} tokens; your value is the first token's alone)"
            fail(called, shown, show(got) + extra, hint)
    return got


def few_shot(query: str, outputs=("good", "bad", "bad", "bad")) -> str:
    """The lecture's few-shot prompt (built here, not with your few_shot_prompt)."""
    blocks = [f"Review: {text}\nDecision: {out}" for (text, _), out in zip(LECTURE_EXAMPLES, outputs)]
    return "\n\n".join(blocks + [f"Review: {query}\nDecision:"])


def test_label_log_probs_good_and_bad(model, tokenizer):
    """[label_log_probs] ' good' and ' bad' after the lecture's few-shot prompt: ln Pr of each."""
    prompt = few_shot(QUERY)
    check_log_probs(model, tokenizer, prompt, [" good", " bad"],
                    "label_log_probs(model, tokenizer, <the lecture's few-shot prompt>, [' good', ' bad'])")


def test_label_log_probs_labels_of_several_tokens(model, tokenizer):
    """[label_log_probs] Labels of several tokens: the sum over all of their tokens, each given the ones before it."""
    prompt = few_shot("The story drags but the combat is great fun.")
    labels = [" very good", " not bad at all", " X"]
    assert len(tokenizer(" not bad at all", add_special_tokens=False)["input_ids"]) > 1
    check_log_probs(model, tokenizer, prompt, labels,
                    f"label_log_probs(model, tokenizer, <a few-shot prompt>, {labels!r})",
                    "a label of k tokens needs k log-probabilities, from the rows of positions n-1 .. n+k-2 "
                    "(n = the prompt's length in tokens), added up")


def test_label_log_probs_tokenizes_prompt_and_label_separately(model, tokenizer):
    """[label_log_probs] A prompt ending in a space: tokenize prompt and label separately, then join the ids."""
    prompt, labels = few_shot(QUERY) + " ", ["good", "bad"]
    joined = tokenizer(prompt + "good")["input_ids"]
    separate = tokenizer(prompt)["input_ids"] + tokenizer("good", add_special_tokens=False)["input_ids"]
    assert joined != separate, "the tokenizer merges ' ' and 'good' into ' good' when they are tokenized together"
    check_log_probs(model, tokenizer, prompt, labels,
                    "label_log_probs(model, tokenizer, <few-shot prompt> + ' ', ['good', 'bad'])",
                    "tokenizer(prompt + label) merges the trailing space with 'good' into one token ' good': "
                    "tokenize the prompt and the label separately and join the two id lists")


def test_label_log_probs_returns_python_floats(model, tokenizer):
    """[label_log_probs] The values are plain Python floats, <= 0."""
    got = call("label_log_probs", model, tokenizer, "The weather today is", [" sunny", " rainy"])
    if not isinstance(got, dict) or not all(isinstance(v, float) and v <= 0 for v in got.values()):
        fail("label_log_probs(model, tokenizer, 'The weather today is', [' sunny', ' rainy'])",
             "a dict of Python floats, each <= 0", show(got),
             "float(tensor) turns a one-element tensor into a Python float; log-probabilities are never above 0")


@pytest.mark.parametrize("prompt,labels", [("Decision:", []), ("Decision:", [" good", ""]), ("Decision:", [" good", " good"]),
                                           ("", [" good", " bad"])],
                         ids=["no labels", "empty label", "repeated label", "empty prompt"])
def test_label_log_probs_rejects_bad_arguments(model, tokenizer, prompt, labels):
    """[label_log_probs] No labels, an empty label, a repeated label or an empty prompt: ValueError."""
    expect_value_error(f"label_log_probs(model, tokenizer, {prompt!r}, {labels!r})", "label_log_probs",
                       model, tokenizer, prompt, labels,
                       hint="check the arguments before running the model and raise ValueError as the docstring says")


# -- classify ---------------------------------------------------------------------------------------


class ConstantModel(torch.nn.Module):
    """A stand-in that gives the same next-token scores after every prefix."""

    def __init__(self, model, logits: torch.Tensor):
        super().__init__()
        self.config = model.config
        self.logits = logits.float()
        self.weight = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

    @property
    def device(self):
        return torch.device("cpu")

    def forward(self, input_ids=None, *args, **kwargs):
        from transformers.modeling_outputs import CausalLMOutputWithPast

        shape = tuple(torch.as_tensor(input_ids).shape)
        return CausalLMOutputWithPast(logits=self.logits.expand(*shape, -1).clone())


def _label_log_probs_problem(model, tokenizer) -> str | None:
    """What is wrong with your label_log_probs on a small check of its own (None: nothing found)."""
    prompt, labels = "Review: Loved it.\nDecision:", [" good", " very bad"]
    try:
        got = prompting.label_log_probs(model, tokenizer, prompt, labels)
        for lab in labels:
            expected = expected_log_prob(model, tokenizer, prompt, lab)
            if not math.isclose(float(got[lab]), expected, rel_tol=1e-5, abs_tol=1e-4):
                return f"label_log_probs(model, tokenizer, {prompt!r}, {labels!r})[{lab!r}] is {got[lab]}, expected {expected:.5f}"
    except NotImplementedError:
        return None
    except Exception as error:  # noqa: BLE001 - the helper's own bug
        return f"label_log_probs raised {type(error).__name__}: {error} on a small input"
    return None


def check_choice(model, tokenizer, called: str, got, labels: list[str], expected: str, scores: dict | None, hint: str) -> None:
    if got == expected and isinstance(got, str):
        return
    detail = ""
    if scores:
        detail = "  (ln Pr: " + ", ".join(f"{lab!r} {value:.4f}" for lab, value in scores.items()) + ")"
    problem = _label_log_probs_problem(model, tokenizer)
    if problem:
        hint = f"classify may use your label_log_probs, which is wrong here (see its own tests): {problem}"
    fail(called, repr(expected) + detail, show(got), hint)


HINT_CLASSIFY = "return the label whose label_log_probs value is the largest (the label itself, as given)"


@pytest.mark.parametrize("review", [QUERY, "Crashes every ten minutes, refunded."], ids=["lecture review", "other review"])
def test_classify_picks_the_likeliest_label(model, tokenizer, review):
    """[classify] The label with the highest ln Pr after a few-shot prompt."""
    prompt, labels = few_shot(review), [" good", " bad"]
    scores = {lab: expected_log_prob(model, tokenizer, prompt, lab) for lab in labels}
    expected = max(labels, key=scores.__getitem__)
    got = call("classify", model, tokenizer, prompt, labels)
    check_choice(model, tokenizer, f"classify(model, tokenizer, <few-shot prompt for {review[:30]!r}...>, {labels!r})",
                 got, labels, expected, scores, HINT_CLASSIFY)


def test_classify_compares_whole_labels(model, tokenizer):
    """[classify] A label of two likely tokens loses to one of a single, less likely token: compare whole labels."""
    very, good, bad = (tokenizer(t, add_special_tokens=False)["input_ids"][0] for t in (" very", " good", " bad"))
    logits = torch.zeros(model.config.vocab_size)
    # After every prefix: Pr(' very') = Pr(' good') = 0.4, Pr(' bad') = 0.2, every other token ~0. So
    # ln Pr(' very good') = 2 ln 0.4 = -1.83 < ln Pr(' bad') = ln 0.2 = -1.61: ' bad' wins, although a
    # comparison of first tokens alone (' very' 0.4 against ' bad' 0.2) would pick ' very good'.
    logits[:] = -1e4
    logits[[very, good]] = math.log(0.4)
    logits[bad] = math.log(0.2)
    stand_in = ConstantModel(model, logits)
    labels = [" very good", " bad"]
    got = call("classify", stand_in, tokenizer, "Decision:", labels)
    check_choice(model, tokenizer, f"classify(<a model that always predicts ' very' 0.4, ' good' 0.4, ' bad' 0.2>, "
                 f"tokenizer, 'Decision:', {labels!r})", got, labels, " bad",
                 {" very good": 2 * math.log(0.4), " bad": math.log(0.2)},
                 "ln Pr(' very good') = ln 0.4 + ln 0.4 = -1.83 < ln 0.2 = -1.61: add up the log-probabilities of "
                 "all of a label's tokens, not just the first one")


@pytest.mark.parametrize("labels", [[" good", " bad"], [" bad", " good"]], ids=["good first", "bad first"])
def test_classify_breaks_ties_by_order(model, tokenizer, labels):
    """[classify] Two labels equally likely: the one listed first wins."""
    stand_in = ConstantModel(model, torch.zeros(model.config.vocab_size))
    got = call("classify", stand_in, tokenizer, "Decision:", labels)
    check_choice(model, tokenizer, f"classify(<a model that finds every token equally likely>, tokenizer, 'Decision:', "
                 f"{labels!r})", got, labels, labels[0], None,
                 "on a tie, return the label that comes first in `labels` (max() over the labels in order does that)")


def test_classify_rejects_no_labels(model, tokenizer):
    """[classify] No labels to choose from: ValueError."""
    expect_value_error("classify(model, tokenizer, 'Decision:', [])", "classify", model, tokenizer, "Decision:", [],
                       hint="with no labels there is nothing to choose: raise ValueError (label_log_probs does)")


# -- complete_function ------------------------------------------------------------------------------

GENERATION_METHODS = frozenset({"generate", "greedy_search", "sample", "beam_search", "beam_sample",
                                "contrastive_search", "assisted_decoding"})


class ScriptedModel(torch.nn.Module):
    """The course model, but after `header` its scores always make the next token of
    `script` the most likely one (and eos once the script is used up). It notes the
    furthest new token it was asked about. With `script=None` it is the course model
    unchanged. Like the grader's stand-ins, it has no `generate`."""

    def __init__(self, model, tokenizer, header: str, script: str | None):
        super().__init__()
        self.inner = model
        self.prompt_length = len(tokenizer(header)["input_ids"])
        self.script = None if script is None else tokenizer(script, add_special_tokens=False)["input_ids"]
        self.eos = tokenizer.eos_token_id
        self.furthest = -1

    @property
    def device(self):
        return self.inner.device

    @property
    def dtype(self):
        return self.inner.dtype

    def __getattr__(self, name: str):
        if name in GENERATION_METHODS:
            raise AttributeError(f"model.{name} is not available: write the generation loop yourself (the grader's "
                                 f"models have no `{name}` either)", name=name, obj=self)
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("_"):
                raise
            return getattr(self._modules["inner"], name)

    def forward(self, input_ids=None, *args, **kwargs):
        past = kwargs.get("past_key_values", kwargs.get("cache"))
        # (read before the call: the model extends a KV cache in place)
        start = past.get_seq_length() if past is not None and hasattr(past, "get_seq_length") else 0
        length = torch.as_tensor(input_ids).shape[-1]
        output = self.inner(input_ids, *args, **kwargs)
        logits = output.logits.clone()
        rows = logits.shape[-2]  # fewer than `length` with logits_to_keep
        for row in range(rows):
            new_index = start + length - rows + row + 1 - self.prompt_length
            if new_index < 0:
                continue
            self.furthest = max(self.furthest, new_index)
            if self.script is not None:
                token = self.script[new_index] if new_index < len(self.script) else self.eos
                logits[..., row, :] = -100.0
                logits[..., row, token] = 100.0
        output.logits = logits
        return output


FACTORIAL = (" n):\n    if n == 0:\n        return 1\n    else:\n        return n * factorial(n-1)\n\n"
             "def main():\n    n = int(input(\"Enter a number: \"))\n    print(\"Factorial of\", n, \"is\", factorial(n))\n")


def first_token_reaching(tokenizer, script: str, offset: int) -> int:
    """The index of the script's token that holds character `offset` of the script."""
    ids = tokenizer(script, add_special_tokens=False)["input_ids"]
    return next(k for k in range(len(ids)) if len(tokenizer.decode(ids[: k + 1])) > offset)


def check_completion(called: str, got, expected: str, hint: str) -> None:
    if isinstance(got, str) and got == expected:
        return
    if isinstance(got, str) and got.rstrip() == expected:
        hint = "remove the trailing whitespace (str.rstrip()): the result ends with the function's last character"
    elif isinstance(got, str) and "<|endoftext|>" in got:
        hint = "eos ends the completion and is not part of it: do not decode it into the text"
    fail(called, repr(expected), show(got), hint)


def test_complete_function_lecture_factorial(model, tokenizer):
    """[complete_function] The lecture's factorial: cut before `def main`, and stop generating right there."""
    header = "def factorial("
    stand_in = ScriptedModel(model, tokenizer, header, FACTORIAL)
    called = "complete_function(<a model that writes the lecture's factorial, then main>, tokenizer, 'def factorial(', max_new_tokens=60)"
    got = call("complete_function", stand_in, tokenizer, header, max_new_tokens=60)
    expected = " n):\n    if n == 0:\n        return 1\n    else:\n        return n * factorial(n-1)"
    check_completion(called, got, expected,
                     "the function ends at the first line that starts at column 0 (here 'def main():') after its "
                     "body; drop that line and everything after it, then rstrip()")
    last = first_token_reaching(tokenizer, FACTORIAL, FACTORIAL.index("def main"))
    if stand_in.furthest > last + 1:
        fail(called, f"generation to stop at new token {last}, the one that brings the 'd' of 'def main'",
             f"the right text, but the model was asked for new tokens up to {stand_in.furthest}",
             "after each new token, check whether the function has ended and stop generating at once; "
             "generating max_new_tokens tokens and cutting afterwards wastes time")


def test_complete_function_blank_line_inside_the_body(model, tokenizer):
    """[complete_function] A blank line inside the body does not end the function (the split('\\n\\n') hack would)."""
    header, script = "def total(xs):", "\n    result = 0\n\n    for x in xs:\n        result += x\n\n    return result\n\n\nprint(total([1, 2]))\n"
    stand_in = ScriptedModel(model, tokenizer, header, script)
    got = call("complete_function", stand_in, tokenizer, header, max_new_tokens=60)
    check_completion(f"complete_function(<a model that writes {script!r}>, tokenizer, {header!r}, max_new_tokens=60)",
                     got, "\n    result = 0\n\n    for x in xs:\n        result += x\n\n    return result",
                     "blank lines do not end the function: only a non-blank line at column 0 (after the body) does")


def test_complete_function_ends_at_eos(model, tokenizer):
    """[complete_function] The model emits eos right after the body: stop there, without eos in the text."""
    header, script = "def double(x):", "\n    return 2 * x\n"
    stand_in = ScriptedModel(model, tokenizer, header, script)  # eos once the script is used up
    got = call("complete_function", stand_in, tokenizer, header, max_new_tokens=40)
    check_completion(f"complete_function(<a model that writes {script!r}, then eos>, tokenizer, {header!r}, "
                     f"max_new_tokens=40)", got, "\n    return 2 * x",
                     "stop at tokenizer.eos_token_id, leave it out of the text, and rstrip() the result")
    n_script = len(tokenizer(script, add_special_tokens=False)["input_ids"])
    if stand_in.furthest > n_script + 1:
        fail("complete_function(...) on the same model", f"generation to stop at the eos (new token {n_script})",
             f"the model was asked for new tokens up to {stand_in.furthest}", "end the loop when the new token is eos")


def test_complete_function_stops_after_max_new_tokens(model, tokenizer):
    """[complete_function] max_new_tokens=5: the first 5 new tokens, decoded together and rstrip()ed."""
    header = "def factorial("
    stand_in = ScriptedModel(model, tokenizer, header, FACTORIAL)
    got = call("complete_function", stand_in, tokenizer, header, max_new_tokens=5)
    expected = tokenizer.decode(tokenizer(FACTORIAL, add_special_tokens=False)["input_ids"][:5]).rstrip()
    check_completion("complete_function(<a model that writes the lecture's factorial>, tokenizer, 'def factorial(', "
                     "max_new_tokens=5)", got, expected,
                     "after max_new_tokens new tokens return what was generated (without the header)")


def test_complete_function_characters_split_across_tokens(model, tokenizer):
    """[complete_function] A string with emoji and CJK characters (split over tokens) comes out whole."""
    header, script = "def greet():", '\n    return "こんにちは 🙂 東京"\n\ngreet()\n'
    ids = tokenizer(script, add_special_tokens=False)["input_ids"]
    assert any("\ufffd" in tokenizer.decode([t]) for t in ids), "some character's bytes span two tokens"
    stand_in = ScriptedModel(model, tokenizer, header, script)
    got = call("complete_function", stand_in, tokenizer, header, max_new_tokens=40)
    check_completion(f"complete_function(<a model that writes {script!r}>, tokenizer, {header!r}, max_new_tokens=40)",
                     got, '\n    return "こんにちは 🙂 東京"',
                     "decode all the new ids together, tokenizer.decode(new_ids), not token by token: a character's "
                     "bytes can be split over several tokens")


def test_complete_function_on_the_course_model(model, tokenizer):
    """[complete_function] On the course model itself: greedy tokens, your own loop (no `generate`)."""
    header, n = "def fibonacci(n):", 12
    ids = tokenizer(header, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, do_sample=False, max_new_tokens=n, pad_token_id=tokenizer.eos_token_id)
    greedy = tokenizer.decode([t for t in out[0, ids["input_ids"].shape[1]:].tolist() if t != tokenizer.eos_token_id])
    called = f"complete_function(<the model, without generate>, tokenizer, {header!r}, max_new_tokens={n})"
    try:
        got = call("complete_function", ScriptedModel(model, tokenizer, header, None), tokenizer, header, max_new_tokens=n)
    except AttributeError as error:
        if "generate" not in str(error):
            raise
        fail(called, "the completion, from your own loop over model(input_ids)", f"AttributeError: {error}",
             "write the loop yourself: model.generate is not available in the grader")
    if "\n" not in greedy:  # no second line, so nothing can end the function: all of it
        expected, ok = repr(greedy.rstrip()), got == greedy.rstrip()
    else:  # the model's own text may end the function somewhere: a non-empty start of it
        expected = f"a start of the greedy continuation {greedy!r}, rstrip()ed"
        ok = isinstance(got, str) and got != "" and greedy.startswith(got) and got == got.rstrip()
    if not ok:
        fail(called, expected, show(got), "take the argmax of the logits at the LAST position each step, append it, "
             "and return only the new text (decoded), rstrip()ed")


def test_complete_function_no_new_tokens(model, tokenizer):
    """[complete_function] max_new_tokens=0 gives ''."""
    got = call("complete_function", model, tokenizer, "def f(x):", max_new_tokens=0)
    check_completion("complete_function(model, tokenizer, 'def f(x):', max_new_tokens=0)", got, "",
                     "max_new_tokens=0: generate nothing")


def test_complete_function_rejects_negative_max_new_tokens(model, tokenizer):
    """[complete_function] max_new_tokens < 0: ValueError."""
    expect_value_error("complete_function(model, tokenizer, 'def f(x):', max_new_tokens=-1)", "complete_function",
                       model, tokenizer, "def f(x):", max_new_tokens=-1, hint="raise ValueError if max_new_tokens < 0")
