"""Does a correct solution get 100 every time, even on a loaded machine?

Grades the reference solution again and again, each time with a fresh grader (as every
Gradescope submission gets), while more busy processes than the machine has cores
compete for the CPU. Any run below 100 is a grade the grader got wrong::

    python -m autograder.flakiness --runs 16 --model tiny-qwen3     # a TA's check, minutes
    python -m autograder.flakiness --runs 4 --busy 8 --model qwen3-0.6b-shaped

The project's tests run a short version (tests/test_flakiness.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .assignment import load as load_assignment


@dataclass
class Run:
    score: float
    seconds: float
    problems: list[str]  # every test that did not pass, and every grader error


@contextmanager
def busy_processes(count: int):
    """`count` processes that spin on the CPU until the block ends."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
                for _ in range(count)]
    try:
        yield spinners
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def grade_reference(model: str, runs: int, busy: int, limits=None, report=print) -> list[Run]:
    """Grade the reference `runs` times with a fresh `Grader` each, under `busy` spinners."""
    from .grading import Grader

    graded = load_assignment(None)
    folder = Path(tempfile.mkdtemp(prefix="flakiness-"))
    try:
        shutil.copy(graded.reference_path, folder / graded.submission_file)
        results = []
        with busy_processes(busy):
            for number in range(1, runs + 1):
                started = time.monotonic()
                with Grader(model, limits) as grader:
                    result = grader.grade(folder, student="reference")
                problems = [f"{t.function}: {t.name}: {t.output}" for t in result.tests if t.status != "passed"]
                problems += [f"grader error: {error}" for error in result.internal_errors]
                run = Run(result.score, round(time.monotonic() - started, 1), problems)
                results.append(run)
                report(f"run {number}/{runs}: {run.score:g} / 100 in {run.seconds:g} s" + "".join(f"\n  {p[:500]}" for p in problems))
        return results
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.flakiness", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=16, help="gradings of the reference (default %(default)s)")
    parser.add_argument("--busy", type=int, default=2 * (os.cpu_count() or 1),
                        help="busy processes competing for the CPU (default: twice the cores, %(default)s)")
    parser.add_argument("--model", help="model to grade with (default: $AUTOGRADER_MODEL or the real model)")
    args = parser.parse_args(argv)
    from .models import resolve_model_name

    runs = grade_reference(resolve_model_name(args.model), args.runs, args.busy)
    wrong = [run for run in runs if run.score != 100 or run.problems]
    print(f"{len(runs) - len(wrong)} of {len(runs)} runs gave the reference 100 under {args.busy} busy processes "
          f"on {os.cpu_count()} cores")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
