"""Submissions that try to fool or break the grader get an honest score, and the grader
survives: one submission per attack family (see docs/THREAT_MODEL.md)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from autograder import assignment, report
from autograder.grading import Grader
from autograder.sandbox.client import Limits
from autograder.sandbox.isolation import live_processes_of

from autograder.assignment import load as _load_assignment

BASIC = _load_assignment("basic_prompting")  # the assignment these tests grade
POINTS = BASIC.points

REFERENCE = BASIC.reference_path.read_text()


@pytest.fixture(scope="module")
def grader():
    with Grader("tiny-qwen3", Limits(test_seconds=10, submission_seconds=300, memory_bytes=2 << 30)) as grader:
        yield grader


@pytest.fixture(scope="module")
def isolated(grader, tmp_path_factory):
    """The OS isolation this machine gives student code; skips tests that need it if none."""
    folder = tmp_path_factory.mktemp("probe") / "probe"
    folder.mkdir()
    (folder / "decoding.py").write_text("x = 1\n")
    iso = grader.grade(folder).metadata["isolation"]
    if not iso.get("hidden_paths") or iso.get("degraded"):
        pytest.skip(f"no OS isolation on this machine (needs root or user namespaces): {iso}")
    return iso


def grade_source(grader, tmp_path: Path, source: str, name: str = "attacker"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "decoding.py").write_text(textwrap.dedent(source))
    return grader.grade(folder)


def visible_text(result) -> str:
    """Everything the student can see of their result."""
    return json.dumps(report.gradescope_results(result)) + report.feedback_markdown(result)


def assert_no_leak(result) -> None:
    text = visible_text(result)
    for secret in ("mass_before", "keep_sorted", "def test_", "grading.student(", "check_nucleus("):
        assert secret not in text, f"{secret!r} leaked into what the student sees"


# -- reading the reference or the hidden suites ---------------------------------------

STEAL_FROM_DISK = f"""
import glob, importlib.util, sys
for path in glob.glob({str(assignment.REPO_ROOT)!r} + "/**/*.py", recursive=True):
    if "solutions" in path or "suites" in path:
        print(open(path).read())
spec = importlib.util.spec_from_file_location("stolen", {str(BASIC.reference_path)!r})
stolen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stolen)
globals().update({{k: v for k, v in vars(stolen).items() if not k.startswith("__")}})
"""

STEAL_BY_IMPORT = """
import sys
print([name for name in sys.modules if "solution" in name or "suites" in name or "reference" in name])
from autograder.suites.basic_prompting import common
print(open(common.__file__).read())
"""


@pytest.mark.parametrize("source", [STEAL_FROM_DISK, STEAL_BY_IMPORT], ids=["from disk", "through imports"])
def test_reading_the_reference_or_suites_gets_nothing(grader, isolated, tmp_path, source):
    result = grade_source(grader, tmp_path, source)
    assert result.score == 0
    assert not result.import_report["ok"]
    assert_no_leak(result)


def test_the_stored_reference_answers_are_out_of_reach(grader, isolated, tmp_path):
    from autograder.reference_store import store_dir

    grade_source(grader, tmp_path, REFERENCE, "honest")  # the store now holds answers
    assert list(store_dir().glob("*.pt"))
    store_dir().chmod(0o755)  # as under a shared cache folder: the sandbox must hide it anyway
    thief = f"""
import glob, os
for path in glob.glob({str(store_dir())!r} + "/**", recursive=True) + glob.glob(os.environ.get("HOME", "/") + "/**/*.pt", recursive=True):
    try:
        with open(path, "rb") as handle:
            print("READ", path, len(handle.read()))
    except OSError:
        pass
"""
    result = grade_source(grader, tmp_path, REFERENCE + thief, "thief")
    assert result.score == pytest.approx(100)
    assert "READ" not in result.printed.get("stdout", ""), result.printed


POISON_THE_MODEL = """
_honest_greedy = greedy_decode


def greedy_decode(model, tokenizer, prompt, max_new_tokens):
    import torch
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.data.mul_(0.5)  # behind the version counters' back
            parameter.add_(0.25)  # and in the open
        model(torch.tensor([[1, 2, 3]])).logits.fill_(7.0)
    return _honest_greedy(model, tokenizer, prompt, max_new_tokens)
