"""Export grades to Canvas: a CSV that Canvas's gradebook import accepts (Grades -> Import).

``python -m autograder canvas-export --mapping ids.csv (--grades [NAME=]OUT_DIR ... | --nbgrader COURSE) --out canvas.csv``

Sources, one Canvas column per assignment:

* ``--grades [NAME=]OUT_DIR`` (repeatable): a folder ``grade-all`` (or ``nbgrader-autograde``,
  in ``COURSE/grading-output/<assignment>/``) wrote. Its ``grades.csv`` gives each student's
  ``total``; the assignment's points possible are the sum of its function columns' maxima
  (the points of the course's assignment whose functions they are, from its
  ``assignment.toml``; for function columns it does not know, the sum of the
  ``max_score`` of the tests in the folder's ``<student>/results.json``), or ``--points
  NAME=P``. The name is NAME, else the folder's name (grade-all's default folder
  ``grading-output`` stands for this project's assignment, ``basic_prompting``). Only rows
  whose status is ``graded`` are exported: a ``grader error`` row (or any other status) is
  left blank and named in a warning, since that grade is not final.
* ``--nbgrader COURSE``: every assignment in the course's gradebook (``COURSE/gradebook.db``,
  or the ``db_url`` and course id its ``nbgrader_config.py`` sets), read with
  ``nbgrader.api.Gradebook`` the way ``nbgrader export`` reads it: points possible are the
  assignment's ``max_score``, a grade is the submission's ``score`` less its late penalty
  (never below 0). A submission that still needs manual grading (formgrader), or that was
  collected and never graded, is left blank with a warning; a student with no submission
  is left blank, or 0 with ``--missing-as-zero``.

The file Canvas reads (the columns of Canvas's own gradebook export, which its import
takes back; see Canvas's guides "How do I export grades in the Gradebook?" and "How do I
import grades in the Gradebook?"):

1. Header row: ``Student``, ``ID``, ``SIS User ID``, ``SIS Login ID``, ``Section``, then
   one column per assignment, named ``Assignment Name (12345)`` where 12345 is Canvas's
   assignment id (``--canvas-id NAME=12345``), else just ``Assignment Name``. Canvas
   updates the assignment with that id; a column without an id is matched by name or, if
   no assignment has that name, offered as a new assignment (the import's preview page
   shows which, before anything changes).
2. ``Points Possible`` row: that label in the first column, the identity columns blank,
   each assignment's points possible (Canvas uses them for assignments it creates).
3. One row per student of the id mapping, in its order: the Canvas identity from the
   mapping, then a number per assignment. Canvas finds the student by ``ID`` (the Canvas
   user id), else ``SIS User ID`` or ``SIS Login ID``. A blank cell leaves that grade in
   Canvas unchanged: that is what a student without a grade gets (no submission, grader
   error, not fully graded), so an export never overwrites a grade with a guess.

Numbers are rounded half-up to 2 decimals and written without trailing zeros (``84.5``,
``100``, ``87.38``). Fields are quoted only where needed and rows end in CRLF (the csv
module's defaults, as RFC 4180 has them). The file is UTF-8 with a byte-order mark: Canvas
reads UTF-8 with or without one (its own exports add one when the user's setting "Include
Byte-Order Mark in compatible spreadsheet exports" is on), and without it Excel, which TAs
often open the file in, shows accented names as mojibake. ``--no-bom`` leaves it out.
Example::

    Student,ID,SIS User ID,SIS Login ID,Section,basic_prompting (1234),hw2
    Points Possible,,,,,100,10
    "Liddell, Alice",1001,A001,alice@uni.edu,Section 1,84.5,7
    "Builder, Bob",1002,A002,bob@uni.edu,Section 1,,10

The id mapping (``--mapping``) is the TA's CSV with the columns ``student,Student,ID,SIS
User ID,SIS Login ID,Section``: our id (the nbgrader student id, or the student's folder
name for grade-all), then Canvas's identity of that student. Only ``student`` and one of
``ID``, ``SIS User ID``, ``SIS Login ID`` per row are required; the easiest way to make it
is Canvas's own gradebook export with a ``student`` column added (its ``Points Possible``
row, rows left without a ``student`` and any other columns are ignored). Students a source
has and the mapping has not are never dropped silently and never guessed: they are named
in a warning and written, with their grades, to ``unmatched.csv`` (next to ``--out``, or
``--unmatched``; written on every run, so a stale one never misleads). Mapping entries with
no grade in a column are left blank there and counted in the summary.

Exit status: 0 when every student of every source was exported; 1 when the CSV was written
but some grade was withheld (grader error, not fully graded) or some student is unmatched
(the warnings say which); 2 when nothing was written (a bad mapping, a missing folder, ...).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from .assignment import DEFAULT as DEFAULT_ASSIGNMENT

IDENTITY_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
MATCH_COLUMNS = ("ID", "SIS User ID", "SIS Login ID")  # what Canvas finds a student by
MAPPING_COLUMNS = ("student", *IDENTITY_COLUMNS)
POINTS_POSSIBLE = "Points Possible"
GRADED = "graded"  # the grades.csv status of a final grade
GRADER_ERROR = "grader error"  # how a grades.csv status starts when grading failed (report.GRADER_ERROR)
GRADE_ALL_DEFAULT_OUT = "grading-output"  # grade-all's default --out: it grades the default assignment
UNMATCHED_FILE = "unmatched.csv"


class ExportError(ValueError):
    """Input the export cannot use (nothing is written)."""


@dataclass
class MappingEntry:
    student: str  # our id
    canvas: dict[str, str]  # IDENTITY_COLUMNS -> value


@dataclass
class AssignmentColumn:
    """One assignment: what becomes one Canvas column."""

    name: str
    points: float
    scores: dict[str, float] = field(default_factory=dict)  # student -> grade to export
    withheld: dict[str, str] = field(default_factory=dict)  # student -> why no grade is exported
    students: set[str] = field(default_factory=set)  # every student this source knows (with or without a grade)
    canvas_id: str | None = None

    @property
    def header(self) -> str:
        return f"{self.name} ({self.canvas_id})" if self.canvas_id else self.name


@dataclass
class Export:
    header: list[str]
    points_row: list[str]
    rows: list[list[str]]
    unmatched: list[list[str]]  # rows of unmatched.csv (header first)
    warnings: list[str]
    summary: list[str]
    problems: bool  # a grade withheld or a student unmatched


# -- numbers -------------------------------------------------------------------------------------


def format_number(value: float) -> str:
    """`value` rounded half-up to 2 decimals, without trailing zeros: 84.5, 100, 87.38."""
    number = Decimal(repr(float(value))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _parse_number(text, what: str) -> float:
    try:
        number = float(str(text).strip())
    except ValueError:
        raise ExportError(f"{what}: {text!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ExportError(f"{what}: {text!r} is not a finite number")
    return number


# -- the id mapping ----------------------------------------------------------------------------


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV (UTF-8, a byte-order mark allowed, as Excel saves it)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ExportError(f"{path}: no such file") from None
    except UnicodeDecodeError as error:
        raise ExportError(f"{path}: not UTF-8 ({error}); save it as CSV UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip() for name in (reader.fieldnames or [])]
    reader.fieldnames = header
    rows = [{k: (v or "").strip() if isinstance(v, str) else "" for k, v in row.items() if k is not None} for row in reader]
    return header, rows


def read_mapping(path: Path) -> list[MappingEntry]:
    """The TA's id mapping: `MAPPING_COLUMNS` (only ``student`` and one Canvas id per row
    required); rows without ``student`` and a ``Points Possible`` row are skipped."""
    header, rows = _read_csv(path)
    if "student" not in header:
        raise ExportError(f"{path}: the id mapping needs a 'student' column (our id), then Canvas's "
                          f"{', '.join(IDENTITY_COLUMNS)}; it has: {', '.join(header) or 'no header'}")
    if not any(column in header for column in MATCH_COLUMNS):
        raise ExportError(f"{path}: the id mapping needs at least one of the columns {', '.join(MATCH_COLUMNS)} "
                          f"(what Canvas finds a student by)")
    entries: list[MappingEntry] = []
    seen: dict[str, int] = {}
    canvas_ids: dict[tuple[str, str], str] = {}
    for line, row in enumerate(rows, start=2):
        if row.get("Student", "") == POINTS_POSSIBLE or not row.get("student"):
            continue
        student = row["student"]
        if student in seen:
            raise ExportError(f"{path}, line {line}: student {student!r} is mapped twice (also line {seen[student]})")
        seen[student] = line
        canvas = {column: row.get(column, "") for column in IDENTITY_COLUMNS}
        if not any(canvas[column] for column in MATCH_COLUMNS):
            raise ExportError(f"{path}, line {line}: student {student!r} has none of {', '.join(MATCH_COLUMNS)}, "
                              f"so Canvas could not find them")
        for column in MATCH_COLUMNS:
            if canvas[column]:
                other = canvas_ids.setdefault((column, canvas[column]), student)
                if other != student:
                    raise ExportError(f"{path}, line {line}: {column} {canvas[column]!r} is given to both "
                                      f"{other!r} and {student!r}")
        entries.append(MappingEntry(student, canvas))
    if not entries:
        raise ExportError(f"{path}: the id mapping maps no student (fill in the 'student' column)")
    return entries


# -- source (a): grade-all output ---------------------------------------------------------------


def _results_max_points(folder: Path, functions: list[str]) -> float | None:
    """Points possible from the folder's results.json files: the sum of the max_score of the
    tests tagged with `functions` (the first results.json that has tests for all of them)."""
    for results in sorted(folder.glob("*/results.json")):
        try:
            tests = json.loads(results.read_text(encoding="utf-8"))["tests"]
            maxima: dict[str, float] = {}
            for test in tests:
                tag = test["tags"][0]
                maxima[tag] = maxima.get(tag, 0.0) + float(test["max_score"])
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            continue
        if all(f in maxima for f in functions):
            return round(sum(maxima[f] for f in functions), 4)
    return None


def default_assignment_name(folder: Path) -> str:
    name = Path(folder).resolve().name
    return DEFAULT_ASSIGNMENT if name == GRADE_ALL_DEFAULT_OUT else name


def known_points(name: str, functions: list[str]) -> float | None:
    """The points possible of the course's assignment whose grades.csv has these function
    columns (the one called `name` first), or None."""
    from .assignment import available, load

    for candidate in sorted(available(), key=lambda n: n != name):
        try:
            points = load(candidate).points
        except ValueError:
            continue
        if functions and list(points) == list(functions):
            return float(sum(points.values()))
    return None


def read_grade_all(folder: Path, name: str | None = None, points: float | None = None) -> AssignmentColumn:
    """One assignment from a grade-all output folder (its grades.csv)."""
    folder = Path(folder)
    path = folder / "grades.csv"
    if not path.is_file():
        raise ExportError(f"{folder}: no grades.csv (pass the folder grade-all wrote with --out)")
    header, rows = _read_csv(path)
    for column in ("student", "total"):
        if column not in header:
            raise ExportError(f"{path}: no {column!r} column; is this grade-all's grades.csv?")
    end = header.index("status") if "status" in header else len(header)
    functions = header[header.index("total") + 1:end]
    if points is None:
        points = known_points(name or default_assignment_name(folder), functions)
        if points is None:
            points = _results_max_points(folder, functions) if functions else None
        if points is None:
            raise ExportError(f"{path}: cannot tell the points possible (function columns {', '.join(functions) or 'none'}); "
                              f"give them with --points NAME=POINTS")
    column = AssignmentColumn(name or default_assignment_name(folder), float(points))
    for line, row in enumerate(rows, start=2):
        student = row.get("student", "")
        if not student:
            continue
        if student in column.students:
            raise ExportError(f"{path}, line {line}: student {student!r} appears twice")
        column.students.add(student)
        status = row.get("status", GRADED) if "status" in header else GRADED
        if status != GRADED and not status.startswith(f"{GRADED}, "):  # ("graded, override kept: ..." is final)
            why = "grader error" if status.startswith(GRADER_ERROR) else f"status {status!r}"
            column.withheld[student] = f"{why}: not a final grade; regrade, then export again"
            continue
        total = row.get("total", "")
        if total == "":
            column.withheld[student] = "no total in grades.csv"
            continue
        try:
            column.scores[student] = _parse_number(total, f"{path}, line {line}, total")
        except ExportError as error:
            column.withheld[student] = str(error)
    return column


# -- source (b): the nbgrader gradebook -----------------------------------------------------------


def _gradebook_location(course: Path) -> tuple[str, str]:
    """(db_url, course_id) as nbgrader's commands in `course` would use them."""
    course = Path(course).resolve()
    if not course.is_dir():
        raise ExportError(f"{course}: no such course folder")
    db_url, course_id = f"sqlite:///{course / 'gradebook.db'}", ""
    if (course / "nbgrader_config.py").is_file():
        from .nbgrader_course import load_coursedir

        coursedir, _ = load_coursedir(course)
        db_url, course_id = coursedir.db_url or db_url, coursedir.course_id
    if db_url.startswith("sqlite:///"):
        db_file = Path(db_url.removeprefix("sqlite:///"))
        if not db_file.is_file():  # opening it would create an empty gradebook
            raise ExportError(f"{db_file}: no nbgrader gradebook (run nbgrader in {course} first)")
    return db_url, course_id


