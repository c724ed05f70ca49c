"""One test per attack class a determined student tried (see docs/THREAT_MODEL.md): each
failed on the grader before these defences and must hold in general, not only for the
exploit shown. The older families (reading the reference, forged reports, deaths,
resource abuse) are in test_adversarial.py."""

from __future__ import annotations

import json
import os
import socket
import textwrap
import threading
import time
from pathlib import Path

import pytest

from autograder import assignment, batch, report
from autograder.grading import Grader
from autograder.sandbox.client import Limits

from autograder.assignment import load as _load_assignment

BASIC = _load_assignment("basic_prompting")  # the assignment these tests grade

REFERENCE = BASIC.reference_path.read_text()
MARKER = '    """The text before the earliest occurrence of any stop sequence."""\n'
END_TEST = "Cuts before the earliest stop sequence [whole text is a stop]"
ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def grader():
    with Grader("tiny-qwen3", Limits(test_seconds=8, submission_seconds=120, memory_bytes=1 << 30)) as grader:
        yield grader


@pytest.fixture(scope="module")
def isolation(grader, tmp_path_factory) -> dict:
    """What isolation this machine gives student code."""
    folder = tmp_path_factory.mktemp("probe") / "probe"
    folder.mkdir()
    (folder / "decoding.py").write_text("x = 1\n")
    return grader.grade(folder).metadata["isolation"]


@pytest.fixture
def mounts(isolation):
    if not isolation.get("hidden_paths"):
        pytest.skip(f"no private mount namespace on this machine (needs root or user namespaces): {isolation}")


def grade_source(grader, tmp_path: Path, source: str, name: str = "attacker"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "decoding.py").write_text(textwrap.dedent(source))
    return grader.grade(folder)


def reference_with(code: str) -> str:
    """The reference, whose truncate_at_stop runs `code` on the hidden test's text "END"."""
    body = textwrap.indent(textwrap.dedent(code), "        ")
    return REFERENCE.replace(MARKER, MARKER + '    if text == "END":\n' + body + "\n")


def printed(result) -> str:
    return result.printed.get("stdout", "") + result.printed.get("stderr", "")


def visible_text(result) -> str:
    return json.dumps(report.gradescope_results(result)) + report.feedback_markdown(result) + printed(result)


# -- reference helpers on demand ---------------------------------------------------------

# Implements none of the pure helpers: each asks the grading process, over the worker's
# own socket, for the reference's answer, as the swapped-in stubs do.
HELPER_THIEF = """
import math, sys
worker = sys.modules.get("autograder.sandbox.worker") or sys.modules["__main__"]

def _ask(name, *args, **kwargs):
    frame = sys._getframe()
    while "sock" not in frame.f_locals:
        frame = frame.f_back
    return worker._helper_stub(frame.f_locals["sock"], name, {})(*args, **kwargs)

def softmax(scores, base=math.e, dim=-1):
    return _ask("softmax", scores, base=base, dim=dim)

def temperature_distribution(logits, temperature):
    return _ask("temperature_distribution", logits, temperature)

def top_p_filter(probs, p):
    return _ask("top_p_filter", probs, p)

def truncate_at_stop(text, stop_sequences):
    return _ask("truncate_at_stop", text, stop_sequences)
"""


def test_the_reference_answers_a_helper_only_for_a_call_entitled_to_it(grader, tmp_path):
    result = grade_source(grader, tmp_path, HELPER_THIEF)
    assert result.score == 0, {t.name: t.score for t in result.tests if t.score}
    assert any("answers softmax only while a test lets the reference stand in" in t.output for t in result.tests)


# -- the checkout and earlier outputs ----------------------------------------------------

PROBE_CHECKOUT = f"""
import os, torch  # the environment's packages stay importable
root = {str(assignment.REPO_ROOT)!r}
try:
    print("listing", sorted(os.listdir(root)))
except OSError as error:
    print("listing", type(error).__name__)
for name in (".git/HEAD", "README.md", "solutions/basic_prompting/decoding.py", "pyproject.toml"):
    try:
        print("CONTENT:", name, open(os.path.join(root, name)).read()[:40])
    except OSError as error:
        print("unreadable", name, type(error).__name__)
"""


def test_no_file_of_the_checkout_is_in_sight(grader, mounts, tmp_path):
    """Not the reference or the suites alone: the history in .git, caches, everything."""
    result = grade_source(grader, tmp_path, PROBE_CHECKOUT)
    text = printed(result)
    assert "CONTENT:" not in text, text
    listing = next(line for line in text.splitlines() if line.startswith("listing"))
    assert ".git" not in listing and "solutions" not in listing and "autograder" not in listing, listing
    assert result.import_report["ok"], result.import_report


