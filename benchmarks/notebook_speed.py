"""How long the student notebook takes, cell by cell, with a finished decoding.py.

    python benchmarks/notebook_speed.py [--model NAME] [--solution no-cache|kv-cache] [--threads N]

Copies assignments/basic_prompting/ to a temporary folder, puts a finished decoding.py in
it (default: the plain loop the docstrings describe, re-running the whole sequence at
every step, `tests/submissions/variant_no_cache`; `kv-cache`: the reference, which keeps
the KV cache), executes basic_prompting.ipynb top to bottom in a fresh kernel (nbclient)
and prints the slowest cells and the total. The explorer's cells are among them: one
`Explorer.update` each. Default model: qwen3-0.6b-shaped (the real model's size and cost,
random weights); the numbers are what the student README quotes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENT = REPO / "assignments" / "basic_prompting"
SOLUTIONS = {"no-cache": REPO / "tests" / "submissions" / "variant_no_cache" / "decoding.py",
             "kv-cache": REPO / "solutions" / "basic_prompting" / "decoding.py"}


def _seconds(cell) -> float | None:
    timing = cell.get("metadata", {}).get("execution", {})
    try:
        start = datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return (end - start).total_seconds()


def main(argv: list[str] | None = None) -> int:
    import nbformat
    from nbclient import NotebookClient

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen3-0.6b-shaped", help="model the notebook loads (default %(default)s)")
    parser.add_argument("--solution", choices=sorted(SOLUTIONS), default="no-cache")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads in the kernel (default: all cores)")
    parser.add_argument("--top", type=int, default=12, help="how many of the slowest cells to list")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="notebook-speed-"))
    try:
        folder = work / "basic_prompting"
        shutil.copytree(ASSIGNMENT, folder, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
        shutil.copy(SOLUTIONS[args.solution], folder / "decoding.py")
        nb = nbformat.read(folder / "basic_prompting.ipynb", as_version=4)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(AUTOGRADER_MODEL=args.model, MPLBACKEND="Agg", OMP_NUM_THREADS=str(args.threads))
        # a kernel on this interpreter, whatever "python3" means on this machine
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import AsyncKernelManager

        kernels = work / "kernels" / "notebook-speed"
        kernels.mkdir(parents=True)
        (kernels / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "notebook speed", "language": "python"}))
        km = AsyncKernelManager(kernel_name="notebook-speed", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels.parent)]))
        client = NotebookClient(nb, km=km, timeout=3600, record_timing=True, resources={"metadata": {"path": str(folder)}})
        print(f"running the notebook on {args.model} with the {args.solution} loop, {args.threads} thread(s) ...", flush=True)
        started = time.perf_counter()
        with client.setup_kernel(env=env):
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
                if cell.cell_type == "code":  # as it goes: a long run shows where the time goes
                    print(f"  cell {index}: {_seconds(cell) or 0:.1f} s", flush=True)
        total = time.perf_counter() - started
        timed = [(s, i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and (s := _seconds(cell)) is not None]
        print(f"\n{'cell':>4} {'seconds':>8}  first line")
        for seconds, index, cell in sorted(timed, key=lambda t: -t[0])[: args.top]:
            first = next((line for line in cell.source.splitlines() if line.strip() and not line.startswith("#")), "")
            print(f"{index:>4} {seconds:8.1f}  {first[:70]}")
        print(f"\nnotebook_seconds={total:.0f} cells_seconds={sum(s for s, _, _ in timed):.0f} model={args.model} "
              f"solution={args.solution} threads={args.threads}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