def read_nbgrader(course: Path, assignments: list[str] | None = None) -> list[AssignmentColumn]:
    """One column per assignment of the course's gradebook (or of `assignments`), in the
    gradebook's order (due date, then name)."""
    import warnings

    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    db_url, course_id = _gradebook_location(course)
    columns = []
    with warnings.catch_warnings(), Gradebook(db_url, course_id) as gb:
        warnings.simplefilter("ignore", SAWarning)
        everyone = {student.id for student in gb.students}
        found = {a.name: a for a in gb.assignments}
        unknown = [name for name in assignments or [] if name not in found]
        if unknown:
            raise ExportError(f"the gradebook of {course} has no assignment {', '.join(map(repr, unknown))} "
                              f"(it has: {', '.join(found) or 'none'})")
        for record in found.values():
            if assignments and record.name not in assignments:
                continue
            column = AssignmentColumn(record.name, float(record.max_score or 0.0), students=set(everyone))
            for submission in gb.assignment_submissions(record.name):
                student = submission.student.id
                column.students.add(student)
                if submission.needs_manual_grade:
                    column.withheld[student] = ("not fully graded in nbgrader (some cell needs a grade: "
                                                "run nbgrader-autograde, or grade it in formgrader)")
                    continue
                penalty = submission.late_submission_penalty or 0.0
                column.scores[student] = max(0.0, float(submission.score or 0.0) - float(penalty))
            columns.append(column)
    return columns


