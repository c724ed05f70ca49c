"""truncate_at_stop(text, stops): the text before the earliest stop sequence."""

from __future__ import annotations

import pytest

from autograder.suites.basic_prompting.common import abbreviate, call_text, mismatch, type_problem

CASES = {
    "later-listed stop occurs first": ("x = 1\n\ndef g():\n    pass", ["\ndef", "\n\n"]),
    "overlapping stops": ("abcabcd", ["cd", "bca"]),
    "stop at position 0": ("\n\nsecond paragraph", ["\n\n"]),
    "no stop occurs": ("nothing to cut here", ["\n\n", "###"]),
    "no stop sequences": ("keep all of this", []),
    "several occurrences": ("a;b;c", [";"]),
    "whole text is a stop": ("END", ["END"]),
    "unicode text": ("Décision : bon 👍 Review: mauvais", ["Review:", "👍"]),
    "stop longer than text": ("ab", ["abc"]),
}


@pytest.mark.grades("truncate_at_stop", weight=1)
@pytest.mark.parametrize("case", list(CASES))
def test_truncates_at_earliest_stop(grading, case):
    """Cuts before the earliest stop sequence"""
    text, stops = CASES[case]
    got = grading.student("truncate_at_stop", text, stops)
    expected = grading.reference.truncate_at_stop(text, stops)
    problem = type_problem(got, "str")
    if problem or got != expected:
        raise mismatch(call_text("truncate_at_stop", (text, stops), {}), repr(expected), abbreviate(got),
                       problem or "cut at the smallest position where any stop sequence occurs, whatever the list's order")


@pytest.mark.grades("truncate_at_stop", weight=1.5)
def test_rejects_empty_stop_sequence(grading):
    """ValueError for an empty stop sequence"""
    grading.expect_value_error("truncate_at_stop", "some text", ["\n", ""])