"""


def test_changing_the_model_changes_only_ones_own_results(grader, tmp_path):
    poisoned = grade_source(grader, tmp_path, REFERENCE + POISON_THE_MODEL, "poisoner")
    # Its own greedy calls ran on its changed model (the memo noticed), not on the reference's logits ...
    assert poisoned.by_function()["greedy_decode"][0] < POINTS["greedy_decode"]
    # ... and nothing reached the shared weights, the stored answers or the next worker.
    assert grade_source(grader, tmp_path, REFERENCE, "next").score == pytest.approx(100)


# -- lying about comparisons ----------------------------------------------------------

LIARS = """
import torch, builtins
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.Tensor.__eq__ = lambda self, other: True
torch.testing.assert_close = lambda *a, **k: None
try:
    import pytest
    pytest.approx = lambda *a, **k: 0
except Exception:
    pass

class LyingTensor(torch.Tensor):
    def __eq__(self, other): return True
    def __len__(self): return 151936

class LyingList(list):
    def __eq__(self, other): return True
    def __len__(self): return 3

class LyingStr(str):
    def __eq__(self, other): return True

def softmax(scores, base=2.718281828, dim=-1): return torch.zeros(3).as_subclass(LyingTensor)
def temperature_distribution(logits, temperature): return torch.zeros(3).as_subclass(LyingTensor)
def top_p_filter(probs, p): return torch.zeros(3).as_subclass(LyingTensor)
def greedy_decode(model, tokenizer, prompt, max_new_tokens): return LyingList([1, 2, 3])
def sample_decode(model, tokenizer, prompt, max_new_tokens, **kw): return LyingList([1, 2, 3])
def truncate_at_stop(text, stop_sequences): return LyingStr("lie")
def generate_text(model, tokenizer, prompt, **kw): return LyingStr("lie")
"""


def test_patched_comparisons_and_lying_objects_earn_nothing(grader, tmp_path):
    result = grade_source(grader, tmp_path, LIARS)
    assert result.score == 0
    assert result.internal_errors == []


FORGE_REPORTS = """
import sys
wire = sys.modules.get("autograder.sandbox.wire")
if wire is not None:
    original = wire.send_message
    def forged(sock, header, *rest, **kw):
        if isinstance(header, dict):
            if header.get("op") in ("imported", "isolated"):
                header["isolation"] = {"user": "FORGED uid", "network": "FORGED", "hidden_paths": ["FORGED"] * 9}
        return original(sock, header, *rest, **kw)
    wire.send_message = forged
"""
GENERATE_ALL_THEN_CUT = """
def generate_text(model, tokenizer, prompt, *, max_new_tokens=20, temperature=0.0, top_p=1.0, stop=None, generator=None):
    stop = [stop] if isinstance(stop, str) else list(stop or [])
    if temperature == 0:
        ids = greedy_decode(model, tokenizer, prompt, max_new_tokens)
    else:
        ids = sample_decode(model, tokenizer, prompt, max_new_tokens, temperature=temperature, top_p=top_p, generator=generator)
    return truncate_at_stop(tokenizer.decode(ids), stop)
