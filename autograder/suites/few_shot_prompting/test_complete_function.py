"""complete_function(model, tokenizer, header, *, max_new_tokens): greedy code, stopped where the function ends."""

from __future__ import annotations

import pytest

from autograder.sandbox.scripted import SCRIPTED_MODEL
from autograder.sandbox.wire import MODEL, TOKENIZER, EosAfter

from autograder.suites.few_shot_prompting.common import abbreviate, call_text, mismatch, type_problem

HINT_RULE = ("the function ends at the first line of the completion that is non-blank and starts at column 0, after at "
             "least one indented body line; drop that line and everything after it, then rstrip()")
HINT_EARLY = ("after each new token, decode the new ids and check whether the function has ended; stop generating at "
              "once: generating max_new_tokens tokens and cutting afterwards wastes time")

# Scripted continuations: (header, what the model writes after it, the line that ends the
# function or None). The model writes the text, then eos. The expected completion is the
# text before the ending line (all of it when None), rstrip()ed.
FACTORIAL = ("def factorial(",
             " n):\n    if n == 0:\n        return 1\n    else:\n        return n * factorial(n-1)\n\n"
             "def main():\n    n = int(input(\"Enter a number: \"))\n    print(\"Factorial of\", n, \"is\", factorial(n))\n\n"
             "if __name__ == \"__main__\":\n    main()\n",
             "def main():")
CASES = {
    "if __name__ right after the body": (
        "def is_prime(n):",
        "\n    if n < 2:\n        return False\n    for d in range(2, int(n ** 0.5) + 1):\n        if n % d == 0:\n"
        "            return False\n    return True\nif __name__ == \"__main__\":\n    print(is_prime(7))\n",
        "if __name__"),
    "blank lines inside the body": (
        "def total(xs):",
        "\n    result = 0\n\n    for x in xs:\n        result += x\n\n\n    return result\n\n\nprint(total([1, 2, 3]))\n",
        "print(total"),
    "class after two blank lines": (
        "def area(r):",
        "\n    return 3.14159 * r * r\n\n\nclass Circle:\n    def __init__(self, r):\n        self.r = r\n",
        "class Circle"),
    "tab-indented body": (
        "def add(a, b):",
        "\n\ts = a + b\n\treturn s\n\nprint(add(1, 2))\n",
        "print(add"),
    "comment at column 0": (
        "def square(x):",
        "\n    return x * x\n# A quick check:\nassert square(3) == 9\n",
        "# A quick"),
    "decorator after": (
        "def fib(n):",
        "\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\n\n@functools.cache\ndef fast_fib(n):\n"
        "    return fib(n)\n",
        "@functools"),
    "nested function": (
        "def outer():",
        "\n    def inner():\n        return 1\n\n    return inner() + 1\n\nouter()\n",
        "outer()"),
    "trailing whitespace": (
        "def one():",
        "\n    return 1   \n    \n\nx = one()\n",
        "x = one()"),
    "eos right after the body": (
        "def double(x):",
        "\n    return 2 * x\n",
        None),
}
EDGE_CASES = {
    "header with a docstring, ending in a newline": (
        'def double(x):\n    """Twice x."""\n',
        "    return 2 * x\nprint(double(2))\n",
        "print(double"),
    "column-0 line before any body line": (
        "def f(x):",
        "\nx = x + 1\n    return x\ny = f(1)\n",
        "y = f(1)"),
}
EARLY_STOPS = ("lecture factorial", "if __name__ right after the body", "class after two blank lines")


def _case(name: str) -> tuple[str, str, str | None]:
    return FACTORIAL if name == "lecture factorial" else {**CASES, **EDGE_CASES}[name]


def _cut(script: str, ending: str | None) -> int:
    """Where in `script` the function ends: the start of the ending line (or its length)."""
    if ending is None:
        return len(script)
    cut = script.index("\n" + ending) + 1
    return cut


