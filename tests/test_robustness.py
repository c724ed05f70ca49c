"""One submission never crashes a batch, nothing graded is lost, every submission gets a
valid results.json: forged wire frames, hostile strings and numbers in reports, Markdown
injection, grader errors in a batch, and symlinked / FIFO / huge submission files.

All but the last test run without a model (a fake grader stands in for batches), in
seconds; hypothesis runs derandomized with few examples.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import socket
import struct
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from autograder import report
from autograder.grading import SubmissionResult
from autograder.grading import TestResult as Outcome
from autograder.sandbox import wire

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from autograder.assignment import load as _load_assignment

BASIC = _load_assignment("basic_prompting")  # the assignment these tests grade
POINTS = BASIC.points

FAST = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
SURROGATES = ["\ud800", "\udfff", "\udc80", "a\ud83d", "\ud83d\ude00"]


def strict_json(text: str):
    """json.loads that refuses NaN / Infinity (what Gradescope's parser and browsers do)."""
    def refuse(name):
        raise ValueError(f"{name} in JSON")
    return json.loads(text, parse_constant=refuse)


@contextmanager
def time_limit(seconds: int):
    """Fail (instead of hanging forever) if the block blocks, e.g. on a FIFO."""
    def expired(*_):
        raise TimeoutError(f"blocked for more than {seconds} s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# -- strategies ----------------------------------------------------------------------------------

PIECES = ["`", "```", "````````", "~~~", "\n", "\r\n", "\r", "\t", "    ", "# ", "## Score: 100 / 100", "**", "_", "[x](http://e/x)",
          "![img](http://e/x.png)", "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "&lt;", "\\", "|", "- ",
          "[/red]", "[bold]", "\x00", "\x1b[31m", "\u2028", "é", "日本", "🙂", *SURROGATES]
nasty_text = st.lists(st.one_of(st.sampled_from(PIECES), st.integers(0xD800, 0xDFFF).map(chr),
                                st.text(max_size=4)), max_size=10).map("".join)
numbers = st.one_of(st.integers(-(10**30), 10**30), st.floats(allow_nan=True, allow_infinity=True))


def _tensor(dtype, shape, fill):
    return torch.full(shape, fill, dtype=torch.float32).to(dtype)


tensors = st.builds(
    _tensor,
    st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int8, torch.uint8,
                     torch.bool, torch.complex64, torch.uint16 if hasattr(torch, "uint16") else torch.int16]),
    st.lists(st.integers(0, 6), max_size=3).map(tuple) | st.just((300, 200)),  # up to 60,000 elements
    st.sampled_from([0.0, 1.0, -3.0, float("nan"), float("inf")]),
)
student_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, nasty_text, tensors),
    lambda children: st.one_of(st.lists(children, max_size=4), st.tuples(children, children),
                               st.dictionaries(st.one_of(nasty_text, st.integers()), children, max_size=3)),
    max_leaves=12,
)


# -- 1. forged frames: recv_message and decode raise only WireError ------------------------------


def _frame(body: bytes, tail: bytes = b"") -> bytes:
    return struct.pack("!Q", len(body)) + body + tail


def receive(data: bytes):
    """`wire.recv_message` on a socket that delivers `data`, then closes."""
    ours, theirs = socket.socketpair()
    sender = threading.Thread(target=lambda: (theirs.sendall(data), theirs.close()))
    sender.start()
    try:
        return wire.recv_message(ours, deadline=time.monotonic() + 10)
    finally:
        sender.join()
        ours.close()


