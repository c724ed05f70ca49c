"""Class-scale grading speed: our batch grader vs the naive one-process-per-submission way.

    python benchmarks/grading_speed.py [--n N] [--quick] [--model NAME]

Grades N submissions (a mix of correct, buggy and slow-but-correct ones taken from
tests/submissions) twice, in one run:

* ours: `python -m autograder prepare` (the reference's answers for every variant of the
  hidden tests, computed once per course and model, stored on disk), then one
  `python -m autograder grade-all` (model loaded once, workers forked from it, students'
  model calls answered from the stored logits where they match);
* naive: one fresh `python -m pytest` process per submission that loads the model
  itself, imports the student's module and runs the same hidden suite
  (`autograder/naive.py`), the way a typical pytest/nbgrader autograder works.

It checks that both give identical grades for every submission, prints a table, and
ends with one line:
    speedup_vs_naive=<x> speedup_with_prepare=<x'> memory_ratio=<y> suite_seconds=<z> suite_seconds_prepared=<z'>
(speedup_vs_naive: naive time over grade-all's, the store prepared; speedup_with_prepare:
over prepare + grade-all, i.e. a course's very first batch; memory_ratio: peak memory
(PSS) of our whole process tree over one loaded model's; suite_seconds: the hidden suite's
wall time for one correct submission with nothing stored (prepare's first variant: the
reference graded while it computes every answer); suite_seconds_prepared: the same for
the first correct submission of the batch).
Default model: qwen3-0.6b-shaped (the real model's size and cost); --quick: tiny-qwen3.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUBMISSIONS = REPO / "tests" / "submissions"
# correct, buggy, slow-but-correct (re-runs the whole sequence every step) in turn
MIX = ["variant_kv_cache", "top_p_off_by_one", "variant_no_cache", "greedy_ignores_eos", "variant_ascending_sort",
       "temperature_multiplied", "variant_regex_stops", "stop_first_listed", "variant_argmax_over_probs", "sample_uses_argmax"]


def tree_pss_bytes(root_pid: int, parts: dict | None = None) -> int:
    """Proportional set size of a process and all its descendants (shared pages counted
    once); `parts`, if given, gets each process's share: {pid: (bytes, command line)}."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        if parts is not None:
                            with open(f"/proc/{pid}/cmdline", "rb") as command:
                                parts[pid] = (int(line.split()[1]) * 1024, command.read().replace(b"\0", b" ").decode()[:100])
                        break
        except OSError:
            continue
    return total


PEAKS: dict[str, dict] = {}  # command's first words -> its processes' shares at its peak


def run_measured(command: list[str], env: dict) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run `command`; return (seconds, peak PSS of its process tree, result)."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]

    def sample():
        while process.poll() is None:
            parts: dict = {}
            total = tree_pss_bytes(process.pid, parts)
            if total > peak[0]:
                peak[0] = total
                PEAKS[" ".join(command[1:4])] = parts
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    sampler.join()
    return time.monotonic() - started, peak[0], subprocess.CompletedProcess(command, process.returncode, output, "")


def model_memory(model: str, env: dict) -> int:
    """PSS of a process that loaded the model and ran one forward pass (so that every
    weight is resident, however it was loaded)."""
    code = ("import torch\nfrom autograder.models import load_model\nm, t = load_model(%r)\n"
            "with torch.no_grad(): m(torch.tensor([[1, 2, 3]]))\n"
            "print(open('/proc/self/smaps_rollup').read())" % model)
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True)
    return next(int(line.split()[1]) * 1024 for line in result.stdout.splitlines() if line.startswith("Pss:"))