# -- the export ---------------------------------------------------------------------------------


def build_export(mapping: list[MappingEntry], columns: list[AssignmentColumn], *, missing_as_zero: bool = False) -> Export:
    """The Canvas CSV's rows (see the module's docstring), unmatched.csv's rows, warnings and a summary."""
    if not columns:
        raise ExportError("no assignment to export")
    headers = [c.header for c in columns]
    duplicates = sorted({h for h in headers if headers.count(h) > 1})
    if duplicates:
        raise ExportError(f"two sources give the assignment {', '.join(map(repr, duplicates))}: name them NAME=FOLDER")
    clash = [h for h in headers if h in IDENTITY_COLUMNS or h == "student"]
    if clash:
        raise ExportError(f"an assignment may not be named {', '.join(map(repr, clash))} (a Canvas identity column)")
    header = [*IDENTITY_COLUMNS, *headers]
    points_row = [POINTS_POSSIBLE, *([""] * (len(IDENTITY_COLUMNS) - 1)), *(format_number(c.points) for c in columns)]
    mapped = {entry.student for entry in mapping}
    warnings: list[str] = []
    summary: list[str] = []
    rows = []
    blank = {c.header: [] for c in columns}
    zeroed = {c.header: [] for c in columns}
    withheld = {c.header: [] for c in columns}
    for entry in mapping:
        row = [entry.canvas.get(column, "") for column in IDENTITY_COLUMNS]
        for column in columns:
            if entry.student in column.scores:
                row.append(format_number(column.scores[entry.student]))
            elif entry.student in column.withheld:
                row.append("")
                withheld[column.header].append(f"{entry.student} ({column.withheld[entry.student]})")
            elif missing_as_zero:
                row.append("0")
                zeroed[column.header].append(entry.student)
            else:
                row.append("")
                blank[column.header].append(entry.student)
        rows.append(row)
    for column in columns:
        graded = sum(1 for e in mapping if e.student in column.scores)
        line = f"{column.header}: {graded} of {len(mapping)} mapped students graded (points possible {format_number(column.points)})"
        if zeroed[column.header]:
            line += f"; 0 for no submission (--missing-as-zero): {', '.join(zeroed[column.header])}"
        if blank[column.header]:
            line += f"; left blank (no submission, Canvas keeps what it has): {', '.join(blank[column.header])}"
        summary.append(line)
        if withheld[column.header]:
            warnings.append(f"{column.header}: grade left blank for {len(withheld[column.header])} student(s): "
                            + "; ".join(withheld[column.header]))
    ours = sorted(set().union(*(c.students for c in columns)) - mapped)
    unmatched = [["student", *headers]]
    for student in ours:
        unmatched.append([student, *(format_number(c.scores[student]) if student in c.scores else "" for c in columns)])
    if ours:
        warnings.append(f"{len(ours)} student(s) are not in the id mapping, so they are NOT in the Canvas file "
                        f"(see unmatched.csv; add them to the mapping and export again): {', '.join(ours)}")
    problems = bool(ours) or any(withheld.values())
    return Export(header, points_row, rows, unmatched, warnings, summary, problems)


