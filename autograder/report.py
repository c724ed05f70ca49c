"""Reports of a graded submission: Gradescope's results.json, Markdown feedback, a terminal
table, and the class's grades.csv.

Much of what a report holds is the student's to choose: printed output, exception
messages, returned strings, and (through a forged message from the worker) the import
report and the isolation metadata. So every writer here copes with any of it: strings
with lone surrogates are written with a backslash escape, non-finite numbers as null,
values of unexpected types as short text; Markdown puts student text in fences longer
than any backtick run in it, or escapes it; terminal output escapes rich's markup. Files
are written atomically: a failure leaves the previous file, and no temporary file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import reprlib
import secrets
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .grading import SubmissionResult

ISOLATION_NOTE = (
    "Student code ran in a separate process forked from the model process, with its own "
    "process group and limits on time, memory and file size; results crossed back as plain data."
)
# grades.csv: the grade columns, then where the grade came from (so a regrade can be checked).
PROVENANCE_COLUMNS = ("model", "model_revision", "torch", "transformers", "graded_at")


def grades_columns(points: dict) -> tuple[str, ...]:
    """grades.csv's header for an assignment with these `points` (`Assignment.points`)."""
    return ("student", "total", *points, "status", *PROVENANCE_COLUMNS)


# Gradescope's visibility levels (its results.json spec) and the default for each group of
# hidden tests (`grading.GROUPS`): the tests that mirror the public ones are shown at once;
# the others, with their inputs, once the due date has passed. A bundle can set others.
VISIBILITY_LEVELS = ("visible", "hidden", "after_due_date", "after_published")
DEFAULT_VISIBILITY = {"public": "visible", "hidden": "after_due_date"}
GRADER_ERROR = "grader error"  # how a grades.csv status starts when grading failed somewhere
MAX_JSON_DEPTH = 200
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 200
_REPR.maxlevel = 3


# -- making student-controlled values safe to write ------------------------------------------


