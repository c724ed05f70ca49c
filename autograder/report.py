"""Reports of a graded submission: Gradescope's results.json, Markdown feedback, a terminal
table, and the class's grades.csv."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .grading import POINTS, SubmissionResult

ISOLATION_NOTE = (
    "Student code ran in a separate process forked from the model process, with its own "
    "process group and limits on time, memory and file size; results crossed back as plain data."
)


def isolation_text(result: SubmissionResult) -> str:
    """One sentence on the OS isolation that was in force, for TAs and the record."""
    iso = result.metadata.get("isolation") or {}
    if not iso:
        return ISOLATION_NOTE
    parts = [f"user: {iso.get('user')}", f"network: {iso.get('network')}", f"processes: {iso.get('processes', 'unlimited')}",
             f"hidden folders: {len(iso.get('hidden_paths', []))}"]
    degraded = f" Isolation degraded: {iso['degraded']}." if iso.get("degraded") else ""
    return f"{ISOLATION_NOTE} OS isolation: {'; '.join(parts)}.{degraded}"


def _import_problem(result: SubmissionResult) -> str | None:
    report = result.import_report
    if report.get("ok"):
        missing = report.get("missing") or []
        return f"decoding.py defines no function named: {', '.join(missing)}" if missing else None
    error = report.get("error", {})
    trace = f"\n{error.get('traceback')}" if error.get("traceback") else ""
    return f"decoding.py could not be imported: {error.get('type')}: {error.get('message')}{trace}"


def summary_text(result: SubmissionResult) -> str:
    lines = [f"Score: {result.score:g} / {result.max_score:g}"]
    problem = _import_problem(result)
    if problem:
        lines.append(problem)
    for name, text in result.printed.items():
        if text.strip():
            lines.append(f"Your code printed on {name} (first lines):\n{text}")
    model = result.metadata.get("model", {})
    lines.append(f"Graded with {model.get('name')} (revision {model.get('revision')}); seeds {result.metadata.get('seeds')}.")
    return "\n\n".join(lines)


def gradescope_results(result: SubmissionResult) -> dict:
    """Gradescope's results.json: https://gradescope-autograders.readthedocs.io/en/latest/specs/"""
    return {
        "score": result.score,
        "execution_time": int(round(result.execution_time)),
        "output": summary_text(result),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [
            {
                "name": f"{test.function}: {test.name}",
                "score": test.score,
                "max_score": test.max_score,
                "status": test.status,
                "output": test.output,
                "visibility": "visible",
                "tags": [test.function],
            }
            for test in result.tests
        ],
        "extra_data": {"student": result.student, "metadata": result.metadata, "isolation": isolation_text(result)},
    }


def feedback_markdown(result: SubmissionResult) -> str:
    out = [f"# Feedback for {result.student}: {result.score:g} / {result.max_score:g}", ""]
    problem = _import_problem(result)
    if problem:
        out += ["**" + problem.splitlines()[0] + "**", "", "```", problem, "```", ""]
    for function, (score, maximum) in result.by_function().items():
        failing = [t for t in result.tests if t.function == function and t.status != "passed"]
        mark = "✅" if not failing else "❌"
        out += [f"## {mark} `{function}`: {score:g} / {maximum:g}", ""]
        for test in failing:
            out += [f"- **{test.name}** ({test.score:g} / {test.max_score:.2f})", "", "  ```", *("  " + line for line in test.output.splitlines()), "  ```", ""]
        if not failing:
            out += ["All tests passed.", ""]
    for name, text in result.printed.items():
        if text.strip():
            out += [f"## What your code printed ({name})", "", "```", text, "```", ""]
    model = result.metadata.get("model", {})
    versions = result.metadata.get("versions", {})
    out += ["---", f"Model {model.get('name')} (revision {model.get('revision')}), torch {versions.get('torch')}, "
            f"transformers {versions.get('transformers')}, seeds {result.metadata.get('seeds')}."]
    return "\n".join(out) + "\n"


def print_table(result: SubmissionResult, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"{result.student}: {result.score:g} / {result.max_score:g}")
    table.add_column("function")
    table.add_column("points", justify="right")
    table.add_column("what failed")
    for function, (score, maximum) in result.by_function().items():
        failing: dict[str, int] = {}
        for test in result.tests:
            if test.function == function and test.status != "passed":
                title = test.name.split(" [")[0]
                failing[title] = failing.get(title, 0) + 1
        shown = "\n".join(f"{title} (×{count})" if count > 1 else title for title, count in failing.items())
        style = "green" if not failing else ("red" if score == 0 else "yellow")
        table.add_row(function, f"[{style}]{score:g} / {maximum:g}[/]", shown)
    console.print(table)
    problem = _import_problem(result)
    if problem:
        console.print(f"[red]{problem}[/]")


def print_class_table(rows: list[dict], console: Console | None = None) -> None:
    """The class at a glance: a row per student, a column per function."""
    console = console or Console()
    short = {"softmax": "softmax", "temperature_distribution": "temp", "top_p_filter": "top_p", "greedy_decode": "greedy",
             "sample_decode": "sample", "truncate_at_stop": "stop", "generate_text": "text"}
    table = Table(title="grades")
    table.add_column("student", overflow="fold")
    table.add_column("total", justify="right")
    for function in POINTS:
        table.add_column(f"{short.get(function, function)}\n/{POINTS[function]}", justify="right")
    for row in sorted(rows, key=lambda r: r["student"]):
        if row.get("total") == "":
            table.add_row(row["student"], f"[red]{row.get('status')}[/]", *("" for _ in POINTS))
            continue
        cells = [f"{row[f]:g}" if row[f] == POINTS[f] else f"[yellow]{row[f]:g}[/]" for f in POINTS]
        table.add_row(row["student"], f"{float(row['total']):.2f}", *cells)
    console.print(table)


def write_json(path: Path, data: dict) -> None:
    """Write atomically, so an interrupted batch never leaves half a results file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_grades_csv(path: Path, rows: list[dict]) -> None:
    """One row per student: total and one column per contract function."""
    columns = ["student", "total", *POINTS, "status"]
    temporary = path.with_suffix(".csv.tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in sorted(rows, key=lambda r: r["student"]):
            writer.writerow(row)
    os.replace(temporary, path)


def grades_row(results_json: dict) -> dict:
    """A grades.csv row from a results.json written by `gradescope_results`."""
    row = {"student": results_json["extra_data"]["student"], "total": results_json["score"], "status": "graded"}
    for function in POINTS:
        row[function] = round(sum(t["score"] for t in results_json["tests"] if t["tags"][:1] == [function]), 2)
    return row
