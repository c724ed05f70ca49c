"""Command line: `python -m autograder {demo,grade,grade-all} ...`."""

from __future__ import annotations

import argparse
import sys

from . import models


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    model_help = (
        f"model to grade with: {models.DEFAULT_MODEL} (default, real weights), {models.TINY_MODEL} (offline), "
        f"{models.SHAPED_MODEL} (offline, real size, benchmarks) or a local folder; "
        f"default: ${models.MODEL_ENV_VAR} or {models.DEFAULT_MODEL}"
    )
    demo = commands.add_parser("demo", help="show the reference solution at work on a model")
    demo.add_argument("--model", help=model_help)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import run_demo

            run_demo(args.model)
            return 0
    except models.ModelUnavailableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