@pytest.mark.skipif(not ROOT, reason="only a grader running as root drops student code to another uid")
def test_earlier_outputs_are_out_of_reach(grader, tmp_path):
    """Another batch's grades.csv and feedback files, wherever they are, are the TA's alone."""
    earlier = tmp_path / "earlier-class"
    (earlier / "alice").mkdir(parents=True)
    (earlier / "alice" / "decoding.py").write_text(REFERENCE)
    out = tmp_path / "earlier-output"
    batch.grade_all(earlier, out, grader)
    grader.hidden_paths = [p for p in grader.hidden_paths if p not in (out.resolve(), earlier.resolve())]  # another batch's
    thief = f"""
    for path in ({str(out / 'grades.csv')!r}, {str(out / 'alice' / 'feedback.md')!r}, {str(out / 'alice' / 'results.json')!r}):
        try:
            print("CONTENT:", open(path).read()[:200])
        except OSError as error:
            print("unreadable", type(error).__name__)
    """
    result = grade_source(grader, tmp_path, thief)
    assert "CONTENT:" not in printed(result) and "unreadable" in printed(result), printed(result)
    assert oct((out / "grades.csv").stat().st_mode & 0o777) == "0o600"


# -- the grader's environment ----------------------------------------------------------


def test_the_graders_environment_stays_out(tmp_path, monkeypatch):
    secret = "s3cr3t-" + os.urandom(6).hex()
    monkeypatch.setenv("AUTOGRADER_TEST_SECRET", secret)
    monkeypatch.setenv("HF_TOKEN", secret)
    source = """
    import os
    print(dict(os.environ))
    for path in ("/proc/self/environ", f"/proc/{os.getppid()}/environ", "/proc/1/environ"):
        try:
            print(open(path, "rb").read().decode(errors="replace"))
        except OSError as error:
            print(path, type(error).__name__)
    """
    with Grader("tiny-qwen3", Limits(test_seconds=8, submission_seconds=60)) as fresh:
        result = grade_source(fresh, tmp_path, source)
    assert "PATH" in printed(result)  # what Python needs is there
    assert secret not in visible_text(result)


# -- deadlines and the grading process's own work --------------------------------------


def test_a_call_that_keeps_the_grader_busy_still_times_out(grader, tmp_path):
    """A worker whose next request is always queued never lets a receive block."""
    source = REFERENCE + textwrap.dedent("""
        def greedy_decode(model, tokenizer, prompt, max_new_tokens):
            step = 0
            while True:  # every model call and helper call is a message to the grading process
                step += 1
                model(torch.tensor([[1, 2, 3]]))
                softmax(torch.tensor([float(step), 0.0]))
        """)
    started = time.monotonic()
    result = grade_source(grader, tmp_path, source)
    greedy = [t for t in result.tests if t.function == "greedy_decode"]
    assert "ran out of time" in greedy[0].output, greedy[0].output
    assert greedy[0].seconds < 8 + 5
    assert all(t.output.startswith("Not run:") for t in greedy[1:])
    assert time.monotonic() - started < 60


def test_a_helper_request_costs_the_grading_process_little(grader, tmp_path):
    """The reference's helpers run in the grading process: bounded in size, rows and time."""
    source = REFERENCE + textwrap.dedent("""
        def greedy_decode(model, tokenizer, prompt, max_new_tokens):
            top_p_filter(torch.full((1 << 20, 16), 1 / 16), 0.5)  # a million rows for the reference to filter
            return []
        """)
    started = time.monotonic()
    result = grade_source(grader, tmp_path, source)
    greedy = [t for t in result.tests if t.function == "greedy_decode" and t.status == "failed"]
    assert greedy and all(t.seconds < 8 for t in greedy)
    assert any("the grader answers helper calls" in t.output for t in greedy), greedy[0].output
    assert time.monotonic() - started < 90


# -- report size -------------------------------------------------------------------------


def test_reports_stay_small_whatever_a_submission_returns(grader, tmp_path):
    source = REFERENCE + textwrap.dedent("""
        def generate_text(model, tokenizer, prompt, **kwargs):
            return "\\u00e9x" * 700_000
        def truncate_at_stop(text, stop_sequences):
            return "\\n".join(["line"] * 300_000)
        """)
    result = grade_source(grader, tmp_path, source)
    target = tmp_path / "out"
    batch.write_reports(target, result, "digest")
    sizes = {name: (target / name).stat().st_size for name in ("results.json", "feedback.md")}
    assert sum(sizes.values()) < 1 << 20, sizes
    assert all(len(t.output) <= 6100 for t in result.tests)


# -- memory over all of a submission's processes ----------------------------------------

