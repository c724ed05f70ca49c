"""A correct solution gets 100 every time on an oversubscribed machine (the short version
of `python -m autograder.flakiness`)."""

from __future__ import annotations

import os

from autograder.flakiness import grade_reference


def test_the_reference_gets_100_every_time_under_cpu_oversubscription():
    busy = 2 * (os.cpu_count() or 1) + 1  # more busy processes than cores
    runs = grade_reference("tiny-qwen3", runs=3, busy=busy, report=lambda line: None)
    assert [(run.score, run.problems) for run in runs] == [(100, [])] * 3