def _scripted(grading, name: str, *, max_new_tokens: int | None = None):
    """(called, the student's result, the expected text, the Script, the new token at which the end is known)."""
    header, script, ending = _case(name)
    tok = grading.tokenizer
    continuation = tok(script, add_special_tokens=False)["input_ids"]
    if tok.decode(continuation) != script:
        pytest.fail(f"the scripted text of {name!r} does not survive tokenization; the TA should check the test")
    cut = _cut(script, ending)
    # the new token that brings the ending line's first character (the eos when there is none)
    known = next((k for k in range(len(continuation)) if len(tok.decode(continuation[: k + 1])) > cut), len(continuation))
    budget = max_new_tokens if max_new_tokens is not None else len(continuation) + 8
    expected = script[:cut].rstrip() if max_new_tokens is None else tok.decode(continuation[:budget]).rstrip()
    called = (call_text("complete_function", (MODEL, TOKENIZER, header), {"max_new_tokens": budget})
              + f" on a model that writes {abbreviate(script, 100)}" + (", then eos" if ending is None else ""))
    with grading.scripted(header, continuation) as recorded:
        got = grading.student("complete_function", SCRIPTED_MODEL, TOKENIZER, header, max_new_tokens=budget)
    return called, got, expected, recorded, known


def check_text(called: str, got, expected: str, hint: str = HINT_RULE) -> None:
    problem = type_problem(got, "str")
    if problem:
        raise mismatch(called, repr(expected), abbreviate(got, 200), problem)
    if got == expected:
        return
    if got.rstrip() == expected:
        hint = "remove the trailing whitespace at the end (str.rstrip())"
    elif "<|endoftext|>" in got:
        hint = "eos ends the completion and is not part of it: leave it out of the text"
    elif expected.startswith(got):
        hint = f"your completion stops too early; {hint}"
    elif got.startswith(expected):
        hint = f"your completion goes on past the end of the function ({got[len(expected):][:30]!r}); {hint}"
    where = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
    detail = (f"\n          the texts part at character {where}: expected {expected[where:where + 30]!r}, "
              f"got {got[where:where + 30]!r}")
    raise mismatch(called, repr(expected), abbreviate(got, 300) + detail, hint)


@pytest.mark.grades("complete_function", weight=2, group="public")
def test_lecture_factorial(grading):
    """The lecture's factorial: cut before `def main`"""
    called, got, expected, _, _ = _scripted(grading, "lecture factorial")
    check_text(called, got, expected)


@pytest.mark.grades("complete_function", weight=1.5)
@pytest.mark.parametrize("case", list(CASES))
def test_where_the_function_ends(grading, case):
    """Cut where the function ends"""
    called, got, expected, _, _ = _scripted(grading, case)
    check_text(called, got, expected)


@pytest.mark.grades("complete_function", weight=0.75)
@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_where_the_function_ends_edge_cases(grading, case):
    """Cut where the function ends (lines of the header count as lines, but never end it)"""
    called, got, expected, _, _ = _scripted(grading, case)
    check_text(called, got, expected)


@pytest.mark.grades("complete_function", weight=1.5)
@pytest.mark.parametrize("case", EARLY_STOPS)
def test_stops_generating_where_the_function_ends(grading, case):
    """Stops generating as soon as the function has ended"""
    # The model follows a script that only the grader knows, and the grader sees which of
    # its tokens were asked for: generating past the end shows, whatever the submission's
    # process reports.
    called, got, expected, recorded, known = _scripted(grading, case)
    check_text(called, got, expected)
    if recorded.furthest > known + 1:
        raise mismatch(called, f"generation to stop at new token {known}, the one that brings the first character of "
                               f"the line after the function",
                       f"the right text, but the model was asked for new tokens up to {recorded.furthest}", HINT_EARLY)
    if recorded.furthest < known:
        raise mismatch(called, f"the model to be asked for each new token up to {known}",
                       f"the text came back after asking only up to new token {recorded.furthest}",
                       "every new token comes from a call of the model")