HOG = """
import os, time
children = []
for _ in range(5):  # 2 GB in all, 400 MB each: under a per-process limit of 1 GB
    pid = os.fork()
    if pid == 0:
        try:
            block = bytearray(400 << 20)
            for i in range(0, len(block), 4096):
                block[i] = 1
            time.sleep(2)
            os._exit(0)
        except MemoryError:
            os._exit(3)
    children.append(pid)
codes = [os.waitpid(pid, 0)[1] for pid in children]
if any(codes):
    raise MemoryError(f"the limit held: {codes}")
"""


def test_the_memory_limit_holds_across_a_submissions_processes(grader, tmp_path):
    result = grade_source(grader, tmp_path, reference_with(HOG))
    memory = result.metadata["isolation"].get("memory", "")
    if "cgroup" not in memory:
        pytest.skip(f"no memory cgroup on this machine: {memory or result.metadata['isolation']}")
    end = next(t for t in result.tests if t.name == END_TEST)
    assert end.status == "failed", "2 GB in 5 processes under a 1 GB limit"
    others = {t.function for t in result.tests if t.status != "passed"}
    assert others == {"truncate_at_stop"}


# -- state that outlives a student, host services -----------------------------------------

LEAVE_STATE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
key = libc.syscall(248, b"user", b"agnote", b"from the first student", 22, -4)  # add_key to the user keyring
print("add_key", key, os.strerror(ctypes.get_errno()) if key < 0 else "")
shm = libc.shmget(0x4147, 4096, 0o1666)
print("shmget", shm)
for folder in ("/tmp", "/dev/shm", "/var/tmp", os.getcwd()):
    try:
        with open(os.path.join(folder, "agnote"), "w") as handle:
            handle.write("from the first student")
        os.chmod(os.path.join(folder, "agnote"), 0o666)
    except OSError as error:
        print("no write", folder, error)
"""

FIND_STATE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
found = libc.syscall(250, 2, -4, b"user", b"agnote", 0)  # KEYCTL_SEARCH in the user keyring
print("FOUND key" if found > 0 else "no key")
print("FOUND shm" if libc.shmget(0x4147, 0, 0) >= 0 else "no shm")
for folder in ("/tmp", "/dev/shm", "/var/tmp", os.getcwd()):
    print(("FOUND file " + folder) if os.path.exists(os.path.join(folder, "agnote")) else "no file")
"""


def test_nothing_passes_from_one_student_to_the_next(grader, tmp_path):
    first = grade_source(grader, tmp_path, LEAVE_STATE, "first")
    second = grade_source(grader, tmp_path, FIND_STATE, "second")
    assert "FOUND" not in printed(second), (printed(first), printed(second))
    assert "add_key -1" in printed(first), printed(first)  # nothing left in the kernel after the grader ends either
    for folder in ("/tmp", "/dev/shm", "/var/tmp"):
        assert not os.path.exists(os.path.join(folder, "agnote")), f"{folder}/agnote left on the machine"


@pytest.fixture
def host_service():
    """A root-owned Unix socket anyone may connect to, outside /tmp (think docker.sock);
    yields (path, connections made)."""
    folder = Path("/run" if os.access("/run", os.W_OK) else "/var/tmp") / f"agtest-{os.getpid()}"
    folder.mkdir(mode=0o755)
    path = folder / "service.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    os.chmod(path, 0o777)
    server.listen()
    server.settimeout(0.2)
    connections: list[str] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                peer, _ = server.accept()
            except OSError:
                continue
            connections.append("connected")
            peer.sendall(b"hello from the host\n")
            peer.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield path, connections
    finally:
        stop.set()
        thread.join(2)
        server.close()
        path.unlink(missing_ok=True)
        folder.rmdir()


def test_host_service_sockets_cannot_be_reached(grader, tmp_path, host_service):
    path, connections = host_service
    source = f"""
    import socket
    try:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect({str(path)!r})
        print("REACHED", client.recv(100))
    except OSError as error:
        print("refused", error)
    """
    result = grade_source(grader, tmp_path, source)
    assert connections == [] and "REACHED" not in printed(result), printed(result)


# -- a hanging submission ---------------------------------------------------------------------

HANG_EVERYWHERE = "\n".join(
    f"def {name}(*args, **kwargs):\n    while True:\n        pass\n" for name in BASIC.contract)


def test_a_submission_that_hangs_everywhere_costs_little(tmp_path):
    """With the default limits: after a function's first timeout its other tests are not
    run, and a call's limit follows the reference's time for the test (10 s at least)."""
    started = time.monotonic()
    with Grader("tiny-qwen3") as default:
        result = grade_source(default, tmp_path, HANG_EVERYWHERE)
    assert result.score == 0
    for function in BASIC.contract:
        tests = [t for t in result.tests if t.function == function]
        assert "ran out of time" in tests[0].output, tests[0].output
        assert all(t.output.startswith("Not run:") for t in tests[1:]), function
    assert time.monotonic() - started < 240