"""


def test_patching_the_workers_reports_forges_nothing(grader, tmp_path):
    """What decides points or goes on record never comes from code the student can patch:
    a loop that generates everything before cutting still loses the early-stop test."""
    result = grade_source(grader, tmp_path, REFERENCE + GENERATE_ALL_THEN_CUT + FORGE_REPORTS)
    failed = [t.name for t in result.tests if t.status == "failed"]
    assert failed == [f"Stops generating as soon as a stop sequence appears [{case}]"
                      for case in ("one token", "several tokens", "ends inside a token")], failed
    assert "FORGED" not in json.dumps(result.metadata)


def test_a_symlinked_decoding_py_is_not_followed(grader, tmp_path):
    folder = tmp_path / "linker"
    folder.mkdir()
    (folder / "decoding.py").symlink_to(BASIC.reference_path)
    result = grader.grade(folder)
    assert result.score == 0
    assert "symbolic link" in visible_text(result)
    assert_no_leak(result)


def test_helpers_that_call_each_other_score_nothing(grader, tmp_path):
    """Each helper may lean on the reference's versions of earlier helpers only: a softmax
    that defers to temperature_distribution (which defers back) earns nothing."""
    source = REFERENCE + textwrap.dedent("""
        def softmax(scores, base=math.e, dim=-1):
            if dim not in (-1, scores.dim() - 1):
                return softmax(scores.movedim(dim, -1), base).movedim(-1, dim)
            return temperature_distribution(scores, 1 / math.log(base))

        def temperature_distribution(logits, temperature):
            return softmax(logits / temperature)
        """)
    by_function = grade_source(grader, tmp_path, source).by_function()
    assert by_function["softmax"][0] < POINTS["softmax"] / 2  # it never computes anything itself
    # temperature_distribution is right, given a right softmax (it only skips the check of t > 0)
    assert by_function["temperature_distribution"][0] > POINTS["temperature_distribution"] / 2


def test_oversized_helper_calls_are_refused_not_run(grader, tmp_path):
    """The reference's helpers run in the grading process: what they accept is bounded."""
    source = REFERENCE + textwrap.dedent("""
        def generate_text(model, tokenizer, prompt, **kwargs):
            return truncate_at_stop("a" * 30_000_000, ["ab"] * 500)  # the reference's, swapped in
        """)
    result = grade_source(grader, tmp_path, source)
    failed = [t for t in result.tests if t.status != "passed"]
    assert {t.function for t in failed} == {"generate_text"}
    assert any("helper calls up to" in t.output for t in failed)
    assert all("ran out of time" not in t.output for t in failed)


REACH_THE_NETWORK = """
import socket
for address in [("1.1.1.1", 80), ("pypi.org", 443)]:
    try:
        socket.create_connection(address, timeout=3).close()
        print("reached", address)
    except OSError as error:
        print("no network:", address, error)
"""


def test_reaching_the_network_fails(grader, isolated, tmp_path):
    result = grade_source(grader, tmp_path, REFERENCE + REACH_THE_NETWORK)
    assert result.score == pytest.approx(100)  # its honest work still counts
    assert "reached" not in result.printed.get("stdout", "") and "no network" in result.printed.get("stdout", "")
    assert result.metadata["isolation"]["network"].startswith("none")


def test_restarts_and_imports_count_against_the_submission_budget(tmp_path):
    """Code that dies in every call cannot buy a fresh, slow import per test for free."""
    source = "import time\ntime.sleep(1)\n" + "".join(
        f"def {name}(*args, **kwargs):\n    import os; os._exit(1)\n" for name in BASIC.contract)
    with Grader("tiny-qwen3", Limits(test_seconds=10, submission_seconds=8, memory_bytes=2 << 30, processes=16)) as strict:
        result = grade_source(strict, tmp_path, source)
    if os.geteuid() == 0:  # (the process limit applies to the sandbox uid, which needs root)
        assert result.metadata["isolation"]["processes"].startswith("at most 16")  # --max-processes reaches the worker
    assert result.score == 0
    assert result.execution_time < 8 + 30  # the budget, plus the grader's own work on the remaining tests
    assert any("time budget" in t.output for t in result.tests)


# -- writing results ------------------------------------------------------------------

WRITE_RESULTS = """
import glob, json, os
fake = {"score": 100, "tests": []}
for pattern in ["/tmp/**/results.json", "/autograder/results/results.json", os.path.expanduser("~/**/results.json"),
                "{out}/**/results.json", "{out}/grades.csv"]:
    for path in glob.glob(pattern, recursive=True):
        try:
            open(path, "w").write(json.dumps(fake))
            print("overwrote", path)
        except OSError as error:
            print("could not write", path, error)
"""


def test_rewriting_results_files_changes_nothing(grader, isolated, tmp_path):
    from autograder.batch import grade_all

    root, out = tmp_path / "class", tmp_path / "out"
    (root / "a_honest").mkdir(parents=True)
    (root / "a_honest" / "decoding.py").write_text(REFERENCE)
    (root / "b_attacker").mkdir()
    (root / "b_attacker" / "decoding.py").write_text(WRITE_RESULTS.replace("{out}", str(out)))
    grade_all(root, out, grader)
    honest = json.loads((out / "a_honest" / "results.json").read_text())
    attacker = json.loads((out / "b_attacker" / "results.json").read_text())
    assert honest["score"] == pytest.approx(100) and attacker["score"] == 0
    assert "overwrote" not in (out / "b_attacker" / "feedback.md").read_text()


