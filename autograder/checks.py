"""Tolerant comparisons of a submission's answers with the reference's.

Each check returns ``None`` when the answer is acceptable, else a short sentence
saying what is wrong. They are shared by the hidden suites and the project's tests.

Tolerances, and why:

* Probabilities: ``atol = 1e-6`` plus ``rtol = 1e-4``, plus ``4 * E * 2**-24`` where E
  is the largest exponent magnitude involved (|u| ln b for a softmax of base b, |u| / t
  for a temperature). A float32 softmax computed another correct way (log-softmax,
  float64 then cast, scaling before or after subtracting the maximum) differs from
  the reference by a few ulps of each exponent; at scores of 1e4 that is ~1e-3 relative,
  for the model's logits (|u| < 50) far below 1e-4. Real bugs (wrong axis, missing
  max-subtraction, temperature multiplied) are off by orders of magnitude more.
* Nucleus boundary: float32 cumulative sums over 150k tokens drift by ~1e-5 (sorting
  ascending vs descending changes which token seems to cross p). Any nucleus of the
  most likely tokens whose float64 mass is within `NUCLEUS_MASS_TOL` of the exact
  boundary is accepted; so are ties, in any order.
"""

from __future__ import annotations

import torch

PROB_ATOL = 1e-6
PROB_RTOL = 1e-4
NUCLEUS_MASS_TOL = 1e-4


def nucleus_size_range(probs: torch.Tensor, p: float, tol: float = NUCLEUS_MASS_TOL) -> tuple[int, int]:
    """The smallest and largest nucleus sizes acceptable for `probs` and `p`.

    Exact answer: the smallest k whose top-k mass (in float64) is >= p. Accepted: any k
    that is exact for some p' in [p - tol, p + tol] (clipped to (0, 1]).
    """
    sorted_probs = torch.sort(probs.double(), descending=True).values
    mass_before = torch.cumsum(sorted_probs, 0) - sorted_probs

    def size(target: float) -> int:
        if target >= 1:
            return int((sorted_probs > 0).sum()) or 1
        return max(1, int((mass_before < target).sum()))

    low = size(max(p - tol, 1e-12))
    high = size(min(p + tol, 1.0)) if p < 1 else size(1.0)
    return low, max(high, low)


def exponent_rtol(largest_exponent: float) -> float:
    """Relative slack for float32 rounding of exponents as large as `largest_exponent`."""
    return PROB_RTOL + 4 * abs(largest_exponent) * 2.0**-24


def check_distribution(actual: torch.Tensor, expected: torch.Tensor, largest_exponent: float = 0.0) -> str | None:
    """Same shape, finite, and close to `expected` entry by entry."""
    if tuple(actual.shape) != tuple(expected.shape):
        return f"shape {tuple(actual.shape)} instead of {tuple(expected.shape)}"
    if not torch.isfinite(actual).all():
        return "it contains inf or nan"
    diff = (actual.double() - expected.double()).abs()
    allowed = PROB_ATOL + exponent_rtol(largest_exponent) * expected.double().abs()
    if bool((diff > allowed).any()):
        worst = int(torch.argmax(diff - allowed).item()) if diff.dim() == 1 else None
        where = f" (largest at index {worst}: {float(actual.flatten()[worst]):.6g} vs {float(expected.flatten()[worst]):.6g})" if worst is not None else ""
        return f"values differ by up to {float(diff.max()):.3g}{where}"
    return None


def check_nucleus(probs: torch.Tensor, p: float, actual: torch.Tensor) -> str | None:
    """`actual` is a valid top-p filtering of `probs`: a smallest top set, renormalised."""
    if tuple(actual.shape) != tuple(probs.shape):
        return f"shape {tuple(actual.shape)} instead of {tuple(probs.shape)}"
    if not torch.isfinite(actual).all():
        return "it contains inf or nan"
    kept = actual > 0
    size = int(kept.sum())
    low, high = nucleus_size_range(probs, p)
    if not low <= size <= high:
        exact = low if low == high else f"{low} to {high}"
        return f"it keeps {tokens(size)}, but the nucleus for p={p:g} has {exact}"
    probs64 = probs.double()
    if size < probs.numel() and size > 0:
        # every kept token must be at least as likely as every dropped one (ties allowed)
        if float(probs64[kept].min()) < float(probs64[~kept].max()) - 1e-12:
            return "it keeps a token that is less likely than one it drops"
    expected_values = probs64[kept] / probs64[kept].sum()
    diff = (actual.double()[kept] - expected_values).abs()
    if bool((diff > PROB_ATOL + PROB_RTOL * expected_values).any()):
        total = float(actual.double().sum())
        hint = f" (they sum to {total:.6g}, not 1)" if abs(total - 1) > 1e-4 else ""
        return f"the kept probabilities are not the renormalised originals{hint}"
    return None


def tokens(count: int) -> str:
    """'1 token', '3 tokens'."""
    return f"{count} token{'' if count == 1 else 's'}"
