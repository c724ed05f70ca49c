"""The Canvas export: grade-all output and an nbgrader gradebook to a Canvas gradebook-import
CSV (header, Points Possible row, a row per mapped student), plus unmatched.csv.

grade-all output is made with `report.write_grades_csv` (what grade-all itself calls); the
gradebook with nbgrader's own API in a temporary sqlite file. No model is loaded.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import warnings
from pathlib import Path

import pytest

from autograder import canvas

from autograder.report import write_grades_csv

from autograder.assignment import load as _load_assignment

BASIC = _load_assignment("basic_prompting")  # the assignment these tests grade
POINTS = BASIC.points

BOM = b"\xef\xbb\xbf"
MAPPING_HEADER = "student,Student,ID,SIS User ID,SIS Login ID,Section"


def grades_row(student: str, total: float, status: str = "graded", **functions) -> dict:
    row = {"student": student, "total": total, **{f: p for f, p in POINTS.items()}, "status": status,
           "model": "tiny-qwen3", "model_revision": "abc", "torch": "2.13.0", "transformers": "4.57", "graded_at": "2025-01-01"}
    return row | functions


@pytest.fixture
def grade_all_out(tmp_path) -> Path:
    """A grade-all output folder: three graded students (one not in the mapping) and a grader error."""
    out = tmp_path / "grading-output"
    write_grades_csv(out / "grades.csv", [
        grades_row("alice", 84.5, softmax=0, top_p_filter=19.5),
        grades_row("bob", 0.0, status="grader error: RuntimeError: the model process died"),
        grades_row("carol", 100.0),
        grades_row("zed", 87.375),
    ], POINTS)
    return out


def write_mapping(path: Path, lines: list[str], header: str = MAPPING_HEADER, bom: bool = False) -> Path:
    text = "\r\n".join([header, *lines]) + "\r\n"
    path.write_bytes((BOM if bom else b"") + text.encode("utf-8"))
    return path


@pytest.fixture
def mapping(tmp_path) -> Path:
    return write_mapping(tmp_path / "ids.csv", [
        '"Liddell, Alice",alice,1001,A001,alice@uni.edu,Section 1',
        '"Builder, Bob",bob,1002,A002,bob@uni.edu,Section 1',
        '"Çelik, Carol",carol,1003,A003,carol@uni.edu,Section 2',
        '"Dee, Dave",dave,1004,A004,dave@uni.edu,Section 2',
    ], header="Student,student,ID,SIS User ID,SIS Login ID,Section")  # columns in any order


def run(*args) -> int:
    return canvas.main(["export", *map(str, args)])


def read_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))


def test_grade_all_export_is_canvas_import_format(tmp_path, grade_all_out, mapping, capsys):
    out = tmp_path / "export" / "canvas.csv"
    status = run("--mapping", mapping, "--grades", grade_all_out, "--canvas-id", "basic_prompting=1234", "--out", out)
    assert status == 1  # written, but a grade withheld and a student unmatched
    data = out.read_bytes()
    assert data.startswith(BOM) and not data.startswith(BOM * 2)
    assert data[len(BOM):].decode("utf-8") == (
        "Student,ID,SIS User ID,SIS Login ID,Section,basic_prompting (1234)\r\n"
        "Points Possible,,,,,100\r\n"
        '"Liddell, Alice",1001,A001,alice@uni.edu,Section 1,84.5\r\n'
        '"Builder, Bob",1002,A002,bob@uni.edu,Section 1,\r\n'       # grader error: blank, never 0
        '"Çelik, Carol",1003,A003,carol@uni.edu,Section 2,100\r\n'
        '"Dee, Dave",1004,A004,dave@uni.edu,Section 2,\r\n'         # no submission: blank
    )
    assert read_rows(out.with_name("unmatched.csv")) == [["student", "basic_prompting (1234)"], ["zed", "87.38"]]
    err = capsys.readouterr().err
    assert "bob (grader error" in err and "zed" in err and "unmatched.csv" in err


def test_export_round_trips_through_csv(tmp_path, grade_all_out, mapping):
    out = tmp_path / "canvas.csv"
    run("--mapping", mapping, "--grades", f"Decoding lab={grade_all_out}", "--out", out, "--no-bom")
    assert not out.read_bytes().startswith(BOM)
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [*canvas.IDENTITY_COLUMNS, "Decoding lab"]
    assert rows[0]["Student"] == "Points Possible" and rows[0]["Decoding lab"] == str(sum(POINTS.values()))
    with (grade_all_out / "grades.csv").open(encoding="utf-8", newline="") as handle:
        totals = {r["student"]: r["total"] for r in csv.DictReader(handle) if r["status"] == "graded"}
    with mapping.open(encoding="utf-8", newline="") as handle:
        ids = {r["ID"]: r for r in csv.DictReader(handle)}
    for row in rows[1:]:
        ours = ids[row["ID"]]
        assert {c: row[c] for c in canvas.IDENTITY_COLUMNS} == {c: ours[c] for c in canvas.IDENTITY_COLUMNS}
        expected = totals.get(ours["student"])
        assert (float(row["Decoding lab"]) if row["Decoding lab"] else None) == (float(expected) if expected else None)
    assert [r["ID"] for r in rows[1:]] == ["1001", "1002", "1003", "1004"]  # the mapping's order


def test_missing_as_zero_fills_no_submission_but_never_a_grader_error(tmp_path, grade_all_out, mapping):
    out = tmp_path / "canvas.csv"
    run("--mapping", mapping, "--grades", grade_all_out, "--out", out, "--missing-as-zero")
    cells = {row[1]: row[5] for row in read_rows(out)[2:]}
    assert cells == {"1001": "84.5", "1002": "", "1003": "100", "1004": "0"}


def test_two_grade_all_folders_make_two_columns(tmp_path, grade_all_out, mapping):
    second = tmp_path / "retake"
    write_grades_csv(second / "grades.csv", [grades_row("dave", 61.25), grades_row("alice", 90)], POINTS)
    out = tmp_path / "canvas.csv"
    assert run("--mapping", mapping, "--grades", grade_all_out, "--grades", second, "--out", out) == 1
    rows = read_rows(out)
    assert rows[0][5:] == ["basic_prompting", "retake"] and rows[1][5:] == ["100", "100"]
    assert [row[5:] for row in rows[2:]] == [["84.5", "90"], ["", ""], ["100", ""], ["", "61.25"]]


def test_all_matched_and_graded_exits_0_and_unmatched_is_rewritten(tmp_path, mapping):
    folder = tmp_path / "hw"
    write_grades_csv(folder / "grades.csv", [grades_row("alice", 1), grades_row("bob", 2), grades_row("carol", 3)], POINTS)
    out = tmp_path / "canvas.csv"
    (tmp_path / "unmatched.csv").write_text("student,hw\nstale,1\n")
    assert run("--mapping", mapping, "--grades", folder, "--out", out) == 0
    assert read_rows(tmp_path / "unmatched.csv") == [["student", "hw"]]


def test_numbers_are_rounded_half_up_to_two_decimals():
    cases = {84.5: "84.5", 100.0: "100", 87.375: "87.38", 2.675: "2.68", 1 / 3: "0.33", 0.004: "0",
             -0.0: "0", 99.999: "100", 1234567.891: "1234567.89", 7: "7"}
    assert {value: canvas.format_number(value) for value in cases} == cases


def test_mapping_taken_from_a_canvas_export(tmp_path, grade_all_out):
    """Canvas's own export with a `student` column added: BOM, its Points Possible row (with the
    leading spaces Canvas writes), the test student and extra columns are all fine."""
    mapping = write_mapping(tmp_path / "ids.csv", [
        '    Points Possible,,,,,,100,(read only)',
        '"Liddell, Alice",1001,A001,alice@uni.edu,Section 1,alice,80,80',
        '"Student, Test",9999,,,Section 1,,,',
    ], header="Student,ID,SIS User ID,SIS Login ID,Section,student,Old (55),Current Score", bom=True)
    entries = canvas.read_mapping(mapping)
    assert [(e.student, e.canvas) for e in entries] == [("alice", {
        "Student": "Liddell, Alice", "ID": "1001", "SIS User ID": "A001", "SIS Login ID": "alice@uni.edu", "Section": "Section 1"})]


def test_mapping_with_only_a_login_id(tmp_path, grade_all_out):
    mapping = write_mapping(tmp_path / "ids.csv", ["alice,alice@uni.edu"], header="student,SIS Login ID")
    out = tmp_path / "canvas.csv"
    run("--mapping", mapping, "--grades", grade_all_out, "--out", out)
    assert read_rows(out)[2] == ["", "", "", "alice@uni.edu", "", "84.5"]


@pytest.mark.parametrize("header, lines, message", [
    ("Student,ID", ['"Liddell, Alice",1001'], "needs a 'student' column"),
    ("student,Student,Section", ["alice,Alice,S1"], "at least one of the columns ID"),
    (MAPPING_HEADER, ["alice,Alice,1001,,,", "alice,Alice,1002,,,"], "mapped twice"),
    (MAPPING_HEADER, ["alice,Alice,1001,,,", "bob,Bob,1001,,,"], "given to both"),
    (MAPPING_HEADER, ["alice,Alice,,,,S1"], "has none of ID"),
    (MAPPING_HEADER, [",Alice,1001,,,"], "maps no student"),
])
def test_bad_mapping_writes_nothing(tmp_path, grade_all_out, capsys, header, lines, message):
    mapping = write_mapping(tmp_path / "ids.csv", lines, header=header)
    out = tmp_path / "canvas.csv"
    assert run("--mapping", mapping, "--grades", grade_all_out, "--out", out) == 2
    assert message in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("extra, message", [
    (["--canvas-id", "basic_prompting=12a"], "is a number"),
    (["--canvas-id", "hw9=12"], "names no exported assignment"),
    (["--grades", "{grades}"], "two sources give the assignment"),
    (["--assignment", "hw1"], "--assignment picks"),
])
def test_bad_options_write_nothing(tmp_path, grade_all_out, mapping, capsys, extra, message):
    out = tmp_path / "canvas.csv"
    extra = [value.format(grades=grade_all_out) for value in extra]
    assert run("--mapping", mapping, "--grades", grade_all_out, *extra, "--out", out) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_points_possible_from_results_json_or_points_option(tmp_path, mapping):
    """A grades.csv whose function columns the grader does not know: the maxima come from
    the folder's results.json files, or from --points."""
    folder = tmp_path / "quiz"
    folder.mkdir()
    (folder / "grades.csv").write_text("student,total,q1,q2,status\nalice,7.5,5,2.5,graded\n")
    (folder / "alice").mkdir()
    (folder / "alice" / "results.json").write_text(json.dumps({"score": 7.5, "tests": [
        {"name": "q1: a", "score": 5, "max_score": 5, "tags": ["q1"]},
        {"name": "q2: a", "score": 1.5, "max_score": 2.5, "tags": ["q2"]},
        {"name": "q2: b", "score": 1, "max_score": 2.5, "tags": ["q2"]}]}))
    out = tmp_path / "canvas.csv"
    run("--mapping", mapping, "--grades", folder, "--out", out)
    assert read_rows(out)[1][5:] == ["10"]
    run("--mapping", mapping, "--grades", folder, "--points", "quiz=12", "--out", out)
    assert read_rows(out)[1][5:] == ["12"]
    (folder / "alice" / "results.json").unlink()
    assert run("--mapping", mapping, "--grades", folder, "--out", tmp_path / "other.csv") == 2