def clean_text(text) -> str:
    """`text` as a str that encodes to UTF-8: lone surrogates become backslash escapes."""
    if not isinstance(text, str):
        text = brief(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return str.__str__(text)


def brief(value, width: int = 200) -> str:
    """A short, printable rendering of anything (a forged value of any type)."""
    if isinstance(value, str):
        return clean_text(value[:width])
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - whatever it is, the report goes on
        text = f"<{type(value).__name__}>"
    return clean_text(text[:width])


def _number(value, default: float = 0.0) -> float:
    """A finite float for a field that must be a number (a score, a time)."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return default
    return number if math.isfinite(number) else default


def json_safe(value, depth: int = 0):
    """`value` as plain data that `json.dumps(..., allow_nan=False)` writes as valid JSON
    in UTF-8: strings cleaned (`clean_text`), non-finite floats as None, tuples as lists,
    keys as strings, anything else as its short text."""
    if depth > MAX_JSON_DEPTH:
        return "<nested too deeply>"
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value) if value.bit_length() <= 10_000 else f"<int of {value.bit_length()} bits>"
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {(clean_text(k) if isinstance(k, str) else brief(k)): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item, depth + 1) for item in value]
    if isinstance(value, os.PathLike):
        return clean_text(os.fspath(value))
    return brief(value)


def _get(mapping, key, default=None):
    """`mapping[key]` if `mapping` is a dict that has it (metadata may be forged: any type)."""
    return mapping.get(key, default) if isinstance(mapping, dict) else default


def md_inline(text, width: int = 300) -> str:
    """Student text for a Markdown heading or paragraph: one line, every character that
    could start markup (emphasis, links, images, HTML, entities, code, math: nbgrader's
    feedback page runs MathJax) backslash-escaped. (`.`, `+` and `-` start markup only
    at the start of a line, where this text never stands alone.)"""
    text = re.sub(r"[\x00-\x1f\x7f\u2028\u2029]+", " ", clean_text(text))[:width]
    return re.sub(r"([\\`*_\[\]()<>#!|~&{}$])", r"\\\1", text)


def md_code_block(text, indent: str = "") -> list[str]:
    """Lines of a fenced code block that shows `text` verbatim, whatever it holds: the fence
    is longer than any run of backticks in it (CommonMark), so nothing in it can close the
    block early; every line carries `indent` (inside a list item)."""
    text = clean_text(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [indent + fence, *(indent + line for line in (text.splitlines() or [""])), indent + fence]


# -- texts ------------------------------------------------------------------------------------


def isolation_text(result: SubmissionResult) -> str:
    """One sentence on the OS isolation that was in force, for TAs and the record."""
    iso = _get(result.metadata, "isolation") or {}
    if not iso:
        return ISOLATION_NOTE
    if not isinstance(iso, dict):
        return f"{ISOLATION_NOTE} OS isolation: unknown (the worker reported {brief(iso)})."
    hidden = iso.get("hidden_paths", [])
    count = len(hidden) if isinstance(hidden, (list, tuple, dict)) else f"unknown ({brief(hidden, 60)})"
    parts = [f"user: {brief(iso.get('user'), 100)}", f"network: {brief(iso.get('network'), 100)}",
             f"processes: {brief(iso.get('processes', 'unlimited'), 100)}", f"hidden folders: {count}"]
    degraded = f" Isolation degraded: {brief(iso['degraded'], 500)}." if iso.get("degraded") else ""
    return f"{ISOLATION_NOTE} OS isolation: {'; '.join(parts)}.{degraded}"


def _import_problem(result: SubmissionResult) -> str | None:
    report = result.import_report if isinstance(result.import_report, dict) else {}
    if report.get("ok"):
        missing = report.get("missing") or []
        if not isinstance(missing, (list, tuple)):
            missing = [missing]
        names = ", ".join(brief(name, 80) for name in missing[:20])
        return f"{_file(result)} defines no function named: {names}" if missing else None
    error = report.get("error", {})
    if not isinstance(error, dict):
        error = {"type": "Error", "message": brief(error, 2000)}
    trace = f"\n{clean_text(error.get('traceback'))}" if error.get("traceback") else ""
    return f"{_file(result)} could not be imported: {brief(error.get('type'), 100)}: {clean_text(error.get('message'))}{trace}"


def _file(result: SubmissionResult) -> str:
    return brief(result.metadata.get("submission_file") or "the submitted file", 100)


def _printed(result: SubmissionResult) -> dict[str, str]:
    printed = result.printed if isinstance(result.printed, dict) else {}
    return {brief(name, 40): clean_text(text) for name, text in printed.items() if isinstance(text, str) and text.strip()}


def _provenance(metadata) -> str:
    model, versions = _get(metadata, "model", {}), _get(metadata, "versions", {})
    return (f"{brief(_get(model, 'name'))} (revision {brief(_get(model, 'revision'))}), torch {brief(_get(versions, 'torch'))}, "
            f"transformers {brief(_get(versions, 'transformers'))}, hidden inputs {_inputs_text(metadata)}")


def _inputs_text(metadata) -> str:
    """How the hidden inputs were drawn, for the record: "seed N" (and, for a given seed, so)."""
    inputs = _get(metadata, "hidden_inputs", {})
    seed = _get(inputs, "seed") if isinstance(inputs, dict) else None
    if seed is None:
        return "fixed"
    given = isinstance(inputs.get("derived_from"), dict) and inputs["derived_from"].get("given")
    return f"seed {brief(seed, 30)}" + (" (given)" if given else "")


def summary_text(result: SubmissionResult) -> str:
    lines = [f"Score: {result.score:g} / {result.max_score:g}"]
    problem = _import_problem(result)
    if problem:
        lines.append(problem)
    for name, text in _printed(result).items():
        lines.append(f"Your code printed on {name} (first lines):\n{text}")
    model = _get(result.metadata, "model", {})
    lines.append(f"Graded with {brief(_get(model, 'name'))} (revision {brief(_get(model, 'revision'))}); "
                 f"hidden inputs {_inputs_text(result.metadata)}.")
    return clean_text("\n\n".join(lines))


def _shown_tests(result: SubmissionResult) -> list[dict]:
    """The tests as reports show them: a function's tests that were not run for the same
    reason (decoding.py did not import, a missing function, an earlier timeout) are one
    row that counts them, so the reason is said once."""
    rows: list[dict] = []
    for test in result.tests:
        row = {"function": test.function, "name": test.name, "score": _number(test.score),
               "max_score": _number(test.max_score), "status": test.status, "output": test.output, "count": 1,
               "group": getattr(test, "group", "hidden")}
        last = rows[-1] if rows else None
        if (last and str(test.output).startswith("Not run:") and last["output"] == test.output
                and last["function"] == test.function):
            # a row of tests not run shows no test's inputs: it is shown as its most visible member
            last["group"] = "public" if "public" in (last["group"], row["group"]) else last["group"]
            last["count"] += 1
            last["score"] = round(last["score"] + row["score"], 2)
            last["max_score"] = round(last["max_score"] + row["max_score"], 2)
            last["name"] = f"{last['count']} tests not run"
        else:
            rows.append(row)
    return rows


def visibility_for(group: str, visibility: dict | None = None) -> str:
    """The Gradescope visibility of a test of `group` (unknown groups: as "hidden" ones)."""
    levels = DEFAULT_VISIBILITY | (visibility or {})
    return levels.get(group, levels["hidden"])


def gradescope_results(result: SubmissionResult, visibility: dict | None = None) -> dict:
    """Gradescope's results.json: https://gradescope-autograders.readthedocs.io/en/latest/specs/

    `visibility`: group -> Gradescope level, over `DEFAULT_VISIBILITY`. Always plain,
    JSON-safe data (see `json_safe`): scores are finite numbers."""
    extra = {"student": result.student, "metadata": result.metadata, "isolation": isolation_text(result)}
    if result.internal_errors:  # the count only: the details are the TA's (grader-error.txt)
        extra["grader_errors"] = len(result.internal_errors)
    return json_safe({
        "score": _number(result.score),
        "execution_time": round(_number(result.execution_time)),
        "output": summary_text(result),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [
            {
                "name": f"{test['function']}: {test['name']}",
                "score": test["score"],
                "max_score": test["max_score"],
                "status": "passed" if test["status"] == "passed" else "failed",  # Gradescope knows these two
                "output": test["output"],
                "visibility": visibility_for(test["group"], visibility),
                "tags": [test["function"], test["group"]],
            }
            for test in _shown_tests(result)
        ],
        "extra_data": extra,
    })


def grader_error_results(student: str, message: str, points: dict, metadata: dict | None = None) -> dict:
    """results.json for a submission the grader failed on as a whole: 0 points in every
    function, a message for the student, the error itself in ``extra_data`` for the TA
    (and so that a rerun grades it again; see `batch.reusable_results`)."""
    shown = ("The autograder could not grade this submission (an error in the grader, not necessarily in "
             "your code). Your course staff can see the details; please tell them.")
    return json_safe({
        "score": 0.0,
        "execution_time": 0,
        "output": shown,
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [{"name": f"{function}: not graded (grader error)", "score": 0.0, "max_score": float(worth),
                   "status": "failed", "output": shown, "visibility": "visible", "tags": [function]}
                  for function, worth in points.items()],
        "extra_data": {"student": student, "metadata": metadata or {}, "grader_error": message},
    })


def feedback_markdown(result: SubmissionResult) -> str:
    out = [f"# Feedback for {md_inline(result.student)}: {result.score:g} / {result.max_score:g}", ""]
    problem = _import_problem(result)
    if problem:  # said once: the error in bold, then where it happened (if known)
        first, _, where = problem.partition("\n")
        out += ["**" + md_inline(first, 1000) + "**", ""]
        if where.strip():
            out += [*md_code_block(where), ""]
    shown = _shown_tests(result)
    for function, (score, maximum) in result.by_function().items():
        failing = [t for t in shown if t["function"] == function and t["status"] != "passed"]
        mark = "✅" if not failing else "❌"
        out += [f"## {mark} `{function}`: {score:g} / {maximum:g}", ""]
        for test in failing:
            out += [f"- **{md_inline(test['name'])}** ({test['score']:g} / {test['max_score']:g})", "",
                    *md_code_block(test["output"], "  "), ""]
        if not failing:
            out += ["All tests passed.", ""]
    for name, text in _printed(result).items():
        out += [f"## What your code printed ({md_inline(name)})", "", *md_code_block(text), ""]
    out += ["---", md_inline("Model " + _provenance(result.metadata) + ".", 1000)]
    return clean_text("\n".join(out) + "\n")


def grader_error_markdown(student: str) -> str:
    """feedback.md for a submission the grader failed on as a whole."""
    return (f"# Feedback for {md_inline(student)}: not graded\n\n"
            "The autograder could not grade this submission (an error in the grader, not necessarily in your code). "
            "Your course staff can see the details; please tell them.\n")


# -- the terminal -------------------------------------------------------------------------------


def _markup(text, width: int = 10_000) -> str:
    """Student text for rich's console: markup escaped, encodable."""
    return escape(clean_text(text)[:width])


def print_table(result: SubmissionResult, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"{_markup(result.student, 200)}: {result.score:g} / {result.max_score:g}")
    table.add_column("function")
    table.add_column("points", justify="right")
    table.add_column("what failed")
    for function, (score, maximum) in result.by_function().items():
        failing: dict[str, int] = {}
        for test in result.tests:
            if test.function == function and test.status != "passed":
                title = test.name.split(" [")[0]
                failing[title] = failing.get(title, 0) + 1
        shown = "\n".join(_markup(f"{title} (×{count})" if count > 1 else title) for title, count in failing.items())
        style = "green" if not failing else ("red" if score == 0 else "yellow")
        table.add_row(function, f"[{style}]{score:g} / {maximum:g}[/]", shown)
    console.print(table)
    problem = _import_problem(result)
    if problem:
        console.print(f"[red]{_markup(problem)}[/]")


def is_grader_error(row: dict) -> bool:
    return str(row.get("status", "")).startswith(GRADER_ERROR)


def models_line(rows: list[dict]) -> str:
    """Which model (revision, library versions) graded these rows, for above the class table."""
    seen: dict[tuple, int] = {}
    for row in rows:
        if row.get("model"):
            key = tuple(str(row.get(c) or "?") for c in ("model", "model_revision", "torch", "transformers"))
            seen[key] = seen.get(key, 0) + 1
    if not seen:
        return "Model: unknown (no graded submission)"
    texts = [f"{m} (revision {r}; torch {t}, transformers {x})" for m, r, t, x in seen]
    if len(seen) == 1:
        return f"Model: {texts[0]}"
    return "Models differ between students (rerun with --regrade for one model): " + "; ".join(
        f"{text}: {count} students" for text, count in zip(texts, seen.values()))


def print_class_table(rows: list[dict], points: dict, console: Console | None = None) -> None:
    """The class at a glance: which model graded it, a row per student, a column per
    function of `points` (`Assignment.points`), and who hit a grader error."""
    console = console or Console()
    line = models_line(rows)
    console.print(f"[yellow]{escape(line)}[/]" if line.startswith("Models differ") else escape(line))
    table = Table(title="grades")
    table.add_column("student", overflow="fold")
    table.add_column("total", justify="right")
    for function in points:
        table.add_column(f"{function.replace('_', ' ')}\n/{points[function]:g}", justify="right", overflow="fold")
    notes = any(row.get("status", "graded") != "graded" for row in rows)
    if notes:  # a column only when some student's status says more than "graded"
        table.add_column("status", overflow="fold")
    for row in sorted(rows, key=lambda r: str(r.get("student", ""))):
        student, status = _markup(row.get("student", ""), 200), _markup(row.get("status", ""), 200)
        status_cell = [("" if status == "graded" else f"[red]{status}[/]" if is_grader_error(row) else status)] if notes else []
        if row.get("total") in ("", None):
            table.add_row(student, "", *("" for _ in points), *status_cell)
            continue
        cells = []
        for function in points:
            value = _number(row.get(function))
            cells.append(f"{value:g}" if value == points[function] else f"[yellow]{value:g}[/]")
        total = f"{_number(row.get('total')):.2f}"
        table.add_row(student, f"[red]{total}[/]" if is_grader_error(row) else total, *cells, *status_cell)
    console.print(table)
    errors = [str(row.get("student")) for row in rows if is_grader_error(row)]
    if errors:
        console.print(f"[red bold]{len(errors)} of {len(rows)} students hit a grader error (their grades are not "
                      f"trustworthy): {_markup(', '.join(errors), 2000)}. Details: <student>/grader-error.txt in the "
                      f"output folder; a rerun grades them again.[/]")


# -- files ------------------------------------------------------------------------------------


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically and readable by its owner only: a reader sees the
    old file or the new one, never half of one; on any failure the old file stays and no
    temporary file is left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # Owner-only: reports hold grades and feedback, which no student's code may read.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with open(fd, "wb", closefd=True) as handle:
            handle.write(data)
            handle.flush()
            with contextlib.suppress(OSError):  # some filesystems cannot; the rename stays atomic
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_json(path: Path, data: dict) -> None:
    """Write atomically, so an interrupted batch never leaves half a results file; any data
    (surrogates, NaN, odd types) becomes valid JSON (see `json_safe`)."""
    text = json.dumps(json_safe(data), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


def write_text(path: Path, text: str) -> None:
    write_bytes_atomic(path, clean_text(text).encode("utf-8"))


def _csv_cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return json_safe(value) if isinstance(value, int) else (value if math.isfinite(value) else "")
    return re.sub(r"[\x00-\x1f\x7f\u2028\u2029]+", " ", clean_text(value))  # one line per student


def write_grades_csv(path: Path, rows: list[dict], points: dict) -> None:
    """One row per student: total, one column per contract function of `points`, the
    status, and the model, its revision and the library versions that graded it
    (`grades_columns`)."""
    columns = grades_columns(points)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: str(r.get("student", ""))):
        writer.writerow({column: _csv_cell(row.get(column)) for column in columns})
    write_bytes_atomic(Path(path), buffer.getvalue().encode("utf-8"))


def grades_row(results_json: dict, points: dict) -> dict:
    """A grades.csv row (one column per function of `points`) from a results.json written
    by `gradescope_results` (or `grader_error_results`)."""
    extra = results_json["extra_data"]
    metadata = _get(extra, "metadata", {})
    model, versions = _get(metadata, "model", {}), _get(metadata, "versions", {})
    row = {"student": extra["student"], "total": results_json["score"], "status": "graded",
           "model": _get(model, "name"), "model_revision": _get(model, "revision"), "torch": _get(versions, "torch"),
           "transformers": _get(versions, "transformers"), "graded_at": _get(metadata, "graded_at")}
    for function in points:
        row[function] = round(sum(t["score"] for t in results_json["tests"] if t["tags"][:1] == [function]), 2)
    if _get(extra, "grader_error"):
        row["status"] = f"{GRADER_ERROR}: {brief(extra['grader_error'], 300)}"
    elif _get(extra, "grader_errors"):
        row["status"] = f"{GRADER_ERROR} in {brief(extra['grader_errors'], 20)} tests (their points may be missing)"
    return row