@pytest.mark.grades("complete_function", weight=1.5)
def test_stops_after_max_new_tokens(grading):
    """max_new_tokens runs out before the function ends"""
    called, got, expected, recorded, _ = _scripted(grading, "blank lines inside the body", max_new_tokens=7)
    check_text(called, got, expected, "after max_new_tokens new tokens, return what was generated, rstrip()ed")
    if recorded.furthest > 7:
        raise mismatch(called, "at most 7 new tokens", f"the model was asked for new tokens up to {recorded.furthest}",
                       "generate at most max_new_tokens tokens")


MULTIBYTE = ("def greet():", '\n    return "こんにちは 🙂 東京 ✨"\n\ngreet()\n', "greet()")


@pytest.mark.grades("complete_function", weight=2)
def test_characters_split_across_tokens(grading):
    """Characters split across tokens (emoji, CJK) come out whole"""
    header, script, ending = MULTIBYTE
    tok = grading.tokenizer
    continuation = tok(script, add_special_tokens=False)["input_ids"]
    if not any("\ufffd" in tok.decode([t]) for t in continuation) or tok.decode(continuation) != script:
        pytest.fail("the multi-byte text does not split a character over tokens on this tokenizer; the TA should check the test")
    expected = script[: _cut(script, ending)].rstrip()
    called = (call_text("complete_function", (MODEL, TOKENIZER, header), {"max_new_tokens": 40})
              + f" on a model that writes {script!r}")
    with grading.scripted(header, continuation):
        got = grading.student("complete_function", SCRIPTED_MODEL, TOKENIZER, header, max_new_tokens=40)
    check_text(called, got, expected, "decode all the new ids together, tokenizer.decode(new_ids), not token by token: "
                                      "a character's bytes can be split over several tokens")


HEADERS = ("def fibonacci(n):", "def is_prime(n):", "def factorial(", "\ndef factorial(")


@pytest.mark.grades("complete_function", weight=1.5)
@pytest.mark.parametrize("header", HEADERS)
def test_matches_reference(grading, header):
    """Greedy completion on the course model"""
    kwargs = {"max_new_tokens": 40}
    expected = grading.ref("complete_function", MODEL, TOKENIZER, header, **kwargs)
    got = grading.student("complete_function", MODEL, TOKENIZER, header, **kwargs)
    check_text(call_text("complete_function", (MODEL, TOKENIZER, header), kwargs), got, expected,
               "take the argmax at the last position each step; " + HINT_RULE)


@pytest.mark.grades("complete_function", weight=1.5)
def test_ends_at_eos(grading):
    """eos ends the completion and is left out of it"""
    header = HEADERS[0]
    model = EosAfter(len(grading.prompt_ids(header)), 5)  # the model, but eos is the argmax at new token 5
    expected = grading.ref("complete_function", model, TOKENIZER, header, max_new_tokens=20)
    got = grading.student("complete_function", model, TOKENIZER, header, max_new_tokens=20)
    check_text(f"complete_function(model, tokenizer, {header!r}, max_new_tokens=20) on a model that predicts eos at new "
               f"token 5", got, expected, "stop at tokenizer.eos_token_id and leave it out of the text; rstrip() the result")


@pytest.mark.grades("complete_function", weight=0.5, kind="check", group="public")
def test_no_new_tokens(grading):
    """max_new_tokens=0 gives ''"""
    got = grading.student("complete_function", MODEL, TOKENIZER, "def f(x):", max_new_tokens=0)
    if got != "":
        raise mismatch(call_text("complete_function", (MODEL, TOKENIZER, "def f(x):"), {"max_new_tokens": 0}), "''",
                       abbreviate(got))


BAD_ARGUMENTS = {"max_new_tokens < 0": ("def f(x):", -1), "empty header": ("", 5)}


@pytest.mark.grades("complete_function", weight=0.25, kind="check", group="public")
@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_rejects_bad_arguments(grading, case):
    """ValueError for max_new_tokens < 0 or an empty header"""
    header, budget = BAD_ARGUMENTS[case]
    grading.expect_value_error("complete_function", MODEL, TOKENIZER, header, max_new_tokens=budget)
