"""The unoptimised way to grade, as a typical pytest/nbgrader autograder does it.

    python -m pytest autograder/suites/basic_prompting -c autograder/suites/basic_prompting/pytest.ini \\
        -p autograder.naive --submission DIR [--model NAME] [--naive-json FILE] [--assignment NAME]

A fresh process loads the model itself, imports the student's module into the
grading process, computes every reference answer anew and runs the same hidden suite.
No sandbox: use it only on trusted code. It exists as the speed benchmark's baseline
and to check that the sandboxed grader gives identical grades.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .assignment import Assignment, load as load_assignment, load_module
from .grading import GradingPlugin, Session, SubmissionResult, finished_tests
from .hidden_inputs import HiddenInputs
from .sandbox import wire
from .sandbox.client import StudentError
from .sandbox.stubs import ScriptedModel
from .sandbox.worker import _describe_error


class InProcessWorker:
    """`sandbox.client.Worker`'s interface, calling the module directly in this process."""

    def __init__(self, path: Path, model, tokenizer, reference, assignment: Assignment):
        self.path, self.reference, self.assignment = path, reference, assignment
        self.refs = {"model": model, "tokenizer": tokenizer}
        self.calls = 0
        self.module, self.import_report = None, {}
        self.script = None  # see `Session.scripted`
        self.alive = False

    def start(self) -> dict:
        try:
            self.module = load_module(self.path, self.assignment.module_name)
        except BaseException as error:  # noqa: BLE001
            self.import_report = {"ok": False, "error": _describe_error(error, str(self.path))}
            return self.import_report
        missing = [fn for fn in self.assignment.contract if not callable(self.module.__dict__.get(fn))]
        self.originals = {name: self.module.__dict__.get(name) for name in self.assignment.contract}
        self.alive, self.import_report = True, {"ok": True, "missing": missing}
        return self.import_report

    def call(self, function: str, *args, seed: int | None = None, swap: tuple[str, ...] = (),
             seconds: float | None = None, **kwargs):  # a baseline: no time limit

        blobs: list[bytes] = []
        payload = wire.decode(wire.encode({"args": list(args), "kwargs": kwargs}, blobs), blobs, resolve_ref=self._resolve)
        for name, original in self.originals.items():
            self.module.__dict__[name] = getattr(self.reference, name) if name in swap else original
        self.calls += 1  # the same global seeds as the sandbox's worker uses
        torch.manual_seed(seed if seed is not None else 1_000_003 + self.calls)
        try:
            with torch.no_grad():
                value = self.originals[function](*payload["args"], **payload["kwargs"])
        except Exception as error:  # a baseline: BaseExceptions end it, as they would end pytest
            raise StudentError(_describe_error(error, str(self.path))) from None
        blobs = []
        return wire.decode(wire.encode(value, blobs), blobs)

    def _resolve(self, name: str):
        if name == "scripted_model":
            return ScriptedModel(lambda sequence, positions: self.script.next_tokens(sequence, positions), self.refs["model"].config)
        return self.refs[name]

    def output(self) -> dict:
        return {}


class InProcessGrader:
    """What `Session` needs from a `Grader`, with the model and the reference in this process."""

    def __init__(self, model_name: str, assignment: Assignment):
        from .models import load_model_with_info

        self.assignment = assignment
        self.model_obj, self.tokenizer, info = load_model_with_info(model_name)
        self.model = {"name": info.name, "path": info.path, "revision": info.revision}
        self.reference = assignment.load_reference()
        self.worker = InProcessWorker(assignment.reference_path, self.model_obj, self.tokenizer, self.reference, assignment)
        self.worker.module = self.reference
        self.worker.originals = {name: getattr(self.reference, name) for name in assignment.contract}

    def reference_call(self, function: str, *args, seed: int | None = None, **kwargs):
        return self.worker.call(function, *args, seed=seed, **kwargs)

    def logits(self, token_ids: list[int]):
        with torch.no_grad():
            return self.model_obj(input_ids=torch.tensor([token_ids])).logits[0].float()

    def reference_helper(self, function: str, args: list, kwargs: dict):
        return getattr(self.reference, function)(*args, **kwargs)


def pytest_addoption(parser):
    group = parser.getgroup("autograder-naive")
    group.addoption("--submission", help="folder holding the student's file (decoding.py for basic_prompting)")
    group.addoption("--assignment", default=None, help="the assignment (default basic_prompting): a name or a folder")
    group.addoption("--model", default=None, help="model name (default: $AUTOGRADER_MODEL or the real model)")
    group.addoption("--naive-json", default=None, help="write the per-test results here")
    group.addoption("--student", default=None, help="whose submission it is (default: the folder's name); "
                    "with the file, it decides the hidden inputs, as in the sandboxed grader")


def pytest_configure(config):
    from .models import resolve_model_name

    if not config.getoption("--submission"):
        return
    started = time.monotonic()
    assignment = load_assignment(config.getoption("--assignment"))
    grader = InProcessGrader(resolve_model_name(config.getoption("--model")), assignment)
    folder = Path(config.getoption("--submission"))
    path = folder / assignment.submission_file
    worker = InProcessWorker(path, grader.model_obj, grader.tokenizer, grader.reference, assignment)
    source = path.read_bytes() if path.is_file() else b""
    inputs = HiddenInputs.for_submission(assignment.name, config.getoption("--student") or folder.name, source)
    session = Session(grader, worker, worker.start(), inputs)
    plugin = GradingPlugin(session)
    config.pluginmanager.register(plugin, "autograder-naive-grading")
    plugin.pytest_configure(config)
    config._autograder_naive = (session, started, config.getoption("--naive-json"))


def pytest_unconfigure(config):
    state = getattr(config, "_autograder_naive", None)
    if state is None or not state[2]:
        return
    session, started, target = state
    result = SubmissionResult(student="naive", submission="", tests=finished_tests(session), metadata={}, import_report=session.import_report,
                              execution_time=time.monotonic() - started, points=dict(session.grader.assignment.points))
    tests = [{"name": t.name, "function": t.function, "score": t.score, "status": t.status} for t in result.tests]
    Path(target).write_text(json.dumps({"score": result.score, "tests": tests}, indent=1))
