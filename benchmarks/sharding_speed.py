"""Sharding: what K shards cost next to one run, and what 1,000 students would take.

    python benchmarks/sharding_speed.py [--n N] [--shards K] [--quick] [--model NAME]

Grades N submissions (the mix of tests/submissions that grading_speed.py uses), after
one `prepare`, twice in one run: once as one `grade-all`, once as K `grade-all --shard
I/K` processes started side by side on this machine, then merged (the merged grades
must equal the single run's). From each shard's shard.json and wall time it prints:

* fixed cost per shard: process start, model load and store load, i.e. everything
  before its first student (wall time minus the grading time it recorded);
* cost per student: grading time over students, in the single run (one process alone
  on the machine: what a shard costs on a machine of its own) and in the shards;
* projected wall time for 1,000 students on K machines like this one:
  prepare + fixed + ceil(1000 / K) x per-student + merge, from the single run's costs.

What this machine can and cannot show: it has 2 cores, so K shards side by side here
share them: their wall time shows the contention (no faster than one run), not the
speed-up of K machines. The projection assumes what sharding gives on a cluster: each
shard a machine of its own, a shared file system for the store and outputs, no other
contention. It ends with one line:
    one_run_seconds=<a> shards_side_by_side_seconds=<b> fixed_seconds_per_shard=<c> seconds_per_student=<d> projected_1000_students_on_K_machines_minutes=<e>
Default model: qwen3-0.6b-shaped (the real model's size and cost); --quick: tiny-qwen3.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.grading_speed import MIX, SUBMISSIONS  # noqa: E402

PROJECTED_STUDENTS = 1000


def timed(command: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    answer = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    return time.monotonic() - started, answer


def grades_without_time(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [{k: v for k, v in row.items() if k != "graded_at"} for row in csv.DictReader(handle)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=12, help="number of submissions (default 12)")
    parser.add_argument("--shards", type=int, default=3, help="K (default 3)")
    parser.add_argument("--quick", action="store_true", help="tiny-qwen3 instead of the real-size model")
    parser.add_argument("--model", help="model (default: qwen3-0.6b-shaped, or tiny-qwen3 with --quick)")
    args = parser.parse_args(argv)
    model = args.model or ("tiny-qwen3" if args.quick else "qwen3-0.6b-shaped")
    work = Path(tempfile.mkdtemp(prefix="sharding-speed-"))
    env = dict(os.environ, AUTOGRADER_MODEL=model, PYTHONPATH=str(REPO), AUTOGRADER_REFERENCE_STORE=str(work / "store"))
    autograder = [sys.executable, "-m", "autograder"]
    try:
        for i in range(args.n):
            name = MIX[i % len(MIX)]
            shutil.copytree(SUBMISSIONS / name, work / "class" / f"s{i:03d}_{name}")
        print(f"{args.n} submissions, {args.shards} shards, on {model}", flush=True)
        subprocess.run([sys.executable, "-c", "import sys; from autograder.models import load_model_with_info; "
                        "load_model_with_info(sys.argv[1], mapped_weights=True)", model], env=env, cwd=REPO, check=True)
        prepare_s, prepared = timed([*autograder, "prepare", "--model", model], env)
        if prepared.returncode != 0:
            print(prepared.stdout, prepared.stderr)
            return 1
        one_s, one = timed([*autograder, "grade-all", str(work / "class"), "--model", model, "--out", str(work / "one")], env)
        if one.returncode != 0:
            print(one.stdout, one.stderr)
            return 1
        one_grading = sum(json.loads((p / "results.json").read_text())["execution_time"]
                          for p in (work / "one").iterdir() if (p / "results.json").is_file())
        per_student_one = one_grading / args.n
        fixed_one = one_s - one_grading

        started = time.monotonic()
        running = [(i, subprocess.Popen([*autograder, "grade-all", str(work / "class"), "--model", model, "--shard",
                                         f"{i}/{args.shards}", "--out", str(work / "shards" / str(i))],
                                        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
                   for i in range(args.shards)]
        walls = {}
        for i, process in running:
            output, _ = process.communicate()
            walls[i] = time.monotonic() - started
            if process.returncode != 0:
                print(output)
                return 1
        side_by_side_s = time.monotonic() - started
        merge_s, merged = timed([*autograder, "merge", *(str(work / "shards" / str(i)) for i in range(args.shards)),
                                 "--out", str(work / "merged")], env)
        same = merged.returncode == 0 and grades_without_time(work / "merged" / "grades.csv") == grades_without_time(work / "one" / "grades.csv")

        print(f"\n{'':10s} {'students':>8s} {'wall s':>8s} {'load s':>7s} {'fixed s':>8s} {'grading s':>9s} {'s/student':>9s}")
        print(f"{'one run':10s} {args.n:8d} {one_s:8.1f} {'':>7s} {fixed_one:8.1f} {one_grading:9.1f} {per_student_one:9.1f}")
        fixed_shards = []
        for i in range(args.shards):
            manifest = json.loads((work / "shards" / str(i) / "shard.json").read_text())
            count, seconds = len(manifest["students"]), manifest["seconds"]
            fixed = walls[i] - seconds["grading"]
            fixed_shards.append(fixed)
            print(f"{'shard ' + str(i):10s} {count:8d} {walls[i]:8.1f} {seconds['load']:7.1f} {fixed:8.1f} "
                  f"{seconds['grading']:9.1f} {seconds['grading'] / max(count, 1):9.1f}")
        print(f"\nprepare (once per class): {prepare_s:.1f} s; merge: {merge_s:.1f} s; "
              f"merged grades equal the single run's: {'yes' if same else 'NO'}")
        print(f"K={args.shards} shards side by side on {os.cpu_count()} cores: {side_by_side_s:.1f} s vs one run {one_s:.1f} s "
              f"(they share the cores here; on K machines each would run alone)")
        print(f"\nprojected for {PROJECTED_STUDENTS} students (prepare {prepare_s:.0f} s + fixed {fixed_one:.0f} s + "
              f"students x {per_student_one:.1f} s + merge {merge_s:.0f} s), from the single run's costs:")
        projections = {}
        for machines in sorted({1, args.shards, 10, 50}):
            total = prepare_s + fixed_one + math.ceil(PROJECTED_STUDENTS / machines) * per_student_one + merge_s
            projections[machines] = total
            print(f"  {machines:3d} machine(s) like this one: {total / 60:7.1f} min")
        print(f"one_run_seconds={one_s:.1f} shards_side_by_side_seconds={side_by_side_s:.1f} "
              f"fixed_seconds_per_shard={sum(fixed_shards) / len(fixed_shards):.1f} seconds_per_student={per_student_one:.2f} "
              f"projected_1000_students_on_K_machines_minutes={projections[args.shards] / 60:.1f}")
        return 0 if same else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