def test_add_cli_registers_canvas_export(tmp_path, grade_all_out, mapping):
    parser = argparse.ArgumentParser()
    canvas.add_cli(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "canvas.csv"
    args = parser.parse_args(["canvas-export", "--mapping", str(mapping), "--grades", str(grade_all_out), "--out", str(out)])
    assert args.handler(args) == 1 and read_rows(out)[0][-1] == "basic_prompting"
    with pytest.raises(SystemExit):  # one source: --grades or --nbgrader
        parser.parse_args(["canvas-export", "--mapping", "m", "--grades", "g", "--nbgrader", "c", "--out", "o"])


# -- the nbgrader gradebook ------------------------------------------------------------------


@pytest.fixture
def course(tmp_path, monkeypatch) -> Path:
    """A course folder holding only gradebook.db: hw1 (10 + 5 points), hw2 (20 points).
    alice: both graded; bob: hw1 graded late (1 point penalty), hw2 collected but not graded;
    carol: no submission; erin: graded, not in the mapping."""
    from nbgrader.api import Gradebook

    # nbgrader runs `alembic` (from the venv's bin/) when it creates a gradebook
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    course = tmp_path / "course"
    course.mkdir()
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{course / 'gradebook.db'}", "llm-course") as gb:
        warnings.simplefilter("ignore")  # nbgrader's add_submission trips SQLAlchemy's autoflush warnings
        for name, duedate, cells in (("hw2", "2025-02-01 00:00:00", {"q": 20}), ("hw1", "2025-01-01 00:00:00", {"a": 10, "b": 5})):
            gb.add_assignment(name, duedate=duedate)
            gb.add_notebook("nb", name)
            for cell, points in cells.items():
                gb.add_grade_cell(cell, "nb", name, max_score=points, cell_type="code")
        for student in ("alice", "bob", "carol", "erin"):
            gb.add_student(student)

        def grade(assignment, student, scores):
            gb.add_submission(assignment, student)
            for cell, score in scores.items():
                record = gb.find_grade(cell, "nb", assignment, student)
                record.manual_score, record.needs_manual_grade = score, False
            gb.db.commit()

        grade("hw1", "alice", {"a": 9.5, "b": 5})
        grade("hw2", "alice", {"q": 17.125})
        grade("hw1", "bob", {"a": 6, "b": 2})
        gb.find_submission("hw1", "bob").notebooks[0].late_submission_penalty = 1.0
        gb.db.commit()
        gb.add_submission("hw2", "bob")  # collected, never graded: needs_manual_grade stays True
        grade("hw2", "erin", {"q": 20})
    return course


def test_nbgrader_gradebook_two_assignments_two_columns(tmp_path, course, mapping, capsys):
    out = tmp_path / "canvas.csv"
    assert run("--mapping", mapping, "--nbgrader", course, "--canvas-id", "hw2=77", "--out", out) == 1
    assert read_rows(out) == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "hw1", "hw2 (77)"],  # by due date
        ["Points Possible", "", "", "", "", "15", "20"],
        ["Liddell, Alice", "1001", "A001", "alice@uni.edu", "Section 1", "14.5", "17.13"],
        ["Builder, Bob", "1002", "A002", "bob@uni.edu", "Section 1", "7", ""],  # 8 less the late penalty; hw2 ungraded
        ["Çelik, Carol", "1003", "A003", "carol@uni.edu", "Section 2", "", ""],
        ["Dee, Dave", "1004", "A004", "dave@uni.edu", "Section 2", "", ""],
    ]
    assert read_rows(out.with_name("unmatched.csv")) == [["student", "hw1", "hw2 (77)"], ["erin", "", "20"]]
    captured = capsys.readouterr()
    assert "not fully graded" in captured.err and "erin" in captured.err
    assert "hw1: 2 of 4 mapped students graded" in captured.out