# -- exiting and dying anywhere -------------------------------------------------------

DEATHS = {
    "sys.exit": "import sys; sys.exit(0)",
    "os._exit": "import os; os._exit(0)",
    "SIGKILL to itself": "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
    "SIGSEGV to itself": "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)",
    "KeyboardInterrupt": "raise KeyboardInterrupt",
    "BaseException": "raise BaseException('bye')",
    "GeneratorExit": "raise GeneratorExit",
}


MARKER = '    """The text before the earliest occurrence of any stop sequence."""\n'


def reference_with(code: str) -> str:
    """The reference, whose truncate_at_stop runs `code` when called on the text "END"
    (one hidden test uses it), so the cost of one bad call can be seen exactly."""
    body = textwrap.indent(textwrap.dedent(code), "        ")
    return REFERENCE.replace(MARKER, MARKER + '    if text == "END":\n' + body + "\n")


END_TEST = "Cuts before the earliest stop sequence [whole text is a stop]"


def assert_only_the_end_test_failed(result) -> None:
    """Only truncate_at_stop loses: the test on "END", the function's later tests if that
    one ran out of time (not run, to keep grading short), and its checks in proportion
    (scoring.gate_checks)."""
    failed = [t for t in result.tests if t.status == "failed"]
    assert failed and failed[0].name == END_TEST and failed[0].output, [t.name for t in failed]
    for test in failed[1:]:
        assert test.function == "truncate_at_stop" and "ran out of time" in failed[0].output, (test.name, test.output)
        assert test.output.startswith("Not run: an earlier test of truncate_at_stop"), test.output
    lost = {name for name, (score, maximum) in result.by_function().items() if score < maximum}
    assert lost == {"truncate_at_stop"}
    if len(failed) == 1:
        score, maximum = result.by_function()["truncate_at_stop"]
        assert maximum - score == pytest.approx(failed[0].max_score, rel=0.35)


@pytest.mark.parametrize("death", list(DEATHS))
def test_dying_inside_a_function_costs_only_that_test(grader, tmp_path, death):
    assert_only_the_end_test_failed(grade_source(grader, tmp_path, reference_with(DEATHS[death])))


@pytest.mark.parametrize("death", list(DEATHS))
def test_dying_at_import_gets_zero_with_the_reason(grader, tmp_path, death):
    result = grade_source(grader, tmp_path, DEATHS[death] + "\n")
    assert result.score == 0 and not result.import_report["ok"]
    assert "could not be imported" in visible_text(result)


def test_a_batch_goes_on_after_every_kind_of_death(grader, tmp_path):
    from autograder.batch import grade_all

    root, out = tmp_path / "class", tmp_path / "out"
    for index, code in enumerate(DEATHS.values()):
        (root / f"a{index}").mkdir(parents=True)
        (root / f"a{index}" / "decoding.py").write_text(code + "\n")
    (root / "z_honest").mkdir()
    (root / "z_honest" / "decoding.py").write_text(REFERENCE)
    rows = {row["student"]: row for row in grade_all(root, out, grader)}
    assert rows["z_honest"]["total"] == pytest.approx(100)
    assert all(rows[f"a{index}"]["total"] == 0 for index in range(len(DEATHS)))


# -- harming other processes ----------------------------------------------------------

HARM = {
    "kill the parent": "import os, signal\ntry: os.kill(os.getppid(), signal.SIGKILL)\nexcept OSError as e: print(e)\n",
    "kill the grader": f"import os, signal\ntry: os.kill({os.getpid()}, signal.SIGKILL)\nexcept OSError as e: print(e)\n",
    "kill everything": "import os, signal\ntry: os.kill(-1, signal.SIGKILL)\nexcept OSError as e: print(e)\n",
    "leave a child behind": "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\n    os._exit(0)\n",
    "process flood": "import os\npids = []\nfor _ in range(200):\n    try:\n        pid = os.fork()\n    except OSError:\n        break\n    if pid == 0:\n        import time; time.sleep(600); os._exit(0)\n    pids.append(pid)\nprint(len(pids))\n",
}