FORGED_FRAMES = {
    "an int of 5000 digits": _frame(b'{"op": "result", "x": ' + b"9" * 5000 + b"}"),
    "100,000 nested lists": _frame(b"[" * 100_000 + b"]" * 100_000),
    "nesting deeper than any value": _frame(b'{"value": ' + b"[" * 400 + b"]" * 400 + b"}"),
    "NaN": _frame(b'{"x": NaN}'),
    "Infinity": _frame(b'{"x": -Infinity}'),
    "a float that overflows": _frame(b'{"x": 1e999}'),
    "a negative blob size": _frame(b'{"blobs": [-1]}'),
    "a blob size that is true": _frame(b'{"blobs": [true]}'),
    "a blob size that is a float": _frame(b'{"blobs": [1.0]}'),
    "blobs as a dict": _frame(b'{"blobs": {"a": 1}}'),
    "a million blobs": _frame(json.dumps({"blobs": [0] * 1_000_000}).encode()),
    "blobs too large": _frame(json.dumps({"blobs": [wire.MAX_FRAME_BYTES, 1]}).encode()),
    "a list header": _frame(b"[1, 2]"),
    "a string header": _frame(b'"op"'),
    "non-ASCII": _frame('{"op": "é"}'.encode()),
    "not JSON": _frame(b"\x80\x81garbage"),
    "a header too large": struct.pack("!Q", wire.MAX_HEADER_BYTES + 1),
    "a truncated header": struct.pack("!Q", 100) + b'{"op"',
    "a truncated blob": _frame(b'{"blobs": [10]}', b"abc"),
}


@pytest.mark.parametrize("name", list(FORGED_FRAMES))
def test_a_forged_frame_is_a_wire_error(name):
    with pytest.raises(wire.WireError):
        receive(FORGED_FRAMES[name])


NESTED: list = [1]
for _ in range(wire.MAX_DEPTH + 5):
    NESTED = [NESTED]
FORGED_TREES = {
    "float as a list": {"__float__": [1]},
    "float of junk": {"__float__": "junk"},
    "float of a huge string": {"__float__": "1" * 10_000},
    "tuple of an int": {"__tuple__": 5},
    "dict of an int": {"__dict__": 3},
    "dict item of one element": {"__dict__": [[1]]},
    "dict item of a string": {"__dict__": ["ab"]},
    "tensor dtype as a list": {"__tensor__": 0, "dtype": ["float32"], "shape": [1]},
    "tensor of an unknown dtype": {"__tensor__": 0, "dtype": "complex64", "shape": [1]},
    "tensor index true": {"__tensor__": True, "dtype": "uint8", "shape": [1]},
    "tensor index out of range": {"__tensor__": 5, "dtype": "uint8", "shape": [1]},
    "tensor with a huge empty shape": {"__tensor__": 0, "dtype": "uint8", "shape": [0, 10**30]},
    "tensor with 100 dimensions": {"__tensor__": 0, "dtype": "uint8", "shape": [1] * 100},
    "tensor with a negative dimension": {"__tensor__": 0, "dtype": "uint8", "shape": [-1]},
    "tensor shape of a string": {"__tensor__": 0, "dtype": "uint8", "shape": "1"},
    "tensor of the wrong size": {"__tensor__": 0, "dtype": "float32", "shape": [1]},
    "one blob for many tensors": [{"__tensor__": 0, "dtype": "uint8", "shape": [1]}] * 3,
    "generator seed too large": {"__generator__": 10**30},
    "generator seed of a string": {"__generator__": "1"},
    "reference from a worker": {"__ref__": "model"},
    "stand-in model from a worker": {"__eos_after__": [1, 2]},
    "frozen model from a worker": {"__frozen_model__": []},
    "an unknown tag": {"__pickle__": "x"},
    "an empty dict": {},
    "nesting too deep": NESTED,
    "a set (not JSON at all)": {1, 2},
}


@pytest.mark.parametrize("name", list(FORGED_TREES))
def test_a_forged_value_tree_is_a_wire_error(name):
    with pytest.raises(wire.WireError):
        wire.decode(FORGED_TREES[name], [b"\x07"])


@pytest.mark.parametrize("name", ["unknown reference", "reference of a list", "eos_after of junk", "frozen model of junk"])
def test_a_forged_tree_towards_the_worker_is_a_wire_error(name):
    tree = {"unknown reference": {"__ref__": "grader"}, "reference of a list": {"__ref__": ["model"]},
            "eos_after of junk": {"__eos_after__": "ab"}, "frozen model of junk": {"__frozen_model__": {"__float__": "x"}}}[name]
    with pytest.raises(wire.WireError):
        wire.decode(tree, [], resolve_ref={"model": object(), "tokenizer": object()}.__getitem__)


