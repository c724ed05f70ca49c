"""Setup for the public tests (`pytest` in this folder).

The tests use the offline stand-in model `tiny-qwen3` (built in a few seconds on first use,
no download) unless you set AUTOGRADER_MODEL yourself, e.g. to Qwen/Qwen3-0.6B-Base.
This only affects the tests: the notebook still loads the real model by default.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("AUTOGRADER_MODEL", "tiny-qwen3")


def pytest_report_header(config):
    return f"model: {os.environ['AUTOGRADER_MODEL']} (set AUTOGRADER_MODEL to test with another one)"


@pytest.fixture(scope="session")
def model_and_tokenizer():
    import course_model

    return course_model.load_model()


@pytest.fixture(scope="session")
def model(model_and_tokenizer):
    return model_and_tokenizer[0]


@pytest.fixture(scope="session")
def tokenizer(model_and_tokenizer):
    return model_and_tokenizer[1]
