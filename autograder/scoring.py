"""How argument checks and trivial edge cases count: only together with the main tests.

A hidden test marked ``@pytest.mark.grades(function, weight=w, kind=CHECK)`` is one that
code doing none of the function's work can pass: it expects a ValueError, or its answer
is the input, '' / [] or another constant. On its own such a test must not pay, or a
submission that raises or echoes everywhere collects points for nothing.
"""

from __future__ import annotations

CHECK = "check"
SUBSTANTIVE = "substantive"


def gate_checks(results) -> None:
    """Scale every check test's score by how well its function's main tests did.

    Per function, f = (points its substantive tests earned) / (their maximum), 0 when it
    has none; each check test then scores its raw score times f. A passed check that
    loses points this way becomes "partial" (0 < f < 1) or "failed" (f = 0), and its
    output says why. `results` (grading.TestResult objects) is changed in place.
    """
    earned: dict[str, list[float]] = {}
    for test in results:
        if getattr(test, "kind", SUBSTANTIVE) != CHECK:
            earned.setdefault(test.function, [0.0, 0.0])
            earned[test.function][0] += test.score
            earned[test.function][1] += test.max_score
    for test in results:
        if getattr(test, "kind", SUBSTANTIVE) != CHECK:
            continue
        score, maximum = earned.get(test.function, (0.0, 0.0))
        f = min(score / maximum, 1.0) if maximum > 0 else 0.0
        if f >= 1.0:
            continue
        test.score *= f
        if test.status == "passed":
            test.status = "partial" if f > 0 else "failed"
            share = f"{_percent(f)} of their points" if f > 0 else "none of their points"
            test.output = (f"This check passed, but argument checks and edge cases earn their points only together "
                           f"with the function's main tests: it counts {_percent(f)} here because the main tests of "
                           f"{test.function} earned {share}.")


def _percent(f: float) -> str:
    """f as a percentage for a student: whole numbers, but never a rounded 0% or 100%
    (0.4%, 99.6%, <0.1%, >99.9%)."""
    for digits in (0, 1):
        text = f"{100 * f:.{digits}f}"
        if f in (0.0, 1.0) or float(text) not in (0.0, 100.0):
            return text + "%"
    return "<0.1%" if f < 0.5 else ">99.9%"


def round_points(results) -> None:
    """Every test's points in whole cents, so that a function's tests add up exactly to
    its points and the functions to the total (no 0.9782608695652174, no 84.46600000000001).

    A function's maxima are rounded by largest remainder (their cents sum to the
    function's); each score keeps its fraction of its test's maximum, rounded to a cent.
    `results` (grading.TestResult objects) is changed in place."""
    by_function: dict[str, list] = {}
    for test in results:
        by_function.setdefault(test.function, []).append(test)
    for tests in by_function.values():
        exact = [test.max_score * 100 for test in tests]
        cents = [int(value) for value in exact]  # floors (maxima are positive)
        short = round(sum(exact)) - sum(cents)
        for index in sorted(range(len(tests)), key=lambda i: exact[i] - cents[i], reverse=True)[:max(short, 0)]:
            cents[index] += 1
        for test, maximum in zip(tests, cents):
            fraction = min(max(test.score / test.max_score, 0.0), 1.0) if test.max_score else 0.0
            test.max_score = maximum / 100
            test.score = round(maximum * fraction) / 100