def test_decoding_stays_plain_and_bounded():
    # a dict key that is an unhashable tuple, and bool bytes that are neither 0 nor 1
    assert wire.decode({"__dict__": [[{"__tuple__": [[1]]}, 2]]}, []) == {"([1],)": 2}
    flags = wire.decode({"__tensor__": 0, "dtype": "bool", "shape": [3]}, [b"\x00\x07\x01"])
    assert flags.tolist() == [False, True, True]
    assert math.isnan(wire.decode({"__float__": "nan"}, []))
    # what the encoder cannot send faithfully travels as an opaque value, not as garbage
    sent = wire.encode(torch.empty(0, wire.MAX_TENSOR_DIM + 1), [])
    assert "__object__" in sent


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_only_ever_raise_wire_errors(data):
    try:
        header, _ = receive(data)
    except (wire.WireError, TimeoutError):
        return
    assert isinstance(header, dict)


@FAST
@given(st.binary(max_size=300))
def test_a_random_header_body_only_ever_raises_wire_errors(body):
    try:
        receive(_frame(body))
    except (wire.WireError, TimeoutError):
        pass


TAGS = ["__float__", "__tuple__", "__dict__", "__tensor__", "__ref__", "__frozen_model__", "__eos_after__", "__generator__",
        "__object__", "dtype", "shape", "repr", "blobs", "value", "op"]
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**40), 10**40), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=8), st.sampled_from(list(wire.DTYPES) + ["nan", "inf", "complex64"])),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.one_of(st.sampled_from(TAGS), st.text(max_size=4)), children, max_size=3)),
    max_leaves=15,
)


@FAST
@given(value=json_values, sizes=st.lists(st.integers(0, 8), max_size=3), extra=st.dictionaries(st.sampled_from(TAGS), json_values, max_size=2))
def test_random_json_headers_only_ever_raise_wire_errors(value, sizes, extra):
    header = {**extra, "value": value}
    if "blobs" not in extra:
        header["blobs"] = sizes
    blobs = b"".join(bytes([n]) * n for n in sizes)
    try:
        received, received_blobs = receive(_frame(json.dumps(header).encode(), blobs))
    except (wire.WireError, TimeoutError):
        return
    for resolve in (None, {"model": object(), "tokenizer": object()}.__getitem__):
        try:
            wire.decode(received.get("value"), received_blobs, resolve_ref=resolve)
        except wire.WireError:
            pass


# -- 2 and 3. reports: any student text, any number, forged metadata ----------------------------


def make_result(text: str = "ok", *, student: str = "ada", score: float = 1.0, import_report=None, isolation=None,
                printed=None, metadata=None) -> SubmissionResult:
    tests = [Outcome(name=f"check {function} [case]", function=function, max_score=float(points), score=0.0,
                        status="failed", output=text) for function, points in POINTS.items()]
    tests[0].score, tests[0].status = min(score, tests[0].max_score) if math.isfinite(score) else score, "passed"
    meta = {"model": {"name": "tiny-qwen3", "revision": "rev-1"}, "versions": {"torch": "2.x", "transformers": "4.x"},
            "seeds": [0, 1], "graded_at": "2025-01-01T00:00:00+00:00", "isolation": isolation if isolation is not None else {}}
    return SubmissionResult(student=student, submission="/s", tests=tests, metadata=meta | (metadata or {}),
                            import_report=import_report if import_report is not None else {"ok": True, "missing": []},
                            printed=printed if printed is not None else {"stdout": text}, execution_time=1.5,
                            points=dict(POINTS))


