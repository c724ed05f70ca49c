"""truncate_at_stop(text, stops): the text before the earliest stop sequence."""

from __future__ import annotations

import pytest

from autograder.suites.basic_prompting.common import abbreviate, call_text, mismatch, type_problem

CASES = {
    "later-listed stop occurs first": ("x = 1\n\ndef g():\n    pass", ["\ndef", "\n\n"]),
    "overlapping stops": ("abcabcd", ["cd", "bca"]),
    "several occurrences": ("a;b;c", [";"]),
    "unicode text": ("Décision : bon 👍 Review: mauvais", ["Review:", "👍"]),
}
# Edge cases whose answer is the whole text or '': returning `text` (or '') unchanged
# passes them, so they pay only together with the cases above (kind="check").
EDGE_CASES = {
    "stop at position 0": ("\n\nsecond paragraph", ["\n\n"]),
    "no stop occurs": ("nothing to cut here", ["\n\n", "###"]),
    "no stop sequences": ("keep all of this", []),
    "whole text is a stop": ("END", ["END"]),
    "stop longer than text": ("ab", ["abc"]),
}


def check_truncation(grading, text: str, stops: list[str]) -> None:
    got = grading.student("truncate_at_stop", text, stops)
    expected = grading.reference.truncate_at_stop(text, stops)
    problem = type_problem(got, "str")
    if problem or got != expected:
        raise mismatch(call_text("truncate_at_stop", (text, stops), {}), repr(expected), abbreviate(got),
                       problem or "cut at the smallest position where any stop sequence occurs, whatever the list's order")


@pytest.mark.grades("truncate_at_stop", weight=1, group="public")
@pytest.mark.parametrize("case", list(CASES))
def test_truncates_at_earliest_stop(grading, case):
    """Cuts before the earliest stop sequence"""
    check_truncation(grading, *CASES[case])


@pytest.mark.grades("truncate_at_stop", weight=1, kind="check", group="public")
@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_truncates_at_earliest_stop_edge_cases(grading, case):
    """Cuts before the earliest stop sequence"""
    check_truncation(grading, *EDGE_CASES[case])


@pytest.mark.grades("truncate_at_stop", weight=1.5, kind="check", group="public")
def test_rejects_empty_stop_sequence(grading):
    """ValueError for an empty stop sequence"""
    grading.expect_value_error("truncate_at_stop", "some text", ["\n", ""])
