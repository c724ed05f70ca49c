"""What a TA does around `nbgrader-autograde`, on a quick course (generate_assignment, then
submissions laid out as `nbgrader collect` leaves them; see tests/test_signals.py):

* a score typed in formgrader is an override: kept by a rerun and a regrade, and reported;
* `--student` updates that student's row of grades.csv and keeps the others;
* the comments are Markdown without HTML, and a student's HTML in them stays text in
  nbgrader's feedback;
* a student missing from the roster is added with a warning;
* the course's late-submission plugin sets the penalty that `nbgrader export` subtracts.

The class: ada (the reference, on time), cy (a buggy top_p_filter, 2 hours after the due
date the late tests set), zed (correct but for a truncate_at_stop that returns HTML; not in
the roster).
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import nbgrader_course

from autograder.assignment import load as _load_assignment

BASIC = _load_assignment("basic_prompting")  # the assignment these tests grade
POINTS = BASIC.points


REPO = Path(__file__).resolve().parent.parent
ASSIGNMENT = BASIC.name
REFERENCE = BASIC.reference_path.read_text()
BUGGY = (REPO / "tests" / "submissions" / "top_p_off_by_one" / "decoding.py").read_text()
PAYLOAD = "</code></pre><script>alert(1)</script>\n````\n<img src=x onerror=alert(2)> **bold** [a](javascript:alert(3))"
MARKER = '    """The text before the earliest occurrence of any stop sequence."""\n'
HTML_RETURNING = REFERENCE.replace(MARKER, MARKER + f"    return {PAYLOAD!r}\n")
SUBMISSIONS = {"ada": REFERENCE, "cy": BUGGY, "zed": HTML_RETURNING}
ROSTER = {"ada": ("Ada", "Lovelace"), "cy": ("Cy", "Young")}  # zed is missing
ON_TIME, TWO_HOURS_LATE, DUE = "2026-11-30 09:00:00.000000 UTC", "2026-11-30 12:00:00.000000 UTC", "2026-11-30 10:00:00 UTC"
TIMESTAMPS = {"ada": ON_TIME, "cy": TWO_HOURS_LATE, "zed": ON_TIME}
TOP_P = nbgrader_course.cell_name(BASIC, "top_p_filter")


def nbgrader(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def run(course: Path, **kwargs) -> tuple[dict, str]:
    """`nbgrader-autograde` in this process: (outcomes, what it printed)."""
    from rich.console import Console

    out = io.StringIO()
    kwargs.setdefault("feedback", False)
    outcomes = nbgrader_course.autograde(course, model="tiny-qwen3", console=Console(file=out, width=400), **kwargs)
    return outcomes, out.getvalue()


def gradebook(course: Path):
    from nbgrader.api import Gradebook

    return Gradebook(f"sqlite:///{course / 'gradebook.db'}")


def grade_and_comment(course: Path, cell: str, student: str) -> tuple[float | None, str | None, str | None]:
    with gradebook(course) as gb:
        grade = gb.find_grade(cell, nbgrader_course.points_notebook(BASIC), ASSIGNMENT, student)
        comment = gb.find_comment(cell, nbgrader_course.points_notebook(BASIC), ASSIGNMENT, student)
        return grade.manual_score, comment.auto_comment, comment.manual_comment


def set_by_hand(course: Path, cell: str, student: str, score: float | None, comment: str | None = None) -> None:
    """What formgrader does when a TA types a score (and a comment): its API handlers set
    `manual_score` and `manual_comment` (see nbgrader's formgrader/apihandlers.py)."""
    with gradebook(course) as gb:
        grade = gb.find_grade(cell, nbgrader_course.points_notebook(BASIC), ASSIGNMENT, student)
        grade.manual_score = score
        grade.needs_manual_grade = score is None and grade.auto_score is None
        if comment is not None:
            gb.find_comment(cell, nbgrader_course.points_notebook(BASIC), ASSIGNMENT, student).manual_comment = comment
        gb.db.commit()


def grades_csv(course: Path) -> dict[str, dict]:
    with open(course / "grading-output" / ASSIGNMENT / "grades.csv", newline="") as handle:
        return {row["student"]: row for row in csv.DictReader(handle)}


def export(course: Path, env: dict) -> dict[str, dict]:
    nbgrader("export", cwd=course, env=env)
    with open(course / "grades.csv", newline="") as handle:
        return {row["student_id"]: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """The class graded once (with feedback), as a folder each test copies."""
    root = tmp_path_factory.mktemp("ta-work")
    course = root / "course"
    course.mkdir()
    shutil.copy(REPO / "course" / "nbgrader_config.py", course)
    (root / "autograder").symlink_to(REPO / "autograder", target_is_directory=True)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(root / "jupyter-config"), JUPYTER_DATA_DIR=str(root / "jupyter-data"),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    nbgrader("generate_assignment", ASSIGNMENT, cwd=course, env=env)
    with gradebook(course) as gb:
        for student, (first, last) in ROSTER.items():
            gb.add_student(student, first_name=first, last_name=last)
    for student, source in SUBMISSIONS.items():  # as `nbgrader collect` lays them out
        folder = course / "submitted" / student / ASSIGNMENT
        shutil.copytree(course / "release" / ASSIGNMENT, folder)
        (folder / "decoding.py").write_text(source)
        (folder / "timestamp.txt").write_text(TIMESTAMPS[student] + "\n")
    outcomes, printed = run(course, feedback=True)
    assert all(o["score"] is not None and o["feedback"] for o in outcomes.values()), printed
    assert outcomes["ada"]["score"] == pytest.approx(100)
    assert 0 < outcomes["cy"]["score"] < 100
    return {"root": root, "env": env, "outcomes": outcomes, "printed": printed}


@pytest.fixture
def course(template, tmp_path):
    """A copy of the graded template course; returns its course folder."""
    shutil.copytree(template["root"], tmp_path / "copy", symlinks=True)
    return tmp_path / "copy" / "course"


# -- overrides ---------------------------------------------------------------------------


def test_a_score_set_in_formgrader_is_kept_by_a_rerun_and_a_regrade(template, course):
    autograder_top_p, _, _ = grade_and_comment(course, TOP_P, "cy")
    assert autograder_top_p < POINTS["top_p_filter"]  # the bug costs points: 18 is the TA's, not the autograder's
    set_by_hand(course, TOP_P, "cy", 18.0, "full credit, see my note")

    # a rerun: cy is unchanged, not regraded, and the 18 stays, reported as an override
    outcomes, printed = run(course)
    assert outcomes["cy"]["status"].startswith("unchanged, not regraded")
    assert grade_and_comment(course, TOP_P, "cy")[0] == 18.0
    assert [o.function for o in outcomes["cy"]["overrides"]] == ["top_p_filter"]
    assert "override kept: top_p_filter" in outcomes["cy"]["status"]
    assert "cy: top_p_filter: override kept" in printed
    assert outcomes["cy"]["score"] == pytest.approx(outcomes["cy"]["autograder_score"] - autograder_top_p + 18, abs=1e-6)
    row = grades_csv(course)["cy"]
    assert float(row["top_p_filter"]) == 18 and "override kept: top_p_filter" in row["status"]
    assert float(row["total"]) == pytest.approx(outcomes["cy"]["score"], abs=1e-3)
    assert outcomes["ada"]["overrides"] == [] and grades_csv(course)["ada"]["status"] == "graded"
    # the student's report says which score was set by hand
    points = (course / "autograded" / "cy" / ASSIGNMENT / f"{nbgrader_course.points_notebook(BASIC)}.ipynb").read_text()
    assert "Set by your course staff" in points and "top_p_filter" in points

    # a regrade with the same result: still 18, nothing new to say about the autograder
    outcomes, printed = run(course, students=["cy"], regrade=True)
    assert outcomes["cy"]["status"].startswith("graded, override kept: top_p_filter")
    assert grade_and_comment(course, TOP_P, "cy")[0] == 18.0
    assert "override kept" in printed and "now gives" not in printed

    # cy resubmits a correct file: graded again, the override still stands, and the run says
    # that the autograder now gives another score
    (course / "submitted" / "cy" / ASSIGNMENT / "decoding.py").write_text(REFERENCE)
    outcomes, printed = run(course, students=["cy"])
    manual, auto_comment, manual_comment = grade_and_comment(course, TOP_P, "cy")
    assert manual == 18.0
    assert f"the autograder now gives 20 (was {autograder_top_p:g})" in printed, printed
    assert manual_comment == "full credit, see my note"  # the TA's comment is never written over
    assert auto_comment == "All tests passed."
    assert outcomes["cy"]["autograder_score"] == pytest.approx(100) and outcomes["cy"]["score"] == pytest.approx(98)
    # the other functions follow the autograder as before
    assert grade_and_comment(course, nbgrader_course.cell_name(BASIC, "softmax"), "cy")[0] == POINTS["softmax"]

    # the TA clears the score in formgrader: the autograder's comes back
    set_by_hand(course, TOP_P, "cy", None)
    outcomes, printed = run(course, students=["cy"])
    assert grade_and_comment(course, TOP_P, "cy")[0] == 20 and outcomes["cy"]["overrides"] == []
    assert "override" not in printed and outcomes["cy"]["score"] == pytest.approx(100)


def test_without_overrides_a_regrade_writes_the_autograders_scores(course):
    """The other side of the override: a score the autograder wrote itself is replaced."""
    (course / "submitted" / "cy" / ASSIGNMENT / "decoding.py").write_text(REFERENCE)
    outcomes, printed = run(course, students=["cy"])
    assert grade_and_comment(course, TOP_P, "cy")[0] == POINTS["top_p_filter"]
    assert outcomes["cy"]["overrides"] == [] and "override" not in printed


# -- grades.csv ----------------------------------------------------------------------------


def test_a_partial_run_updates_its_rows_and_keeps_the_others(template, course):
    before = grades_csv(course)
    assert set(before) == set(SUBMISSIONS)
    set_by_hand(course, TOP_P, "cy", 19.5)
    run(course, students=["cy"])
    after = grades_csv(course)
    assert set(after) == set(SUBMISSIONS)
    assert after["ada"] == before["ada"] and after["zed"] == before["zed"]
    assert float(after["cy"]["top_p_filter"]) == 19.5 and "override kept" in after["cy"]["status"]


# -- comments ------------------------------------------------------------------------------


def outside_code(markdown: str) -> str:
    """`markdown` without its fenced code blocks (fences of 3 or more backticks)."""
    kept, fence = [], None
    for line in markdown.splitlines():
        match = re.match(r"(`{3,})\s*$", line)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None and match and len(match.group(1)) >= len(fence):
            fence = None
        elif fence is None:
            kept.append(line)
    assert fence is None, f"an unclosed code block in:\n{markdown}"
    return "\n".join(kept)


def test_comments_are_markdown_text_without_html(template):
    course = template["root"] / "course"
    comments = {(student, function): grade_and_comment(course, nbgrader_course.cell_name(BASIC, function), student)[1]
                for student in SUBMISSIONS for function in POINTS}
    failing = {key: text for key, text in comments.items() if text != "All tests passed."}
    assert set(failing) == {("cy", "top_p_filter"), ("zed", "truncate_at_stop")}, failing
    for key, text in failing.items():
        prose = outside_code(text)
        # no tag, no entity, no unescaped character that starts markup outside the code blocks
        assert not re.search(r"<\s*/?\s*[a-zA-Z]", prose) and not re.search(r"&[#a-zA-Z0-9]+;", prose), (key, text)
        assert not re.search(r"(?<!\\)[<>&\[\]`$]", prose.replace("```", "")), (key, text)
        assert "tests failed." in prose and "points):" in prose
    # the student's returned HTML is in the comment, verbatim, inside a code block only
    zed = failing[("zed", "truncate_at_stop")]
    assert "<script>alert(1)</script>" in zed and "<script>" not in outside_code(zed)


def test_feedback_shows_comments_as_text_and_student_html_escaped(template):
    """nbgrader's generate_feedback (run by the template's autograde) renders the comments."""
    feedback = template["root"] / "course" / "feedback"
    zed = (feedback / "zed" / ASSIGNMENT / f"{nbgrader_course.points_notebook(BASIC)}.html").read_text()
    assert "<script>alert(1)" not in zed and "<img src=x" not in zed and 'href="javascript:' not in zed
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in zed
    comments = re.findall(r"<b>Comments:</b>(.*?)</div>", zed, re.S)
    assert comments, "no comment in zed's feedback"
    shown = " ".join(comments)
    assert "<pre><code>" in shown and "&lt;img src=x onerror=alert(2)&gt;" in shown
    assert "&lt;p&gt;" not in shown and "&lt;b&gt;" not in shown and "&lt;pre&gt;" not in shown  # our own markup, shown as text
    cy = (feedback / "cy" / ASSIGNMENT / f"{nbgrader_course.points_notebook(BASIC)}.html").read_text()
    assert "<strong>" in " ".join(re.findall(r"<b>Comments:</b>(.*?)</div>", cy, re.S))


# -- the roster ----------------------------------------------------------------------------


def test_a_student_missing_from_the_roster_is_added_with_a_warning(template, course):
    printed, outcomes = template["printed"], template["outcomes"]
    assert re.search(r"warning: zed is not in the course's roster", printed), printed
    assert "nbgrader db student add zed --first-name" in printed
    assert any("zed" in w and "roster" in w for w in outcomes["zed"]["warnings"])
    assert outcomes["ada"]["warnings"] == [] and outcomes["cy"]["warnings"] == []
    assert "not in the roster" in grades_csv(template["root"] / "course")["zed"]["status"]
    # zed is in the gradebook now (without a name), so a rerun says nothing more
    with gradebook(course) as gb:
        assert gb.find_student("zed").last_name is None
    outcomes, printed = run(course)
    assert "roster" not in printed and outcomes["zed"]["warnings"] == []


# -- late penalties ------------------------------------------------------------------------


SUBTRACT_PLUGIN = '''
from traitlets import Float
from nbgrader.plugins import BasePlugin


class SubtractPlugin(BasePlugin):
    """A penalty per hour late (nbgrader's documentation has one like it)."""
    penalty_per_hour = Float(1.0, help="points per hour late").tag(config=True)

    def late_submission_penalty(self, student_id, score, total_seconds_late):
        return self.penalty_per_hour * total_seconds_late / 3600
'''


def test_the_courses_late_plugin_sets_the_exported_penalty(template, course):
    env = template["env"]
    (course / "late.py").write_text(SUBTRACT_PLUGIN)
    with open(course / "nbgrader_config.py", "a") as config:
        config.write('\nc.AssignLatePenalties.plugin_class = "late.SubtractPlugin"\nc.SubtractPlugin.penalty_per_hour = 1.5\n')
    nbgrader("db", "assignment", "add", ASSIGNMENT, f"--duedate={DUE}", cwd=course, env=env)
    outcomes, printed = run(course)  # nobody changed: the penalty comes without a regrade
    exported = export(course, env)
    raw = float(exported["cy"]["raw_score"])
    assert raw == pytest.approx(template["outcomes"]["cy"]["score"], abs=1e-3)
    assert float(exported["cy"]["late_submission_penalty"]) == pytest.approx(3.0)  # 2 h at 1.5 points an hour
    assert float(exported["cy"]["score"]) == pytest.approx(raw - 3.0)
    assert float(exported["ada"]["late_submission_penalty"]) == 0 and float(exported["ada"]["score"]) == pytest.approx(100)
    assert outcomes["cy"]["seconds_late"] == pytest.approx(7200) and outcomes["cy"]["late_penalty"] == pytest.approx(3.0)
    assert outcomes["ada"]["late_penalty"] is None and outcomes["ada"]["seconds_late"] == 0
    assert "cy: submitted 2.00 h after the due date: late penalty 3 (late.SubtractPlugin)" in printed, printed
    assert "late 2.00 h, penalty 3" in grades_csv(course)["cy"]["status"]

    # a regrade: the recorded submission time again, so the same penalty
    outcomes, _ = run(course, students=["cy"], regrade=True)
    assert outcomes["cy"]["status"].startswith("graded") and outcomes["cy"]["late_penalty"] == pytest.approx(3.0)
    again = export(course, env)
    assert float(again["cy"]["late_submission_penalty"]) == pytest.approx(3.0)
    assert float(again["cy"]["score"]) == pytest.approx(float(exported["cy"]["score"]), abs=1e-3)


def test_nbgraders_own_zero_penalty_and_a_broken_plugin(template, course):
    env = template["env"]
    config = (course / "nbgrader_config.py").read_text()
    (course / "nbgrader_config.py").write_text(config + '\nc.LateSubmissionPlugin.penalty_method = "zero"\n')
    nbgrader("db", "assignment", "add", ASSIGNMENT, f"--duedate={DUE}", cwd=course, env=env)
    outcomes, _ = run(course)
    exported = export(course, env)
    assert float(exported["cy"]["late_submission_penalty"]) == pytest.approx(template["outcomes"]["cy"]["score"], abs=1e-3)
    assert float(exported["cy"]["score"]) == 0 and float(exported["ada"]["score"]) == pytest.approx(100)
    assert outcomes["cy"]["late_penalty"] == pytest.approx(outcomes["cy"]["score"])
    # a plugin that cannot be loaded stops the command before anything is written
    (course / "nbgrader_config.py").write_text(config + '\nc.AssignLatePenalties.plugin_class = "no_such_module.Plugin"\n')
    before = (course / "gradebook.db").read_bytes()
    with pytest.raises(RuntimeError, match="late-submission plugin"):
        run(course)
    assert (course / "gradebook.db").read_bytes() == before
