"""What one submission may use (no torch here: the command line's --help reads the defaults)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """What one submission may use. Defaults leave a correct solution on the real
    model (2 cores) far inside them; see the README's "Limits" section."""

    test_seconds: float = 120.0  # one call into the submission, at most
    submission_seconds: float = 420.0  # all calls of one submission together (fits Gradescope's 10 minutes)
    # A call's own limit follows the reference's time for the same test: this many times
    # that, never below `min_test_seconds` nor above `test_seconds` (see `call_limit`).
    reference_factor: float = 20.0
    min_test_seconds: float = 10.0
    import_seconds: float = 30.0
    memory_bytes: int = 6 << 30  # beyond the shared model's pages
    output_bytes: int = 8 << 20  # per stdout/stderr file, and any file it writes
    processes: int = 64  # processes of the sandbox uid at once (where the grader runs as root)
    threads: int = 0  # torch threads in the worker; 0 = every core this process may use (`usable_cpus`)

    def call_limit(self, reference_seconds: float | None) -> float:
        """Seconds for one call whose test took the reference `reference_seconds` (None:
        unknown, so the full `test_seconds`)."""
        if reference_seconds is None:
            return self.test_seconds
        return min(self.test_seconds, max(self.min_test_seconds, self.reference_factor * reference_seconds))


def usable_cpus() -> int:
    """The cores this process may really use: its CPU affinity (what Slurm, taskset or a
    cpuset allow), and no more than a cgroup v2 CPU quota (a Kubernetes CPU limit).
    os.cpu_count() is the whole machine's: on a 64-core node with 4 CPUs allotted, that
    many torch threads would fight over 4 cores and run many times slower."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)
