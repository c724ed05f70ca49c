"""Ctrl-C and SIGTERM stop a command cleanly: what was graded is kept, nothing half-done is recorded.

The grading code treats both as `KeyboardInterrupt` (a batch writes what finished and
re-raises it; a submission being graded is not recorded), and the command exits with
128 + the signal's number, as a shell does: 130 for Ctrl-C, 143 for SIGTERM.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable


class Stopped(KeyboardInterrupt):
    """SIGTERM (a scheduler, `kill`), raised where the grader was, like Ctrl-C's KeyboardInterrupt."""


def run_stoppable(command: Callable[[], int]) -> int:
    """`command()`'s exit status; 128 + the signal's number if Ctrl-C or SIGTERM stopped it."""
    received: dict[str, int] = {}

    def on_sigterm(signum, frame):
        received["signal"] = signum
        raise Stopped

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return command()
    except KeyboardInterrupt:
        number = received.get("signal", signal.SIGINT)
        print(f"\ninterrupted ({signal.Signals(number).name}): what was graded before is kept, the submission being "
              f"graded was not recorded; run the same command again to go on", file=sys.stderr)
        return 128 + number
    finally:
        signal.signal(signal.SIGTERM, previous)