def write_all(folder: Path, result: SubmissionResult) -> dict:
    """Every file a report writer makes for `result`; returns the results.json read back."""
    results = report.gradescope_results(result)
    report.write_json(folder / "results.json", results)
    report.write_text(folder / "feedback.md", report.feedback_markdown(result))
    report.write_grades_csv(folder / "grades.csv", [report.grades_row(results, POINTS)], POINTS)
    data = strict_json((folder / "results.json").read_text(encoding="utf-8"))
    (folder / "feedback.md").read_text(encoding="utf-8")
    with open(folder / "grades.csv", newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 1
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    return data


FORGED_IMPORT_REPORTS = [
    {"ok": False, "error": {"type": "ValueError", "message": "\ud800 at import", "traceback": "line 1\n\udfff"}},
    {"ok": False, "error": "a string, not a dict \ud800"},
    {"ok": False, "error": ["a", "list"]},
    {"ok": False},
    {"ok": True, "missing": "softmax"},
    {"ok": True, "missing": 7},
    {"ok": True, "missing": [["nested"], None, "\ud800"]},
]
FORGED_ISOLATION = ["a string \ud800", ["a", "list"], 42, 1.5, {"user": ["x"], "hidden_paths": 3, "degraded": "\ud800"},
                    {"hidden_paths": "abc", "processes": {"n": float("nan")}}]


@pytest.mark.parametrize("forged", FORGED_IMPORT_REPORTS, ids=lambda r: json.dumps(r)[:40])
def test_forged_import_reports_give_valid_reports(tmp_path, forged):
    data = write_all(tmp_path, make_result(import_report=forged))
    assert data["score"] == pytest.approx(1.0)


@pytest.mark.parametrize("forged", FORGED_ISOLATION, ids=repr)
def test_forged_isolation_metadata_gives_valid_reports(tmp_path, forged):
    result = make_result(isolation=forged)
    assert report.isolation_text(result).startswith(report.ISOLATION_NOTE)
    write_all(tmp_path, result)


def test_a_surrogate_and_nan_anywhere_give_valid_files(tmp_path):
    result = make_result("Got: '\ud800' and nan", student="stu\udcffdent", score=float("nan"),
                         printed={"stdout": "\ud800 printed", "stderr": "\udfff"},
                         metadata={"limits": {"submission_seconds": float("inf"), "x": float("nan")}, "seeds": (0, 1)})
    result.execution_time = float("nan")
    data = write_all(tmp_path, result)
    assert data["score"] == 0 and data["execution_time"] == 0  # a number, whatever the grader computed
    assert data["extra_data"]["metadata"]["limits"] == {"submission_seconds": None, "x": None}
    assert "\\ud800" in data["output"]  # the surrogate stays visible, as an escape
    assert "\\ud800" in (tmp_path / "feedback.md").read_text(encoding="utf-8")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    report.write_json(tmp_path / "results.json", {"score": 1})
    real_replace = os.replace

    def failing_replace(*args):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        report.write_json(tmp_path / "results.json", {"score": 2})
    with pytest.raises(OSError):
        report.write_text(tmp_path / "feedback.md", "text")
    with pytest.raises(OSError):
        report.write_grades_csv(tmp_path / "grades.csv", [], POINTS)
    monkeypatch.setattr(os, "replace", real_replace)
    assert json.loads((tmp_path / "results.json").read_text()) == {"score": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


@FAST
@given(text=nasty_text, student=nasty_text, number=numbers, key=nasty_text)
def test_fuzzed_report_fields_always_write_valid_files(tmp_path_factory, text, student, number, key):
    result = make_result(text, student=student or "s", score=number if isinstance(number, float) else 1.0,
                         import_report={"ok": False, "error": {"type": text[:10], "message": text, "traceback": text}},
                         isolation={key: number, "user": text}, printed={"stdout": text, key: text},
                         metadata={"model": {"name": text, "revision": number}, key: [number, text]})
    write_all(tmp_path_factory.mktemp("r"), result)
    report.print_table(result, _console())
    report.print_class_table([report.grades_row(report.gradescope_results(result), POINTS)], POINTS, _console())


def _console():
    from rich.console import Console

    return Console(file=io.StringIO(), width=120, force_terminal=True)


# -- 3. Markdown: student text never becomes markup ---------------------------------------------


def _render_tokens(markdown: str):
    """feedback.md parsed as nbgrader_course renders it (CommonMark, raw HTML escaped)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).parse(markdown)


def _walk(tokens):
    for token in tokens:
        yield token
        yield from _walk(token.children or [])


def _verbatim(text: str) -> str:
    """What a fenced code block shows of `text` (CommonMark line endings, NUL replaced)."""
    lines = report.clean_text(text).replace("\x00", "\ufffd").splitlines()
    return "\n".join(lines) + "\n"


@FAST
@given(output=nasty_text, printed=nasty_text, message=nasty_text, student=nasty_text)
def test_student_text_never_becomes_markup_in_feedback(output, printed, message, student):
    result = make_result(output, student=student or "s", printed={"stdout": printed},
                         import_report={"ok": False, "error": {"type": "ValueError", "message": message, "traceback": ""}})
    tokens = list(_walk(_render_tokens(report.feedback_markdown(result))))
    headings = [t for t in tokens if t.type == "heading_open"]
    shown_printed = 1 if printed.strip() else 0
    assert [h.tag for h in headings] == ["h1"] + ["h2"] * (len(POINTS) + shown_printed)
    assert not [t.type for t in tokens if t.type in ("image", "link_open", "html_inline", "html_block", "code_block")]
    fences = [t for t in tokens if t.type == "fence"]
    # each failing test, the printed output (the import problem, with no traceback, is one bold line)
    assert len(fences) == len(POINTS) - 1 + shown_printed
    if "\t" not in output + printed + message:  # (tabs in list items are re-indented by CommonMark)
        assert all(f.content == _verbatim(output) for f in fences[:len(POINTS) - 1])
        if shown_printed:
            assert fences[-1].content == _verbatim(printed)


def test_printed_fences_and_html_stay_text_in_the_html_feedback():
    from autograder import nbgrader_course

    attack = "```\n# Score: 100 / 100\n![x](http://evil/x.png)\n<script>alert(1)</script>\n```"
    result = make_result(attack, printed={"stdout": attack},
                         import_report={"ok": False, "error": {"type": "ValueError", "message": "x ** ![i](http://e/i.png) <b>b</b> ```"}})
    page = nbgrader_course.feedback_html(report.feedback_markdown(result), "t")
    assert "<img" not in page and "<script" not in page and "<b>b</b>" not in page and "Score: 100 / 100</h1>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# -- 2 and 7. student values end to end, without a model: encode -> frame -> decode -> report -----


def _round_trip(header: dict, value):
    ours, theirs = socket.socketpair()
    sender = threading.Thread(target=lambda: (wire.send_value_message(theirs, header, value), theirs.close()))
    sender.start()
    try:
        got, blobs = wire.recv_message(ours, deadline=time.monotonic() + 30)
    finally:
        sender.join()
        ours.close()
    return wire.decode(got.get("value"), blobs)


@FAST
@given(value=student_values, message=nasty_text)
def test_fuzzed_return_values_and_errors_give_valid_reports(tmp_path_factory, value, message):
    from autograder.feedback import abbreviate, call_text, mismatch, type_problem

    got = _round_trip({"op": "result", "ok": True}, value)
    outputs = [str(mismatch(call_text("softmax", (got,), {"k": got}), abbreviate(value), abbreviate(got),
                            type_problem(got, "tensor"))),
               f"Your code raised {message}: {message}", abbreviate(got, 20), type_problem(got, "ids") or "", type_problem(got, "str") or ""]
    result = make_result("\n\n".join(outputs), printed={"stdout": message})
    result.import_report = {"ok": False, "error": {"type": message, "message": message, "traceback": message}}
    write_all(tmp_path_factory.mktemp("v"), result)


# -- 4. batches: a grader error is recorded for that student, the batch goes on -----------------


class FakeGrader:
    """Stands in for `Grader`: what it does for a student is written in their decoding.py."""

    model_name = "tiny-qwen3"
    assignment = BASIC

    def __init__(self):
        self.model = {"name": "tiny-qwen3", "revision": "rev-1"}
        self.hidden_paths: list[Path] = []
        self.graded: list[str] = []

    def metadata(self) -> dict:
        return {"model": dict(self.model), "versions": {"torch": "2.x", "transformers": "4.x"}, "seeds": [0],
                "graded_at": "2025-01-01T00:00:00+00:00"}

    def grade(self, folder: Path, student: str | None = None) -> SubmissionResult:
        self.graded.append(student)
        try:
            source = (folder / "decoding.py").read_text(errors="replace") if not (folder / "decoding.py").is_symlink() else "link"
        except OSError:
            source = "unreadable"
        if "RAISE" in source:
            raise RuntimeError("grader bug \ud800 [/red]")
        result = make_result("Got: '\ud800'", student=student, import_report={"ok": False, "error": {"type": "ValueError",
                             "message": "\ud800 ``` [/red]"}} if "SURROGATE" in source else None)
        result.metadata = self.metadata() | {"isolation": "forged" if "SURROGATE" in source else {}}
        if "INTERNAL" in source:
            result.internal_errors = ["test_x: KeyError in the grader"]
        return result


def _class(tmp_path: Path, students: dict[str, str]) -> Path:
    root = tmp_path / "class"
    for student, source in students.items():
        (root / student).mkdir(parents=True)
        (root / student / "decoding.py").write_text(source)
    return root


def _csv_rows(path: Path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["student"]: row for row in csv.DictReader(handle)}


def test_a_batch_survives_every_failure_and_records_it(tmp_path, monkeypatch):
    from autograder.batch import grade_all

    root = _class(tmp_path, {"a_raises": "RAISE", "b_surrogates": "SURROGATE", "c_ok": "OK", "d_report_fails": "OK",
                             "e_internal": "INTERNAL"})
    out = tmp_path / "out"
    real = report.feedback_markdown

    def feedback_markdown(result):
        if result.student == "d_report_fails":
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return real(result)
    monkeypatch.setattr(report, "feedback_markdown", feedback_markdown)
    grader = FakeGrader()
    rows = {row["student"]: row for row in grade_all(root, out, grader, console=_console())}
    assert set(rows) == {"a_raises", "b_surrogates", "c_ok", "d_report_fails", "e_internal"}
    written = _csv_rows(out / "grades.csv")
    assert set(written) == set(rows)
    for student in rows:  # every student: a valid results.json
        data = strict_json((out / student / "results.json").read_text(encoding="utf-8"))
        assert data["tests"] and sum(t["max_score"] for t in data["tests"]) == pytest.approx(100)
        assert written[student]["model"] == "tiny-qwen3" and written[student]["model_revision"] == "rev-1"
    for student in ("a_raises", "d_report_fails"):
        assert written[student]["status"].startswith("grader error: "), written[student]
        assert float(written[student]["total"]) == 0
        assert (out / student / "grader-error.txt").read_text().strip()
        assert "could not grade" in (out / student / "feedback.md").read_text()
    assert "RuntimeError: grader bug \\ud800 [/red]" in written["a_raises"]["status"]
    assert written["e_internal"]["status"].startswith("grader error in 1 tests")
    assert written["c_ok"]["status"] == written["b_surrogates"]["status"] == "graded"
    assert not list(out.rglob("*.tmp"))


def test_a_rerun_grades_again_exactly_the_students_with_grader_errors(tmp_path):
    from autograder import batch

    root = _class(tmp_path, {"a_raises": "RAISE", "b_ok": "OK", "c_internal": "INTERNAL"})
    out = tmp_path / "out"
    rows = batch.grade_all(root, out, FakeGrader(), console=_console())
    assert batch.exit_status(rows) == batch.GRADER_ERROR_EXIT != 0
    again = FakeGrader()
    batch.grade_all(root, out, again, console=_console())
    assert sorted(again.graded) == ["a_raises", "c_internal"]  # b_ok is unchanged and was graded cleanly
    # the grader is fixed: everyone graded, nothing to regrade, exit status 0
    (root / "a_raises" / "decoding.py").write_text("OK")
    (root / "c_internal" / "decoding.py").write_text("OK")
    fixed = FakeGrader()
    rows = batch.grade_all(root, out, fixed, console=_console())
    assert sorted(fixed.graded) == ["a_raises", "c_internal"] and batch.exit_status(rows) == 0
    last = FakeGrader()
    batch.grade_all(root, out, last, console=_console())
    assert last.graded == []


def test_a_grader_error_on_regrade_keeps_the_earlier_results(tmp_path):
    from autograder.batch import grade_all

    root = _class(tmp_path, {"ada": "OK"})
    out = tmp_path / "out"
    grade_all(root, out, FakeGrader(), console=_console())
    before = (out / "ada" / "results.json").read_text()
    (root / "ada" / "decoding.py").write_text("RAISE")
    grade_all(root, out, FakeGrader(), console=_console())
    assert (out / "ada" / "results.previous.json").read_text() == before
    assert strict_json((out / "ada" / "results.json").read_text())["extra_data"]["grader_error"]


def test_results_of_another_model_revision_are_not_reused(tmp_path):
    from autograder.batch import grade_all

    root = _class(tmp_path, {"ada": "OK"})
    out = tmp_path / "out"
    grade_all(root, out, FakeGrader(), console=_console())
    newer = FakeGrader()
    newer.model = {"name": "tiny-qwen3", "revision": "rev-2"}
    grade_all(root, out, newer, console=_console())
    assert newer.graded == ["ada"]


def test_the_class_table_names_the_model_and_the_grader_errors(tmp_path):
    from rich.console import Console

    from autograder.batch import grade_all

    root = _class(tmp_path, {"a_raises": "RAISE", "b_ok": "OK"})
    rows = grade_all(root, tmp_path / "out", FakeGrader(), console=_console())
    console = Console(record=True, width=200)
    report.print_class_table(rows, POINTS, console)
    text = console.export_text()
    assert "tiny-qwen3 (revision rev-1" in text.splitlines()[0]
    assert "1 of 2 students hit a grader error" in text and "a_raises" in text


# -- 5. submission files: symlinks, FIFOs, folders, huge files ----------------------------------


def _submission(tmp_path: Path, kind: str) -> Path:
    folder = tmp_path / kind
    folder.mkdir()
    path = folder / "decoding.py"
    secret = tmp_path / "secret.py"
    secret.write_text("SECRET = 1\n")
    if kind == "symlink":
        path.symlink_to(secret)
    elif kind == "symlink to a fifo":
        os.mkfifo(tmp_path / "pipe")
        path.symlink_to(tmp_path / "pipe")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "huge":
        with open(path, "wb") as handle:
            handle.truncate(50 << 20)  # sparse: 50 MB that take no disk
    elif kind == "dangling symlink":
        path.symlink_to(tmp_path / "nowhere")
    elif kind == "regular":
        path.write_text("def softmax(): pass\n")
    return path


BAD_FILES = {"symlink": "symbolic link", "symlink to a fifo": "symbolic link", "fifo": "FIFO", "folder": "folder",
             "huge": "too large", "dangling symlink": "symbolic link", "missing": "no decoding.py in the submission"}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_read_submission_bytes_refuses_anything_but_a_regular_file(tmp_path, kind):
    from autograder.submission_file import SubmissionFileError, read_submission_bytes

    path = _submission(tmp_path, kind)
    with time_limit(10), pytest.raises(SubmissionFileError, match=BAD_FILES[kind]) as caught:
        read_submission_bytes(path)
    assert isinstance(caught.value, ValueError)
    assert read_submission_bytes(_submission(tmp_path, "regular")) == b"def softmax(): pass\n"


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_a_batch_never_follows_blocks_on_or_slurps_a_submitted_file(tmp_path, monkeypatch, kind):
    from autograder import batch

    read = []
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(self) or b"")  # the old, unsafe way
    path = _submission(tmp_path, kind)
    with time_limit(10):
        digest = batch.file_digest(path)
    assert read == [] and len(digest) < 300
    assert digest == "missing" if kind == "missing" else digest.startswith("unreadable: decoding.py")


@pytest.mark.parametrize("kind", ["symlink", "symlink to a fifo", "fifo", "folder", "huge"])
def test_gradescope_never_grades_a_linked_or_special_file(tmp_path, kind):
    from autograder import gradescope

    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    (root / "source" / "bundle.json").write_text(json.dumps({"model": "tiny-qwen3", "limits": {}}))
    submission = root / "submission"
    submission.mkdir()
    _submission(tmp_path, kind).rename(submission / "decoding.py")  # (a symlink is moved as a link)
    with time_limit(20):
        assert gradescope.run(root) == 0
    data = strict_json((root / "results" / "results.json").read_text())
    assert data["score"] == 0 and data["tests"] == []
    assert any(word in data["output"] for word in ("symbolic link", "No decoding.py", "too large")), data["output"]


def test_gradescope_search_ignores_symlinks_and_symlinked_folders(tmp_path):
    from autograder import gradescope

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "decoding.py").write_text("x = 1\n")
    submission = tmp_path / "submission"
    (submission / "zipped" / "inner").mkdir(parents=True)
    (submission / "decoding.py").symlink_to(elsewhere / "decoding.py")
    (submission / "zipped" / "linked").symlink_to(elsewhere, target_is_directory=True)
    (submission / "loop").symlink_to(submission, target_is_directory=True)
    assert gradescope.find_submission(submission, BASIC.submission_file) is None
    (submission / "zipped" / "inner" / "decoding.py").write_text("y = 2\n")
    assert gradescope.find_submission(submission, BASIC.submission_file) == submission / "zipped" / "inner" / "decoding.py"


# -- 7. the real worker, end to end: hypothesis-made return values and exception messages --------

WORKER_VALUES = st.one_of(
    st.sampled_from(["'\\ud800'", "float('nan')", "[float('inf'), '\\udfff', (None, {'k': b'x'})]", "'```\\n# Score: 100'",
                     "torch.zeros(300, 300, dtype=torch.float16)", "torch.ones(3, dtype=torch.complex64)",
                     "[[[[[[1]]]]]]", "{1: 2, (3,): [4]}", "10 ** 4000", "object()"]),
    nasty_text.map(repr),
)


@pytest.fixture(scope="module")
def real_grader():
    from autograder.grading import Grader
    from autograder.sandbox.client import Limits

    with Grader("tiny-qwen3", Limits(test_seconds=10, submission_seconds=120, memory_bytes=2 << 30)) as grader:
        yield grader


@pytest.mark.slow
@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(values=st.lists(WORKER_VALUES, min_size=len(BASIC.contract), max_size=len(BASIC.contract)),
       message=nasty_text, printed=nasty_text)
@example(values=["'\\ud800'", "float('nan')", "[float('inf'), '\\udfff', (None, {'k': b'x'})]", "'```\\n# Score: 100'",
                 "torch.ones(3, dtype=torch.complex64)", "10 ** 4000", "torch.zeros(300, 300, dtype=torch.float16)"],
         message="\ud800 ``` [/red] **x** \x00", printed="```\n# Score: 100 / 100\n\udfff")
def test_fuzzed_student_values_and_errors_through_the_real_worker(real_grader, tmp_path_factory, values, message, printed):
    from autograder.batch import grade_all

    lines = ["import torch", f"print({printed!r})"]  # repr: surrogates become escapes, the file stays UTF-8
    for index, (name, value) in enumerate(zip(BASIC.contract, values)):
        body = f"raise ValueError({message!r})" if index % 3 == 2 else f"return {value}"
        lines.append(f"def {name}(*args, **kwargs):\n    {body}")
    root = tmp_path_factory.mktemp("fuzz")
    (root / "student").mkdir()
    (root / "student" / "decoding.py").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "importer").mkdir()
    (root / "importer" / "decoding.py").write_text(f"print({printed!r})\nraise ValueError({message!r})\n", encoding="utf-8")
    out = tmp_path_factory.mktemp("out")
    rows = grade_all(root, out, real_grader, console=_console())
    assert {row["student"] for row in rows} == {"student", "importer"}
    for row in rows:
        data = strict_json((out / row["student"] / "results.json").read_text(encoding="utf-8"))
        assert 0 <= data["score"] <= 100 and row["status"] == "graded", row


@pytest.mark.slow
def test_a_dead_model_process_is_replaced_and_grading_goes_on(real_grader, tmp_path):
    """The OOM killer (or a bug) may end the model process between two submissions, while
    the reference worker it forked still looks alive to the grader. Closing that worker
    asked the dead process for its exit status and crashed the batch with EBADF."""
    real_grader.reference_worker()  # a worker of the model process that is about to die
    dead = real_grader.zygote.process
    dead.kill()
    dead.wait()
    folder = tmp_path / "skeleton"
    folder.mkdir()
    (folder / "decoding.py").write_bytes(BASIC.skeleton_path.read_bytes())
    result = real_grader.grade(folder)
    assert real_grader.zygote.process is not dead and real_grader.zygote.process.poll() is None
    assert result.internal_errors == []
    assert result.score == 0
    assert all("NotImplementedError" in t.output for t in result.tests if t.status != "passed"), result.tests