def csv_bytes(rows: list[list[str]], *, bom: bool = True) -> bytes:
    """Rows as CSV (csv module defaults: minimal quoting, CRLF), UTF-8, with a BOM unless not `bom`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8-sig" if bom else "utf-8")


def write_export(export: Export, out: Path, unmatched: Path | None = None, *, bom: bool = True) -> Path:
    """Write the Canvas CSV to `out` and unmatched.csv (next to it unless `unmatched`);
    both atomically and owner-only (they hold grades). Returns the unmatched.csv path."""
    from .report import write_bytes_atomic

    out = Path(out)
    unmatched = Path(unmatched) if unmatched else out.with_name(UNMATCHED_FILE)
    if unmatched.resolve() == out.resolve():
        raise ExportError(f"{out}: the Canvas file and the unmatched students' file must differ (use --unmatched)")
    write_bytes_atomic(out, csv_bytes([export.header, export.points_row, *export.rows], bom=bom))
    write_bytes_atomic(unmatched, csv_bytes(export.unmatched, bom=bom))
    return unmatched


# -- command line -------------------------------------------------------------------------------


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs = {}
    for value in values or []:
        name, sep, rest = value.rpartition("=")
        if not sep or not name.strip() or not rest.strip():
            raise ExportError(f"{option} {value!r}: expected NAME=VALUE")
        pairs[name.strip()] = rest.strip()
    return pairs


def _sources(args) -> list[AssignmentColumn]:
    points = {name: _parse_number(p, f"--points {name}") for name, p in _pairs(args.points, "--points").items()}
    if args.assignment and not args.nbgrader:
        raise ExportError("--assignment picks assignments of --nbgrader's gradebook; with --grades, name the folders you want")
    if args.nbgrader:
        columns = read_nbgrader(args.nbgrader, args.assignment)
        for column in columns:
            column.points = points.get(column.name, column.points)
    else:
        columns = []
        for value in args.grades:
            name, sep, folder = value.partition("=")
            if not sep:
                name, folder = None, value
            elif not name.strip():
                raise ExportError(f"--grades {value!r}: expected NAME=FOLDER or FOLDER")
            name = name.strip() if name else default_assignment_name(Path(folder))
            columns.append(read_grade_all(Path(folder), name, points.get(name)))
    names = {c.name for c in columns}
    for option, given in (("--points", points), ("--canvas-id", canvas_ids := _pairs(args.canvas_id, "--canvas-id"))):
        unknown = sorted(set(given) - names)
        if unknown:
            raise ExportError(f"{option} names no exported assignment: {', '.join(unknown)} (the assignments: {', '.join(sorted(names))})")
    for column in columns:
        if column.name in canvas_ids:
            if not canvas_ids[column.name].isdigit():
                raise ExportError(f"--canvas-id {column.name}={canvas_ids[column.name]}: a Canvas assignment id is a number "
                                  f"(the last part of the assignment's address, .../assignments/1234)")
            column.canvas_id = canvas_ids[column.name]
    return columns


def _export_command(args) -> int:
    try:
        mapping = read_mapping(args.mapping)
        columns = _sources(args)
        export = build_export(mapping, columns, missing_as_zero=args.missing_as_zero)
        unmatched = write_export(export, args.out, args.unmatched, bom=not args.no_bom)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for line in export.summary:
        print(line)
    for line in export.warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(f"{args.out}: {len(export.rows)} students, {len(columns)} assignment(s), for Canvas's Grades -> Import; "
          f"unmatched students: {unmatched} ({len(export.unmatched) - 1})")
    return 1 if export.problems else 0


def _add_export(commands, name: str):
    parser = commands.add_parser(
        name, help="write a Canvas gradebook-import CSV from grade-all output or the nbgrader gradebook",
        description="Write a CSV for Canvas's Grades -> Import: one row per student of the id mapping, one column per "
                    "assignment, a Points Possible row.",
        epilog="exit status: 0 when every student was exported; 1 when the CSV was written but some grade was left "
               "blank (grader error, not fully graded) or some student is missing from the mapping (see "
               "unmatched.csv); 2 when nothing was written")
    parser.add_argument("--mapping", type=Path, required=True,
                        help="CSV with columns student,Student,ID,SIS User ID,SIS Login ID,Section: our student id, "
                             "then Canvas's (only student and one Canvas id required)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--grades", action="append", metavar="[NAME=]OUT_DIR",
                        help="a folder grade-all wrote (holds grades.csv); repeatable, one column each; NAME defaults "
                             "to the folder's name")
    source.add_argument("--nbgrader", type=Path, metavar="COURSE",
                        help="an nbgrader course folder: every assignment in its gradebook")
    parser.add_argument("--assignment", action="append", help="with --nbgrader: only this assignment (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="the Canvas CSV to write")
    parser.add_argument("--unmatched", type=Path, help=f"where students missing from the mapping go (default: {UNMATCHED_FILE} next to --out)")
    parser.add_argument("--canvas-id", action="append", metavar="NAME=ID",
                        help="Canvas's id of assignment NAME: its column reads 'NAME (ID)' and updates that assignment")
    parser.add_argument("--points", action="append", metavar="NAME=POINTS", help="points possible of assignment NAME (overrides)")
    parser.add_argument("--missing-as-zero", action="store_true",
                        help="0 (not blank) for a mapped student with no submission; never for a grader error")
    parser.add_argument("--no-bom", action="store_true", help="write UTF-8 without a byte-order mark")
    parser.set_defaults(handler=_export_command)
    return parser


def add_cli(commands) -> None:
    """Register `canvas-export` on `python -m autograder`'s subparsers."""
    _add_export(commands, "canvas-export")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.canvas", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _add_export(commands, "export")
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
