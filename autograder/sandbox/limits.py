"""What one submission may use (no torch here: the command line's --help reads the defaults)."""

from __future__ import annotations

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
    threads: int = 0  # torch threads in the worker; 0 = all cores

    def call_limit(self, reference_seconds: float | None) -> float:
        """Seconds for one call whose test took the reference `reference_seconds` (None:
        unknown, so the full `test_seconds`)."""
        if reference_seconds is None:
            return self.test_seconds
        return min(self.test_seconds, max(self.min_test_seconds, self.reference_factor * reference_seconds))
