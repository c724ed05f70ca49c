"""The hidden tests' inputs, drawn per submission so that memorised answers are useless.

A student who reads a hidden test's inputs in their feedback (a prompt, a seed, a length)
could hard-code the answer and resubmit. So each hidden test that asks the model comes in
a few variants (the suite's pools: other prompts, seeds, lengths), and each submission
gets one variant of each such test, drawn with a seed derived from the assignment, the
student and the submitted file itself:

    seed = sha256(assignment, student, sha256(decoding.py))  (48 bits)

* two students, or two versions of one student's file, get different inputs: an answer
  copied from one report does not fit the next submission, and hard-coding every
  variant of every test is more work than the assignment;
* a regrade of the same file for the same student draws the same inputs (the report
  records the seed and every draw, so a TA can check), and ``grade --inputs-seed N``
  reproduces any report;
* the expected answers are always computed live by the reference on the drawn inputs.
  A test's variants are few (the suite's `VARIANTS`), so the reference computes each
  once per batch (and keeps it on disk): varying the inputs costs a batch at most
  `VARIANTS` times the reference's work, not once per student.

Every draw is keyed by name (``"sample.global.t=0.7"``), each from its own generator: the
variant a test gets does not depend on which other tests ran, or in what order.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
SEED_BITS = 48  # exact in JSON (and JavaScript) numbers


def derive_seed(assignment: str, student: str, source: bytes) -> int:
    """The inputs seed of one submission: see the module docstring."""
    text = json.dumps([assignment, student, hashlib.sha256(source).hexdigest()])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[: SEED_BITS // 8], "big")


@dataclass
class HiddenInputs:
    """The draws of one submission's grading; `record()` is what reports keep.

    `every_variant`: give variant `every_variant` of every test instead of drawing (to
    compute the reference's answers for all variants ahead of a batch)."""

    seed: int
    derived_from: dict = field(default_factory=dict)  # what the seed came from
    draws: dict = field(default_factory=dict)  # key -> variant index
    every_variant: int | None = None
    most_variants: int = 0  # the most variants any test drawn so far has

    @classmethod
    def for_submission(cls, assignment: str, student: str, source: bytes, seed: int | None = None) -> "HiddenInputs":
        """Inputs for `source` graded as `student`'s; `seed` (e.g. from an earlier report)
        overrides the derived one."""
        if seed is not None:
            return cls(int(seed), {"given": True})
        derived_from = {"assignment": assignment, "student": student, "submission_sha256": hashlib.sha256(source).hexdigest()}
        return cls(derive_seed(assignment, student, source), derived_from)

    def variant(self, key: str, count: int) -> int:
        """Which of a test's `count` variants this submission gets (0 .. count-1)."""
        if count < 1:
            raise ValueError(f"hidden input {key!r}: no variants")
        if self.every_variant is not None:
            index = self.every_variant % count
        else:
            # random.Random seeded with a str hashes it with SHA-512: the same on every
            # machine and Python run, whatever PYTHONHASHSEED is.
            index = random.Random(f"{self.seed}/{key}").randrange(count)
        self.draws[key] = index
        self.most_variants = max(self.most_variants, count)
        return index

    def record(self) -> dict:
        """Plain data for the report: the seed, what it came from, each draw so far."""
        record = {"seed": self.seed, "derived_from": dict(self.derived_from), "draws": dict(sorted(self.draws.items())),
                  "variants": self.most_variants}
        if self.every_variant is not None:
            record["every_variant"] = self.every_variant
        return record
