"""Hidden inputs drawn per submission (`autograder.hidden_inputs`): two submissions get
different inputs, a regrade gets the same ones, every variant is graded against the live
reference (which earns full marks on each), and answers memorised from one report do not
fit another submission."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autograder.grading import Grader
from autograder.hidden_inputs import HiddenInputs, derive_seed
from autograder.sandbox.wire import MODEL, TOKENIZER
from autograder.suites.basic_prompting import common

from autograder.assignment import load as _load_assignment

BASIC = _load_assignment("basic_prompting")  # the assignment these tests grade
POINTS = BASIC.points

GREEDY_KINDS = ("lecture", "code", "question", "few-shot")


# -- the draws themselves (no model) ---------------------------------------------------------


def test_the_seed_depends_on_student_file_and_assignment():
    seed = derive_seed("basic_prompting", "ada", b"def f(): pass\n")
    assert seed == derive_seed("basic_prompting", "ada", b"def f(): pass\n")
    assert len({seed, derive_seed("basic_prompting", "bob", b"def f(): pass\n"),
                derive_seed("basic_prompting", "ada", b"def f():  pass\n"),
                derive_seed("few_shot_prompting", "ada", b"def f(): pass\n")}) == 4
    assert 0 <= seed < 2**48


def test_a_draw_does_not_depend_on_the_order_of_the_tests():
    first, second = HiddenInputs(12345), HiddenInputs(12345)
    keys = [f"test.{i}" for i in range(20)]
    forward = [first.variant(key, 6) for key in keys]
    backward = [second.variant(key, 6) for key in reversed(keys)][::-1]
    assert forward == backward
    assert len(set(forward)) > 1  # the keys draw independently
    assert first.record()["draws"] == dict(zip(keys, forward)) and first.record()["variants"] == 6


def test_every_variant_replaces_the_draw():
    inputs = HiddenInputs(7, every_variant=4)
    assert inputs.variant("a", 6) == 4 and inputs.variant("b", 3) == 1
    assert inputs.record()["every_variant"] == 4


def test_students_draw_across_all_variants():
    """Over a class, every variant of a test is drawn, about equally often."""
    counts = [0] * common.VARIANTS
    for student in range(600):
        inputs = HiddenInputs.for_submission("basic_prompting", f"student{student}", b"same file")
        counts[inputs.variant("greedy.matches.lecture", common.VARIANTS)] += 1
    assert min(counts) > 600 / common.VARIANTS / 2, counts


# -- grading with the drawn inputs (tiny-qwen3) ------------------------------------------------


@pytest.fixture(scope="module")
def grader():
    with Grader("tiny-qwen3") as grader:
        yield grader


def _folder(tmp_path: Path, name: str, source: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / BASIC.submission_file).write_text(source, encoding="utf-8")
    return folder


def _greedy_calls(result) -> dict[str, int]:
    return {key: value for key, value in result.metadata["hidden_inputs"]["draws"].items() if key.startswith("greedy.matches")}


def test_two_students_draw_different_inputs_and_a_regrade_draws_the_same(grader, tmp_path):
    source = BASIC.reference_path.read_text(encoding="utf-8")
    ada = grader.grade(_folder(tmp_path, "ada", source))
    bob = grader.grade(_folder(tmp_path, "bob", source))
    again = grader.grade(tmp_path / "ada")
    for result in (ada, bob, again):
        assert result.score == pytest.approx(100), [t.output for t in result.tests if t.status != "passed"]
    records = [r.metadata["hidden_inputs"] for r in (ada, bob, again)]
    assert records[0]["seed"] != records[1]["seed"] and records[0]["draws"] != records[1]["draws"]
    assert records[0] == records[2]
    assert records[0]["derived_from"]["student"] == "ada"
    # a given seed reproduces the report of another student exactly
    with Grader("tiny-qwen3", inputs_seed=records[1]["seed"]) as pinned:
        replay = pinned.grade(tmp_path / "ada")
    assert replay.metadata["hidden_inputs"]["draws"] == records[1]["draws"]


def _memorising_source(grader) -> str:
    """The reference, except that greedy_decode returns answers read off variant 0 of
    every greedy test (what a student could copy from one report) and nothing else."""
    answers = {}
    for kind in GREEDY_KINDS:
        prompt = common.PROMPT_POOLS[kind][0]
        n = __import__("autograder.suites.basic_prompting.test_greedy", fromlist=["LENGTHS"]).LENGTHS[kind][0]
        answers[(prompt, n)] = grader.reference_call("greedy_decode", MODEL, TOKENIZER, prompt, n)
    source = BASIC.reference_path.read_text(encoding="utf-8")
    return source + (
        "\n\n_SEEN = " + repr({f"{p}\0{n}": ids for (p, n), ids in answers.items()}) + "\n\n"
        "def greedy_decode(model, tokenizer, prompt, max_new_tokens):\n"
        "    return list(_SEEN.get(f'{prompt}\\0{max_new_tokens}', []))\n")


def test_answers_memorised_from_one_variant_earn_only_that_variant(grader, tmp_path):
    folder = _folder(tmp_path, "memoriser", _memorising_source(grader))
    shown = grader.grade(folder, every_variant=0)  # the variant the answers were read from
    tests = [t for t in shown.tests if t.name.startswith("Same tokens as greedy decoding")]
    assert len(tests) == len(GREEDY_KINDS) and all(t.status == "passed" for t in tests)
    other = grader.grade(folder, every_variant=1)
    tests = [t for t in other.tests if t.name.startswith("Same tokens as greedy decoding")]
    assert tests and all(t.status == "failed" for t in tests), [t.output for t in tests]
    # and in its own draw, the memoriser loses greedy points unless every greedy test drew variant 0
    drawn = grader.grade(folder)
    if any(index != 0 for index in _greedy_calls(drawn).values()):
        assert drawn.by_function()["greedy_decode"][0] < POINTS["greedy_decode"]


def test_prepare_gives_the_reference_full_marks_on_every_variant(tmp_path, monkeypatch):
    """Each variant is graded against the live reference, which earns 100 on all of them,
    and afterwards a batch asks the reference for nothing new."""
    monkeypatch.setenv("AUTOGRADER_REFERENCE_STORE", str(tmp_path / "store"))
    seen = []
    with Grader("tiny-qwen3") as grader:
        results = grader.prepare(lambda index, count, result: seen.append((index, count)))
        assert len(results) == common.VARIANTS and seen[-1] == (common.VARIANTS - 1, common.VARIANTS)
        for index, result in enumerate(results):
            assert result.metadata["hidden_inputs"]["every_variant"] == index
            assert result.score == pytest.approx(100), (index, [(t.name, t.output) for t in result.tests if t.status != "passed"])
        known = len(grader.store.answers)
        student = grader.grade(_folder(tmp_path, "carol", BASIC.reference_path.read_text(encoding="utf-8")))
        assert student.score == pytest.approx(100)
        assert len(grader.store.answers) == known  # every answer the draw needed was prepared


def test_the_report_records_the_draws(grader, tmp_path):
    from autograder import report

    result = grader.grade(_folder(tmp_path, "dana", BASIC.skeleton_path.read_text(encoding="utf-8")))
    data = report.gradescope_results(result)
    record = data["extra_data"]["metadata"]["hidden_inputs"]
    assert record["seed"] == result.metadata["hidden_inputs"]["seed"] and record["draws"]
    assert f"hidden inputs seed {record['seed']}" in data["output"]
    json.dumps(data)  # plain data


def test_visibility_levels_follow_the_groups(grader, tmp_path):
    from autograder import report

    result = grader.grade(_folder(tmp_path, "erin", BASIC.skeleton_path.read_text(encoding="utf-8")))
    default = report.gradescope_results(result)
    levels = {tuple(t["tags"]): t["visibility"] for t in default["tests"]}
    assert {tags[1] for tags in levels} == {"public", "hidden"}
    assert all(level == report.DEFAULT_VISIBILITY[tags[1]] for tags, level in levels.items())
    chosen = report.gradescope_results(result, {"public": "after_published", "hidden": "hidden"})
    assert {(t["tags"][1], t["visibility"]) for t in chosen["tests"]} == {("public", "after_published"), ("hidden", "hidden")}
    # every function has tests in the group students see at once
    assert {t["tags"][0] for t in default["tests"] if t["tags"][1] == "public"} == set(POINTS)