def test_nbgrader_missing_as_zero_and_assignment_filter(tmp_path, course, mapping):
    out = tmp_path / "canvas.csv"
    run("--mapping", mapping, "--nbgrader", course, "--missing-as-zero", "--out", out)
    assert [row[5:] for row in read_rows(out)[2:]] == [["14.5", "17.13"], ["7", ""], ["0", "0"], ["0", "0"]]
    run("--mapping", mapping, "--nbgrader", course, "--assignment", "hw2", "--out", out)
    assert read_rows(out)[0][5:] == ["hw2"] and read_rows(out)[1][5:] == ["20"]


def test_nbgrader_without_a_gradebook_creates_none(tmp_path, mapping, capsys):
    empty = tmp_path / "empty-course"
    empty.mkdir()
    assert run("--mapping", mapping, "--nbgrader", empty, "--out", tmp_path / "canvas.csv") == 2
    assert "no nbgrader gradebook" in capsys.readouterr().err
    assert not (empty / "gradebook.db").exists() and not (tmp_path / "canvas.csv").exists()


def test_nbgrader_config_says_where_the_gradebook_is(tmp_path, course, mapping):
    """A course whose nbgrader_config.py moves the database: read where nbgrader would."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (course / "gradebook.db").rename(elsewhere / "grades.db")
    (course / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.db_url = {'sqlite:///' + str(elsewhere / 'grades.db')!r}\n"
        "c.CourseDirectory.course_id = 'llm-course'\n")
    out = tmp_path / "canvas.csv"
    assert run("--mapping", mapping, "--nbgrader", course, "--out", out) == 1
    assert read_rows(out)[2][5:] == ["14.5", "17.13"] and not (course / "gradebook.db").exists()


def test_a_grade_with_a_ta_override_is_exported(tmp_path):
    """grades.csv says "graded, override kept: ..." for a TA-adjusted grade: final, so exported."""
    from autograder import canvas, report

    out = tmp_path / "out"
    report.write_grades_csv(out / "grades.csv", [
        {"student": "alice", "total": 98, "status": "graded, override kept: top_p_filter 18 (autograder 4.7)"}], POINTS)
    column = canvas.read_grade_all(out, "basic_prompting")
    assert column.scores == {"alice": 98} and column.withheld == {}
