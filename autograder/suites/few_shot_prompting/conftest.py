"""Fixtures of the hidden suite. Grading only: never released to students.

`grading` is the `autograder.grading.Session` of the submission being graded:
``grading.student(fn, ...)`` calls the student's code in its sandboxed worker,
``grading.ref(fn, ...)`` the reference on the same model, ``grading.reference`` the
reference's pure functions in this process.

Tests ask the reference before the student: the student's model calls along the same
token sequences are then answered from what the reference computed (`sandbox.memo`),
even for the first submission of a batch.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def grading(request):
    return request.config._autograder_session


@pytest.fixture
def tokenizer(grading):
    return grading.tokenizer