@pytest.mark.parametrize("attack", list(HARM))
def test_harming_other_processes_fails_and_leaves_nothing_behind(grader, isolated, tmp_path, attack):
    result = grade_source(grader, tmp_path, REFERENCE + "\n" + HARM[attack])
    if attack != "process flood":  # a flood starves only itself (its own process limit); the rest holds
        assert result.score == pytest.approx(100)  # the attack did not stop its own honest work
    json.dumps(report.gradescope_results(result))
    assert live_processes_of(grader.zygote.sandbox_uid) == []
    assert grade_source(grader, tmp_path, REFERENCE, "next").score == pytest.approx(100)


# -- resource abuse ---------------------------------------------------------------------

ABUSE = {
    "infinite loop ignoring SIGTERM": "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: pass",
    "deep recursion": "import sys; sys.setrecursionlimit(10**6)\ndef f(n): return f(n + 1)\nf(0)",
    "memory exhaustion": "blocks = []\nwhile True: blocks.append(bytearray(1 << 28))",
    "huge return value": "return 'x' * (200 << 20)",
    "huge output": "import sys\nfor _ in range(2000): sys.stdout.write('x' * 100_000 + '\\n')\nreturn ''",
    "non-UTF-8 output": "import os; os.write(1, bytes(range(256)) * 1000); os.write(2, b'\\xff\\xfe' * 10000)\nreturn ''",
    "filling the disk": "open('big.bin', 'wb').write(b'0' * (1 << 30))",
}


@pytest.mark.parametrize("abuse", list(ABUSE))
def test_resource_abuse_costs_only_that_test_and_is_reported(grader, tmp_path, abuse):
    result = grade_source(grader, tmp_path, reference_with(ABUSE[abuse]))
    if abuse == "non-UTF-8 output":
        assert result.score == pytest.approx(100)  # printing is allowed; it is only capped
    else:  # (huge output: writing past the 8 MiB file-size limit fails, like a full disk)
        assert_only_the_end_test_failed(result)
    for text in result.printed.values():
        assert len(text) < 10_000
    json.dumps(report.gradescope_results(result))  # always a valid results.json
    if abuse == "infinite loop ignoring SIGTERM":
        assert any("ran out of time" in t.output for t in result.tests)


def test_slow_but_correct_code_earns_what_finishes_in_time(grader, tmp_path):
    result = grade_source(grader, tmp_path, reference_with("import time; time.sleep(30)"))
    assert_only_the_end_test_failed(result)
    assert "ran out of time" in next(t.output for t in result.tests if t.status != "passed")


# -- fuzzing: junk return values never break the grader --------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

junk = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
    st.lists(st.integers(-5, 200000), max_size=30),
    st.builds(lambda shape, value, dtype: f"torch.full({shape}, {value!r}, dtype=torch.{dtype})",
              st.lists(st.integers(0, 4), max_size=3).map(tuple), st.sampled_from([0.0, 1.0, float("nan"), -1e30]),
              st.sampled_from(["float32", "float64", "int64", "bool", "float16"])),
    st.just("object()"), st.just("(_ for _ in ())"), st.just("raise_(ZeroDivisionError)"),
)


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(values=st.lists(junk, min_size=7, max_size=7))
def test_fuzzed_return_values_always_give_a_valid_report(grader, tmp_path_factory, values):
    lines = ["import torch", "def raise_(e):\n    raise e()"]
    for name, value in zip(BASIC.contract, values):
        expression = value if isinstance(value, str) and (value.startswith(("torch.", "object", "(_", "raise_"))) else repr(value)
        if expression == "nan" or expression.endswith("inf"):
            expression = f"float({expression!r})"
        lines.append(f"def {name}(*args, **kwargs):\n    return {expression}")
    result = grade_source(grader, tmp_path_factory.mktemp("fuzz"), "\n".join(lines) + "\n")
    data = report.gradescope_results(result)
    json.dumps(data, allow_nan=False)
    assert result.internal_errors == []
    assert 0 <= data["score"] <= 100