def greedy_vs_generate(model: str, env: dict, tokens: int = 50) -> tuple[float, float]:
    code = f"""
import time, torch
from autograder.models import load_model
from autograder.assignment import load
m, t = load_model({model!r}); r = load("basic_prompting").load_reference()
ids = t("Shakespeare was a great", return_tensors="pt")
m.generate(**ids, do_sample=False, max_new_tokens=2, pad_token_id=t.eos_token_id)
a = time.perf_counter(); g = m.generate(**ids, do_sample=False, max_new_tokens={tokens}, min_new_tokens={tokens}, pad_token_id=t.eos_token_id); b = time.perf_counter()
ours = r.greedy_decode(m, t, "Shakespeare was a great", {tokens}); c = time.perf_counter()
print(b - a, c - b)
"""
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True).stdout
    generate_s, greedy_s = (float(x) for x in out.split()[-2:])
    return generate_s, greedy_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20, help="number of submissions (default 20)")
    parser.add_argument("--quick", action="store_true", help="tiny-qwen3 instead of the real-size model (seconds, for CI)")
    parser.add_argument("--model", help="model to grade with (default: qwen3-0.6b-shaped, or tiny-qwen3 with --quick)")
    args = parser.parse_args(argv)
    model = args.model or ("tiny-qwen3" if args.quick else "qwen3-0.6b-shaped")
    work = Path(tempfile.mkdtemp(prefix="grading-speed-"))
    # A fresh reference store: ours pays for computing the reference answers (prepare), as
    # a course does once per model; every later batch reuses them.
    env = dict(os.environ, AUTOGRADER_MODEL=model, PYTHONPATH=str(REPO), AUTOGRADER_REFERENCE_STORE=str(work / "reference-store"))
    try:
        names = [MIX[i % len(MIX)] for i in range(args.n)]
        for i, name in enumerate(names):
            shutil.copytree(SUBMISSIONS / name, work / "class" / f"s{i:03d}_{name}")
        print(f"{args.n} submissions on {model}", flush=True)
        # Build the model (and the grader's float32 copy of its weights) before measuring:
        # a one-time cost per machine, not part of grading.
        subprocess.run([sys.executable, "-c", "import sys; from autograder.models import load_model_with_info; "
                        "load_model_with_info(sys.argv[1], mapped_weights=True)", model], env=env, cwd=REPO, check=True)

        prepare_s, prepare_peak, prepared = run_measured([sys.executable, "-m", "autograder", "prepare", "--model", model], env)
        if prepared.returncode != 0:
            print(prepared.stdout)
            return 1
        first_variant = next((float(line.rsplit("(", 1)[1].split()[0]) for line in prepared.stdout.splitlines()
                              if line.startswith("variant 1 of")), None)
        ours_s, ours_peak, ours = run_measured([sys.executable, "-m", "autograder", "grade-all", str(work / "class"),
                                                "--model", model, "--out", str(work / "ours"), "--regrade"], env)
        if ours.returncode != 0:
            print(ours.stdout)
            return 1
        naive = {}
        naive_peak = 0
        for folder in sorted((work / "class").iterdir()):
            seconds, peak, result = run_measured([
                sys.executable, "-m", "pytest", "autograder/suites/basic_prompting", "-c", "autograder/suites/basic_prompting/pytest.ini",
                "-p", "autograder.naive", "-p", "no:cacheprovider", "--import-mode=importlib", "-q", "--submission", str(folder),
                "--model", model, "--naive-json", str(work / f"{folder.name}.naive.json")], env)
            naive[folder.name] = (seconds, json.loads((work / f"{folder.name}.naive.json").read_text()))
            naive_peak = max(naive_peak, peak)

        print(f"\n{'submission':34s} {'ours s':>8s} {'naive s':>8s} {'score':>8s}  same grades")
        identical = True
        suite_seconds = None
        for name, (seconds, naive_result) in naive.items():
            ours_result = json.loads((work / "ours" / name / "results.json").read_text())
            ours_tests = sorted((t["name"].split(": ", 1)[1], round(t["score"], 6), t["status"]) for t in ours_result["tests"])
            # (results.json has Gradescope's two statuses: a partly paid test is "failed" there)
            naive_tests = sorted((t["name"], round(t["score"], 6), "passed" if t["status"] == "passed" else "failed")
                                 for t in naive_result["tests"])
            same = ours_tests == naive_tests
            identical &= same
            if suite_seconds is None and "variant_kv_cache" in name:
                suite_seconds = ours_result["execution_time"]
            print(f"{name:34s} {ours_result['execution_time']:8.1f} {seconds:8.1f} {ours_result['score']:8.2f}  {'yes' if same else 'NO'}")
        naive_total = sum(seconds for seconds, _ in naive.values())
        one_model = model_memory(model, env)
        generate_s, greedy_s = greedy_vs_generate(model, env)
        print(f"\ntotal: ours {ours_s:.1f} s (model loaded once; prepare before it: {prepare_s:.1f} s, once per course "
              f"and model), naive {naive_total:.1f} s")
        ours_peak = max(ours_peak, prepare_peak)
        for name in ("-m autograder prepare", "-m autograder grade-all"):
            print(f"at {name}'s peak: " + "; ".join(f"{size / 2**20:.0f} MiB {cmd.split(' -m ')[-1][:40]}"
                                                    for size, cmd in sorted(PEAKS.get(name, {}).values(), reverse=True)))
        print(f"peak memory: ours {ours_peak / 2**30:.2f} GiB, naive {naive_peak / 2**30:.2f} GiB, one loaded model {one_model / 2**30:.2f} GiB")
        print(f"reference greedy_decode vs model.generate, 50 new tokens: {greedy_s:.2f} s vs {generate_s:.2f} s "
              f"(ratio {greedy_s / generate_s:.2f})")
        print(f"grades identical to the unoptimised run for every submission: {'yes' if identical else 'NO'}")
        print(f"speedup_vs_naive={naive_total / ours_s:.2f} speedup_with_prepare={naive_total / (ours_s + prepare_s):.2f} "
              f"memory_ratio={ours_peak / one_model:.2f} suite_seconds={first_variant} suite_seconds_prepared={suite_seconds}")
        return 0 if identical else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
