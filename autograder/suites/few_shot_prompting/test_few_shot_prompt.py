"""few_shot_prompt(examples, query, *, input_label, output_label): the lecture's prompt format."""

from __future__ import annotations

import pytest

from autograder.suites.few_shot_prompting.common import (
    LECTURE_EXAMPLES,
    OTHER_REVIEWS,
    REVIEWS,
    XY,
    abbreviate,
    call_text,
    lecture_examples,
    mismatch,
    type_problem,
)

HINT = ('each example is "{input_label}: {text}\\n{output_label}: {answer}", the blocks are joined with "\\n\\n", and '
        'the prompt ends with "{input_label}: {query}\\n{output_label}:"')


def check_prompt(grading, examples, query: str, hint: str = HINT, **labels) -> None:
    expected = grading.reference.few_shot_prompt(examples, query, **labels)
    got = grading.student("few_shot_prompt", examples, query, **labels)
    called = call_text("few_shot_prompt", (examples, query), labels)
    problem = type_problem(got, "str")
    if problem:
        raise mismatch(called, abbreviate(expected, 200), abbreviate(got, 200), problem)
    if got == expected:
        return
    if got == expected + " ":
        hint = "no space after the final colon: the space belongs to the answer's token (' good'), for the model to write"
    elif got.strip() == expected.strip():
        hint = "nothing before the first block and nothing after the final colon: no extra newline or space"
    where = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
    detail = (f"\n          the texts part at character {where}: expected {expected[where:where + 30]!r}, "
              f"got {got[where:where + 30]!r}")
    raise mismatch(called, abbreviate(expected, 200), abbreviate(got, 200) + detail, hint)


@pytest.mark.grades("few_shot_prompt", weight=2, group="public")
def test_lecture_examples(grading):
    """The lecture's four examples and one of its reviews"""
    check_prompt(grading, lecture_examples(), REVIEWS[-1])


@pytest.mark.grades("few_shot_prompt", weight=1.5)
@pytest.mark.parametrize("query", [REVIEWS[0], OTHER_REVIEWS[2]], ids=["lecture review", "other review"])
def test_lecture_examples_other_queries(grading, query):
    """The lecture's examples with other queries"""
    check_prompt(grading, lecture_examples(), query)


@pytest.mark.grades("few_shot_prompt", weight=1.5)
def test_x_y_answers(grading):
    """The lecture's X/Y answers"""
    check_prompt(grading, lecture_examples(XY), REVIEWS[3])


@pytest.mark.grades("few_shot_prompt", weight=1, group="public")
def test_zero_shot(grading):
    """No examples: the query block alone"""
    check_prompt(grading, [], OTHER_REVIEWS[0], "with no examples the prompt is just the query block, no blank line before it")


@pytest.mark.grades("few_shot_prompt", weight=1.5)
def test_one_example(grading):
    """A single example"""
    check_prompt(grading, [LECTURE_EXAMPLES[2]], OTHER_REVIEWS[1])


@pytest.mark.grades("few_shot_prompt", weight=2)
def test_other_line_names(grading):
    """Other line names (input_label, output_label)"""
    examples = [("What is the capital of France?", "Paris"), ("Who wrote Hamlet?", "William Shakespeare")]
    check_prompt(grading, examples, "What is 6 times 7?",
                 "use input_label and output_label as the names of the two lines",
                 input_label="Question", output_label="Answer")


@pytest.mark.grades("few_shot_prompt", weight=1.5)
def test_line_names_with_spaces(grading):
    """Line names with spaces in them"""
    examples = [("A masterpiece.", "positive"), ("Two hours I will never get back.", "negative")]
    check_prompt(grading, examples, "Fine, I suppose.", input_label="Movie review", output_label="Sentiment")


@pytest.mark.grades("few_shot_prompt", weight=2)
def test_texts_used_exactly_as_given(grading):
    """Texts are used exactly as given: spaces, quotes, non-ASCII"""
    examples = (("  leading and trailing spaces  ", " spaced"), ('She said "meh" – ¿qué? 🙂', "bad"))
    check_prompt(grading, examples, " query with a space ", "use every text exactly as given: no strip(), nothing added")


@pytest.mark.grades("few_shot_prompt", weight=1)
def test_examples_as_a_tuple_of_lists(grading):
    """Examples given as a tuple of [text, answer] lists"""
    examples = tuple([text, answer] for text, answer in LECTURE_EXAMPLES[:2])
    check_prompt(grading, examples, REVIEWS[1], "examples can be any sequence of pairs: unpack each as (text, answer)")


BAD_LABELS = {
    "empty input label": {"input_label": ""},
    "empty output label": {"output_label": ""},
    "input label ending in ':'": {"input_label": "Review:"},
    "output label ending in ':'": {"output_label": "Decision:"},
    "newline in input label": {"input_label": "Re\nview"},
    "newline in output label": {"output_label": "Decision\n"},
}


@pytest.mark.grades("few_shot_prompt", weight=0.5, kind="check", group="public")
@pytest.mark.parametrize("case", list(BAD_LABELS))
def test_rejects_bad_labels(grading, case):
    """ValueError for a line name that is empty, ends with ':' or contains a newline"""
    grading.expect_value_error("few_shot_prompt", [("Great.", "good")], "Meh.", **BAD_LABELS[case])
