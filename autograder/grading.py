"""The grading engine: run the hidden suite against one submission, collect points.

One `Grader` per batch: it starts the model process once, keeps a trusted worker that
runs the reference (for everything that needs the model) and grades submissions one
after another. For each submission, a fresh worker imports the student's
`decoding.py`; pytest runs the hidden suite in this process and every call into
student code crosses to that worker (see `sandbox`). Nothing the student's code does
can reach this process's memory, the reference, or another student's worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from .assignment import Assignment, load as load_assignment
from .feedback import Mismatch, abbreviate, call_text
from .hidden_inputs import HiddenInputs
from .reference_store import ReferenceStore, fingerprint, store_dir
from .sandbox import cgroup, scratch, wire
from .sandbox.client import GraderFailure, Limits, StudentError, Worker, WorkerFailure, WorkerTimeout, Zygote
from .sandbox.memory import release_free_memory
from .sandbox.scripted import Script
from .version import grader_version, suite_digest
from .submission_file import SubmissionFileError, read_submission_bytes

# Groups of hidden tests (the `grades` marker's `group`): "public" ones mirror the public
# tests on fixed inputs; "hidden" ones draw their inputs per submission (`hidden_inputs`).
# Gradescope shows each group at the level the bundle sets (`report.DEFAULT_VISIBILITY`).
GROUPS = ("public", "hidden")


# Bounds on a helper call the grading process answers (see `Grader.reference_helper`):
# far above what a decoding loop asks (one row of Qwen3's 151,936 logits, a few stops),
# small enough that no answer costs this process more than a fraction of a second.
ROWS_PER_REPLY = 32  # logits rows per reply of the reference worker (0.6 MB each at Qwen3's vocabulary)
HELPER_LIMITS = {"elements": 1 << 22, "rows": 64, "chars": 1 << 16, "items": 256}
# What one test's message may hold (a student's answer is shown abbreviated; this bounds
# everything else, e.g. a text the student returned): the reports stay small.
MAX_TEST_OUTPUT_CHARS = 6000


def _oversized(values: list) -> str | None:
    """What in `values` (plain data decoded from a worker) exceeds `HELPER_LIMITS`."""
    elements = chars = 0
    pending = list(values)
    while pending:
        value = pending.pop()
        if isinstance(value, torch.Tensor):
            elements += value.numel()
        elif isinstance(value, str):
            chars += len(value)
        elif isinstance(value, (list, tuple, dict)):
            items = list(value.values()) if isinstance(value, dict) else list(value)
            if len(items) > HELPER_LIMITS["items"]:
                return f"a list of {len(items):,} items"
            pending += items
    if elements > HELPER_LIMITS["elements"]:
        return f"tensors of {elements:,} elements"
    if chars > HELPER_LIMITS["chars"]:
        return f"strings of {chars:,} characters"
    return None


def _stand_in_note(args: tuple, error: StudentError) -> str:
    """Why an attribute the real model has may be missing: the test passed a stand-in."""
    stand_in = any(isinstance(a, (wire.Frozen, wire.EosAfter)) or (isinstance(a, wire.Ref) and a not in (wire.MODEL, wire.TOKENIZER))
                   for a in args)
    if not stand_in or error.type_name != "AttributeError":
        return ""
    return ("\nNote: this test passes a stand-in for the model (so that it can control the logits). It "
            "behaves like the real model where the contract's loop touches it: `model(input_ids)` "
            "(with attention_mask, past_key_values, use_cache, ...) returning `.logits`, `model.config`, "
            "`model.device`, `model.parameters()`. It has no `generate`: write the decoding loop yourself.")


class NotGradable(AssertionError):
    """The function under test cannot be called at all (import failed, function missing)."""


class StudentFailed(AssertionError):
    """A call into the submission raised, crashed or ran out of time."""


@dataclass
class TestResult:
    name: str
    function: str
    max_score: float
    score: float = 0.0
    status: str = "failed"
    output: str = ""
    seconds: float = 0.0
    kind: str = "substantive"  # or scoring.CHECK: pays only with the function's substantive tests
    group: str = "hidden"  # see GROUPS


@dataclass
class SubmissionResult:
    student: str
    submission: str
    tests: list[TestResult]
    metadata: dict
    import_report: dict
    printed: dict = field(default_factory=dict)
    internal_errors: list[str] = field(default_factory=list)
    execution_time: float = 0.0
    points: dict = field(default_factory=dict)  # the assignment's points per function (`Assignment.points`)
    assignment: str = ""  # its name

    @property
    def score(self) -> float:
        return round(sum(t.score for t in self.tests), 2)  # tests hold whole cents (`scoring.round_points`)

    @property
    def max_score(self) -> float:
        return round(sum(t.max_score for t in self.tests), 2)

    def by_function(self) -> dict[str, tuple[float, float]]:
        totals = {name: [0.0, 0.0] for name in self.points}
        for test in self.tests:
            totals[test.function][0] += test.score
            totals[test.function][1] += test.max_score
        return {name: (round(s, 2), round(m, 2)) for name, (s, m) in totals.items()}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"score": self.score, "max_score": self.max_score}


class Grader:
    """Grades submissions one after another with one loaded model."""

    def __init__(self, model_name: str, limits: Limits | None = None, *, work_dir: Path | None = None,
                 reuse_reference: bool = True, inputs_seed: int | None = None,
                 assignment: "str | Path | Assignment | None" = None, own_store: Path | None = None):
        """`reuse_reference`: keep the reference's answers and logits on disk for later
        batches, and serve students' model calls from those logits where they ask for
        exactly the same token sequences (see `sandbox.memo`). False computes everything
        afresh, in memory only: the same grades, slower. `inputs_seed`: draw every
        submission's hidden inputs from this seed instead of the one derived from the
        student and the file (to reproduce a report; see `hidden_inputs`). `assignment`:
        what to grade (an `Assignment`, a name or a folder; default `assignment.DEFAULT`).
        `own_store`: a folder for the reference answers this grader computes itself (a
        shard's); the class's store (`store_dir`, written by `prepare`) is then only read,
        and `store_note` says which was found."""
        import torch
        from transformers import AutoTokenizer

        from .models import tokenizer_load_kwargs

        # This process only coordinates and runs the small pure reference helpers; its
        # own thread pool would compete with the worker for the cores.
        torch.set_num_threads(1)
        self.assignment = load_assignment(assignment)
        self.limits = limits or Limits()
        self.model_name = model_name
        self.inputs_seed = inputs_seed
        self.zygote = Zygote(model_name)
        self.model = self.zygote.model
        self.versions = self.zygote.versions
        self.reference = self.assignment.load_reference()
        self.tokenizer = AutoTokenizer.from_pretrained(self.model["path"], **tokenizer_load_kwargs())
        scratch.remove_stale()  # what a killed grader left behind
        cgroup.remove_stale()
        self._work_dir = Path(work_dir or scratch.make("grader"))
        # Folders student code must not see besides the project's own (grading output,
        # other students' submissions); batch grading adds its folders here.
        self.hidden_paths: list[Path] = [self._work_dir]
        self._reference_worker: Worker | None = None
        self.reuse_reference = reuse_reference
        self.last_reference_seconds = 0.0
        self.store_note = "reference answers computed afresh, in memory only"
        if not reuse_reference:
            self.store = ReferenceStore(None)
        else:
            name = f"{fingerprint(self.assignment, self.model['revision'], self.versions)}.pt"
            shared = store_dir() / name
            self.hidden_paths.append(shared.parent)  # it holds the hidden tests' answers
            if own_store is None:
                shared.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                self.store = ReferenceStore(shared)
                self.store_note = f"reference answers: {shared}"
            else:
                Path(own_store).mkdir(parents=True, exist_ok=True, mode=0o700)
                self.hidden_paths.append(Path(own_store).resolve())
                found = shared.is_file()
                self.store = ReferenceStore(Path(own_store) / name, shared=shared if found else None)
                self.store_note = (f"reference answers: the prepared store {shared} (read-only)" if found else
                                   f"no prepared reference answers in {shared.parent} (`python -m autograder prepare` "
                                   f"computes them once for the class): this shard computes its own, in {own_store}")

    # -- the reference, for everything that needs the model -------------------------

    def reference_worker(self) -> Worker:
        if self._reference_worker is None or not self._reference_worker.alive:
            self._reference_worker = Worker(
                self.zygote, self.assignment.reference_path, self._work_dir / "reference",
                limits=Limits(test_seconds=3600, submission_seconds=float("inf"), import_seconds=120, memory_bytes=0),
                trusted=True, assignment=self.assignment,
            )
            report = self._reference_worker.start()
            if not report.get("ok"):
                raise RuntimeError(f"the reference solution does not import: {report}")
        return self._reference_worker

    def reference_call(self, function: str, *args, seed: int | None = None, **kwargs):
        """The reference's answer (computed once per batch for the same call); how long it
        took the reference is left in `last_reference_seconds`."""
        key = self._call_key(function, args, kwargs, seed)
        if key not in self.store.answers:
            worker = self.reference_worker()
            started = time.perf_counter()
            try:
                value = worker.call(function, *args, seed=seed, **kwargs)
            except WorkerFailure as error:
                raise GraderFailure(f"the reference failed on {call_text(function, args, kwargs)}: {error}") from None
            if worker.last_recorded:
                self.store.add_rows(worker.last_recorded["prefixes"], worker.last_recorded["rows"])
                worker.last_recorded = None
            self.store.add_answer(key, value, time.perf_counter() - started)
        self.last_reference_seconds = self.store.seconds.get(key, 0.0)
        return self.store.answers[key]

    def derived_answer(self, name: str, parts, compute):
        """A value the hidden suite derives from the reference and the model alone (never
        from the student: e.g. which seed makes a sampling test sharp), kept in the store
        beside the reference's answers so `compute()` runs once per store, not once per
        submission. The key holds the suite's own digest: editing how the suite derives
        the value derives it afresh."""
        key = "derived:" + hashlib.sha256(json.dumps([name, parts, suite_digest(self.assignment)]).encode()).hexdigest()
        if key not in self.store.answers:
            started = time.perf_counter()
            self.store.add_answer(key, compute(), time.perf_counter() - started)
        return self.store.answers[key]

    @staticmethod
    def _call_key(function: str, args, kwargs: dict, seed: int | None) -> str:
        blobs: list[bytes] = []
        tree = wire.encode({"args": list(args), "kwargs": kwargs}, blobs)
        digest = hashlib.sha256(json.dumps([function, seed, tree]).encode())
        for blob in blobs:
            digest.update(blob)
        return digest.hexdigest()

    def logits(self, token_ids: list[int]):
        """The model's logits after every prefix of `token_ids`, shape (len, vocab)."""
        known = self.store.logits(token_ids)
        if known is not None:
            return known
        try:
            # At most ROWS_PER_REPLY rows per reply: a few-shot prompt's 115 rows of
            # Qwen3's vocabulary (70 MB) would not fit one message (`wire.MAX_FRAME_BYTES`).
            logits = torch.cat([self.reference_worker().logits(token_ids[: start + ROWS_PER_REPLY], start=start)
                                for start in range(0, len(token_ids), ROWS_PER_REPLY)])
        except (OSError, wire.WireError, TimeoutError, KeyError) as error:
            raise GraderFailure(f"the reference worker failed computing logits: {error}") from None
        self.store.add_rows([token_ids[: i + 1] for i in range(len(token_ids))], logits)
        return logits

    def reference_helper(self, function: str, args: list, kwargs: dict):
        """Answers a student's call of a swapped-out helper, with the reference's code.

        This runs in the grading process, outside the per-call time limit, so what it
        accepts is bounded (`HELPER_LIMITS`): far above anything a decoding loop asks,
        far below what could stall a batch. `top_p_filter` also takes a leading batch
        dimension, as a student's own may: a loop that keeps `logits[:, -1, :]` is
        correct, and must not fail only because the reference's helper is 1-D."""
        if function not in self.assignment.helpers:
            raise ValueError(f"{function} is not a helper")
        problem = _oversized(list(args) + list(kwargs.values()))
        if problem:
            raise ValueError(f"{function} was called with {problem}; the grader answers helper calls up to "
                             f"{HELPER_LIMITS['elements']:,} tensor elements, {HELPER_LIMITS['chars']:,} characters "
                             f"and {HELPER_LIMITS['items']:,} list items")
        helper = getattr(self.reference, function)
        if function == "top_p_filter" and args and hasattr(args[0], "dim") and args[0].dim() > 1:
            probs = args[0]
            count = probs.numel() // max(probs.shape[-1], 1)
            if count > HELPER_LIMITS["rows"]:
                raise ValueError(f"top_p_filter was called with {count:,} rows; the grader answers helper calls of up to "
                                 f"{HELPER_LIMITS['rows']} rows")
            rows = [helper(row, *args[1:], **kwargs) for row in probs.reshape(-1, probs.shape[-1])]
            return torch.stack(rows).reshape(probs.shape)
        return helper(*args, **kwargs)

    # -- one submission ---------------------------------------------------------------

    def metadata(self) -> dict:
        return {
            "assignment": self.assignment.name,
            "submission_file": self.assignment.submission_file,
            "model": self.model,
            "versions": self.versions,
            "grader": grader_version(self.assignment),
            "limits": dataclasses.asdict(self.limits),
            "graded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }

    def _ensure_zygote(self) -> None:
        """Restart the model process if something (a submission, the OOM killer) ended it."""
        if self.zygote.process.poll() is None:
            return
        self.zygote.close()
        if self._reference_worker is not None:
            self._reference_worker.close()
            self._reference_worker = None
        self.zygote = Zygote(self.model_name)

    def grade(self, submission_dir: str | Path, student: str | None = None, *,
              every_variant: int | None = None) -> SubmissionResult:
        """Grade the submission file (e.g. decoding.py) in `submission_dir` as `student`'s (by default the folder's
        name; with the file it decides the hidden inputs). `every_variant`: give every
        hidden test that variant instead of drawing one (see `prepare`)."""
        self._ensure_zygote()
        submission_dir = Path(submission_dir)
        student = student or submission_dir.name
        started = time.monotonic()
        folder = Path(tempfile.mkdtemp(prefix="submission-", dir=self._work_dir))
        worker = Worker(self.zygote, folder / self.assignment.submission_file, folder / "worker", limits=self.limits,
                        assignment=self.assignment,
                        helper=self.reference_helper, hidden_paths=tuple(self.hidden_paths),
                        memo=self.store.row if self.reuse_reference else None)
        import_report: dict = {}
        source = b""
        try:
            try:
                # The worker imports a copy the grader made: it never opens a path the student
                # chose (a symlink to the reference, a FIFO, a huge file) with the grader's rights.
                source = read_submission_bytes(submission_dir / self.assignment.submission_file)
            except SubmissionFileError as error:
                import_report = {"ok": False, "error": {"type": "SubmissionFileError", "message": str(error)}}
            else:
                worker.module_path.write_bytes(source)
                import_report = worker.start()
            inputs = HiddenInputs.for_submission(self.assignment.name, student, source, self.inputs_seed)
            inputs.every_variant = every_variant
            session = Session(self, worker, import_report, inputs)
            _run_suite(session)
            if session.grader_failure is not None:
                raise session.grader_failure
        finally:
            worker.close()
            self.store.save()  # what the reference computed survives a crash later in the batch
            release_free_memory()
        result = SubmissionResult(
            student=student,
            submission=str(submission_dir),
            tests=finished_tests(session),
            metadata=self.metadata() | {"isolation": import_report.get("isolation", {}), "hidden_inputs": inputs.record()},
            import_report=import_report,
            printed=worker.output(),
            internal_errors=session.internal_errors,
            execution_time=round(time.monotonic() - started, 2),
            points=dict(self.assignment.points),
            assignment=self.assignment.name,
        )
        shutil.rmtree(folder, ignore_errors=True)
        return result

    def prepare(self, on_variant=None) -> list[SubmissionResult]:
        """Grade the reference solution on every variant of the hidden tests: this computes
        (and, with `reuse_reference`, stores) the reference's answers for every input a
        submission can draw, so a batch after it asks the reference for nothing, and checks
        that the reference earns full marks on each variant (a variant where it does not
        is a bug in the suite, unfair to every student who draws it).
        `on_variant(index, count, result)` is called after each."""
        results: list[SubmissionResult] = []
        count = 1
        while len(results) < count:
            result = self.grade(self.assignment.reference_path.parent, student="reference", every_variant=len(results))
            count = max(count, int(result.metadata["hidden_inputs"].get("variants") or 1))
            results.append(result)
            if on_variant is not None:
                on_variant(len(results) - 1, count, result)
        return results

    def close(self) -> None:
        if self._reference_worker is not None:
            self._reference_worker.close()
        self.zygote.close()
        shutil.rmtree(self._work_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Session:
    """What the hidden suite sees while grading one submission."""

    def __init__(self, grader: Grader, worker: Worker, import_report: dict, inputs: HiddenInputs):
        self.grader = grader
        self.worker = worker
        self.import_report = import_report
        self.tokenizer = grader.tokenizer
        self.reference = grader.reference
        self.inputs = inputs  # the hidden tests draw prompts, seeds and lengths from it
        self.model_name = grader.model["name"]
        self.results: list[TestResult] = []
        self.internal_errors: list[str] = []
        self.grader_failure: GraderFailure | None = None  # set when the grader's side broke: no grade
        self.interrupted = False  # pytest saw a Ctrl-C (or SIGTERM)
        self.timed_out: dict[str, str] = {}  # function -> how its first timeout went
        self._reference_seconds = 0.0  # what the current test's reference calls took

    def begin_test(self) -> None:
        self._reference_seconds = 0.0

    def _call_seconds(self) -> float | None:
        """This call's limit: it follows the reference's time for the same test (a test
        that asked the reference nothing gets the floor: its calls are pure helpers)."""
        limits = getattr(self.grader, "limits", None)
        return limits.call_limit(self._reference_seconds) if limits is not None else None

    def _call(self, function: str, args, kwargs, seed: int | None):
        try:
            return self.worker.call(function, *args, seed=seed, swap=self.grader.assignment.swapped_helpers(function),
                                    seconds=self._call_seconds(), **kwargs)
        except WorkerTimeout as error:
            self.timed_out.setdefault(function, str(error))
            raise

    def _ensure_callable(self, function: str) -> None:
        if function in self.timed_out:
            raise StudentFailed(f"Not run: an earlier test of {function} {self.timed_out[function]}, so its remaining "
                                f"tests were skipped (0 points) to keep grading short. Make {function} finish in time "
                                f"on the earlier test first.")
        report = self.import_report
        if not report.get("ok"):  # (the error itself is said once, at the top of the report)
            raise NotGradable(f"Not run: {self.grader.assignment.submission_file} could not be imported (the error is at "
                              f"the top of this report).")
        if function in report.get("missing", []):
            raise NotGradable(f"Not run: {self.grader.assignment.submission_file} defines no function named {function} (check the spelling and the "
                              f"indentation).")
        if not self.worker.alive:
            report = self.worker.start()  # a crash or timeout earlier costs only the tests it hit
            if not report.get("ok"):
                error = report.get("error") or {}
                raise StudentFailed(f"{function} could not be tested: after an earlier crash or timeout, your code "
                                    f"could not be started again ({error.get('type')}: {error.get('message')})")

    def student(self, function: str, *args, seed: int | None = None, **kwargs):
        """Call the submission's `function`, with the helpers `Assignment.swapped_helpers`
        names answered by the reference."""
        self._ensure_callable(function)
        try:
            return self._call(function, args, kwargs, seed)
        except StudentError as error:
            where = f"\n{error.traceback}" if error.traceback else ""
            raise StudentFailed(f"Called:   {call_text(function, args, kwargs)}\n"
                                f"Your code raised {error.type_name}: {error.message}{where}"
                                f"{_stand_in_note(args, error)}") from None
        except WorkerFailure as error:
            raise StudentFailed(f"Called:   {call_text(function, args, kwargs)}\nYour code {error}") from None

    def expect_value_error(self, function: str, *args, **kwargs) -> None:
        """The call must raise ValueError (the contract's error for bad arguments)."""
        called = call_text(function, args, kwargs)
        self._ensure_callable(function)
        try:
            value = self._call(function, args, kwargs, None)
        except StudentError as error:
            if error.type_name == "ValueError":
                return
            raise Mismatch(f"Called:   {called}\nExpected: ValueError\nGot:      {error.type_name}: {error.message}") from None
        except WorkerFailure as error:
            raise StudentFailed(f"Called:   {called}\nYour code {error}") from None
        raise Mismatch(f"Called:   {called}\nExpected: ValueError (the argument is outside the contract's range)\n"
                       f"Got:      it returned {abbreviate(value)} without raising")

    def derived(self, name: str, parts, compute):
        """`Grader.derived_answer`: computed once per store, never from the student's code."""
        return self.grader.derived_answer(name, parts, compute)

    def ref(self, function: str, *args, seed: int | None = None, **kwargs):
        value = self.grader.reference_call(function, *args, seed=seed, **kwargs)
        self._reference_seconds += getattr(self.grader, "last_reference_seconds", 0.0)
        return value

    @contextlib.contextmanager
    def scripted(self, prompt: str, continuation: list[int]):
        """While open, `scripted.SCRIPTED_MODEL` passed to `student` continues `prompt`
        with `continuation` (then eos); the yielded `Script`'s `furthest` is the furthest
        new token the submission asked for, known without trusting its process."""
        script = Script(self.prompt_ids(prompt), continuation, self.tokenizer.eos_token_id)
        self.worker.script = script
        try:
            yield script
        finally:
            self.worker.script = None

    def logits(self, token_ids: list[int]):
        return self.grader.logits(token_ids)

    def prompt_ids(self, prompt: str) -> list[int]:
        return self.tokenizer(prompt)["input_ids"]


def finished_tests(session: Session) -> list[TestResult]:
    """The session's results as reported: in contract order, checks paid only with
    substantive work (`scoring.gate_checks`), points in whole cents that add up exactly
    (`scoring.round_points`), messages within `MAX_TEST_OUTPUT_CHARS`."""
    from .scoring import gate_checks, round_points

    contract = session.grader.assignment.contract
    tests = sorted(session.results, key=lambda t: contract.index(t.function))
    gate_checks(tests)
    round_points(tests)
    for test in tests:
        if len(test.output) > MAX_TEST_OUTPUT_CHARS:
            test.output = test.output[:MAX_TEST_OUTPUT_CHARS] + f"\n[... message cut at {MAX_TEST_OUTPUT_CHARS:,} characters]"
    return tests


class GradingPlugin:
    """Gives each hidden test its share of points and records outcomes with feedback."""

    def __init__(self, session: Session):
        self.session = session
        self._max: dict[str, tuple[str, float, str]] = {}

    def pytest_configure(self, config):
        config._autograder_session = self.session

    def pytest_collectreport(self, report):
        if report.failed:
            self.session.internal_errors.append(f"collecting {report.nodeid}: {report.longrepr}")

    def pytest_keyboard_interrupt(self, excinfo):
        # pytest exits "interrupted" for a Ctrl-C and for a suite that does not collect alike
        # (its `Session.Interrupted` is a KeyboardInterrupt): only the first stops the batch.
        if not excinfo.errisinstance(pytest.Session.Interrupted):
            self.session.interrupted = True

    def pytest_collection_modifyitems(self, session, config, items):
        weights: dict[str, float] = {}
        marks = {}
        for item in items:
            mark = item.get_closest_marker("grades")
            if mark is None:
                raise RuntimeError(f"hidden test {item.nodeid} has no grades() marker")
            function, weight = mark.args[0], float(mark.kwargs.get("weight", 1.0))
            group = mark.kwargs.get("group", "hidden")
            if group not in GROUPS:
                raise RuntimeError(f"hidden test {item.nodeid}: group {group!r} is not one of {GROUPS}")
            marks[item.nodeid] = (function, weight, mark.kwargs.get("kind", "substantive"), group)
            weights[function] = weights.get(function, 0.0) + weight
        for nodeid, (function, weight, kind, group) in marks.items():
            points = self.session.grader.assignment.points
            if function not in points:
                raise RuntimeError(f"hidden test {nodeid} grades {function!r}, which is not in the assignment's "
                                   f"[points] ({', '.join(points)})")
            self._max[nodeid] = (function, points[function] * weight / weights[function], kind, group)

    def pytest_runtest_setup(self, item):
        self.session.begin_test()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if not (report.when == "call" or (report.when == "setup" and not report.passed)):
            return
        function, max_score, kind, group = self._max[item.nodeid]
        result = TestResult(name=_display_name(item), function=function, max_score=max_score, seconds=round(call.duration, 3),
                            kind=kind, group=group)
        if report.passed:
            result.score, result.status = max_score, "passed"
        else:
            result.output = self._message(item, call)
        self.session.results.append(result)

    def _message(self, item, call) -> str:
        error = call.excinfo.value if call.excinfo else None
        if isinstance(error, GraderFailure):  # no grade for this submission: stop here
            self.session.grader_failure = self.session.grader_failure or error
            item.session.shouldstop = f"the grader failed: {error}"
            return f"The grader failed while checking this test ({error}); your TA has the details."
        if isinstance(error, (Mismatch, StudentFailed, NotGradable)):
            return str(error)
        if isinstance(error, AssertionError):
            return str(error) or "the answer is not what the contract asks for"
        # Anything else is the grader's own bug: tell the TA, not the student's screen.
        self.session.internal_errors.append(f"{item.nodeid}: {''.join(traceback.format_exception(error))}")
        return f"The grader failed while checking this test (internal {type(error).__name__}); your TA has the details."


def _display_name(item) -> str:
    doc = (item.function.__doc__ or "").strip().splitlines()
    title = doc[0].rstrip(".") if doc else item.originalname.removeprefix("test_").replace("_", " ")
    params = getattr(item, "callspec", None)
    return f"{title} [{params.id}]" if params else title


# Environment variables through which pytest takes options and plugins from outside its
# command line. Set for a TA's (or CI's) own pytest runs, they would reach the hidden
# suite's run: `PYTEST_ADDOPTS=-v` broke every grade (no terminal reporter to be verbose
# with), `-x` would stop a grade at the first failed test, and an installed plugin such as
# pytest-randomly would reorder and reseed the tests. The suite runs with its own options
# and only the grader's plugin.
PYTEST_ENVIRONMENT = {"PYTEST_ADDOPTS": None, "PYTEST_PLUGINS": None, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def _set_environment(values: dict) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextlib.contextmanager
def _pytest_environment():
    saved = {name: os.environ.get(name) for name in PYTEST_ENVIRONMENT}
    try:
        _set_environment(PYTEST_ENVIRONMENT)
        yield
    finally:
        _set_environment(saved)


def _run_suite(session: Session) -> None:
    plugin = GradingPlugin(session)
    suite = session.grader.assignment.suite_dir
    args = [
        str(suite), "-c", str(suite / "pytest.ini"), "--rootdir", str(suite),
        "-p", "no:cacheprovider", "-p", "no:terminal", "--import-mode=importlib",
    ]
    with _pytest_environment():
        code = pytest.main(args, plugins=[plugin])
    if code == pytest.ExitCode.INTERRUPTED and session.grader_failure is None:
        if getattr(session, "interrupted", False):
            raise KeyboardInterrupt  # pytest caught a Ctrl-C (or SIGTERM): stop, record nothing
        details = "\n".join(session.internal_errors)
        raise RuntimeError(f"the hidden suite in {suite} could not be collected (a grader error: no student is to "
                           f"blame; fix the suite, then `prepare` checks it):\n{details}")
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.INTERRUPTED):
        details = "\n".join(session.internal_errors)
        raise RuntimeError(f"the hidden suite could not run (pytest exit code {int(code)})\n{details}")
