"""The grading process's side of the sandbox: start the zygote, spawn workers, call them."""

from __future__ import annotations

import array
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..assignment import HIDDEN_FROM_STUDENTS, REPO_ROOT, Assignment, load as load_assignment
from ..models import ModelUnavailableError
from . import cgroup, scratch, scripted, wire
from .limits import Limits, usable_cpus
from .worker import WORKER_INTERNAL_EXIT


class OnePathPerCall:
    """Which memo lookups one call into a submission gets answered.

    Each prefix gets at most one continuation answered: the first one asked for. A
    decoding loop asks for exactly one per step, so it loses nothing; code that probes
    many candidate tokens to find out which one the reference chose gets no answer for
    all but the first (and those calls simply run the real model)."""

    # What one call may make this process remember: prefixes longer than any context the
    # model takes are never answered, and each remembered prefix costs a 16-byte digest.
    MAX_PREFIX_TOKENS = 1 << 15
    MAX_PREFIXES = 1 << 16

    def __init__(self):
        self._chosen: dict[bytes, int] = {}

    def allows(self, prefix: tuple[int, ...]) -> bool:
        if not prefix or len(prefix) > self.MAX_PREFIX_TOKENS:
            return False
        key = hashlib.blake2b(array.array("q", prefix[:-1]).tobytes(), digest_size=16).digest()
        if key not in self._chosen and len(self._chosen) >= self.MAX_PREFIXES:
            return False
        return self._chosen.setdefault(key, prefix[-1]) == prefix[-1]


class GraderFailure(Exception):
    """The grading machinery failed (the model process died, a worker's own code broke):
    not the student's doing, so never recorded as the student's result."""



def _outermost(paths: list) -> list[Path]:
    """`paths` without repeats and without those inside another one (hidden with it already)."""
    unique = list(dict.fromkeys(Path(p) for p in paths))
    return [p for p in unique if not any(other != p and other in p.parents for other in unique)]

class WorkerFailure(Exception):
    """A call did not return normally; `feedback` says why, for the student."""

    feedback = "the call failed"


class StudentError(WorkerFailure):
    """The submission's code raised an exception."""

    def __init__(self, error: dict):
        super().__init__(f"{error.get('type')}: {error.get('message')}")
        self.error = error
        self.type_name = str(error.get("type", "Exception"))
        self.message = str(error.get("message", ""))
        self.traceback = str(error.get("traceback", ""))


class WorkerTimeout(WorkerFailure):
    def __init__(self, seconds: float, budget: bool = False):
        what = "the time budget for the whole submission" if budget else "the time limit for one call"
        super().__init__(f"ran out of time ({what}: {seconds:g} s)")
        self.seconds, self.budget = seconds, budget


class WorkerCrashed(WorkerFailure):
    def __init__(self, how: str):
        super().__init__(how)
        self.how = how


class ProtocolViolation(WorkerFailure):
    """The worker sent something that is not a valid answer (e.g. it wrote to the socket itself)."""


def _error_dict(error) -> dict:
    """A worker's error report as {type, message, traceback} strings, whatever it sent."""
    if not isinstance(error, dict):
        return {"type": "Error", "message": str(error)[:2000]}
    return {"type": str(error.get("type") or "Exception")[:200], "message": str(error.get("message", ""))[:8000],
            "traceback": str(error.get("traceback", ""))[:8000]}


def _status_text(status: dict) -> str:
    if not status.get("exited"):
        return "the process stopped answering"
    if "signal" in status:
        name = signal.Signals(status["signal"]).name if status["signal"] in signal.Signals._value2member_map_ else status["signal"]
        hint = " (often: memory limit exceeded)" if status["signal"] in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT) else ""
        return f"the process was killed by signal {name}{hint}"
    if status.get("exit_code") == WORKER_INTERNAL_EXIT:
        return "the grader's worker failed (an error in the grader, not in your code)"
    return f"the process exited with code {status.get('exit_code')} (os._exit in your code?)"


# What of the grader's environment reaches the model process (and so every worker forked
# from it): what Python, torch and the model loader need, nothing else. A TA's shell
# holds tokens and passwords; a variable not named here never reaches student code.
ENVIRONMENT_NAMES = {"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME", "PYTHONPATH",
                     "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV", "XDG_CACHE_HOME",
                     "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                     "TRANSFORMERS_CACHE", "HF_HUB_DISABLE_TELEMETRY", "TOKENIZERS_PARALLELISM",
                     "AUTOGRADER_CACHE", "AUTOGRADER_MODEL", "AUTOGRADER_SANDBOX_UID"}
ENVIRONMENT_PREFIXES = ("LC_", "OMP_", "MKL_", "OPENBLAS_", "KMP_", "GOMP_")


def model_process_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The allow-listed part of `environ` (default: this process's), for the model process."""
    environ = dict(os.environ if environ is None else environ)
    kept = {k: v for k, v in environ.items() if k in ENVIRONMENT_NAMES or k.startswith(ENVIRONMENT_PREFIXES)}
    kept["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), environ.get("PYTHONPATH")]))
    # Idle OpenMP threads that spin instead of sleeping make the grading process and
    # a worker, taking turns on 2 cores, ~10x slower (measured on sampling loops).
    kept.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return kept


class Zygote:
    """A fresh Python process that loads the model once and forks workers on request.

    It runs in a session of its own, so a Ctrl-C at the terminal reaches only the grading
    process (which then stops cleanly), and it dies with the grading process (a parent-
    death signal), so a SIGKILLed grader leaves nothing running."""

    def __init__(self, model_name: str, *, startup_seconds: float = 1800.0):
        self._scratch = scratch.make("zygote")
        ours, theirs = socket.socketpair()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "autograder.sandbox.worker", "--control-fd", str(theirs.fileno()), "--model", model_name,
             "--parent-pid", str(os.getpid())],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, cwd=self._scratch, env=model_process_environment(),
            start_new_session=True,
        )
        theirs.close()
        self.control = ours
        try:
            header, _ = wire.recv_message(ours, deadline=time.monotonic() + startup_seconds)
        except (wire.WireError, TimeoutError) as error:
            self.close()
            raise RuntimeError(f"the model process did not start: {error}") from None
        if header.get("op") != "ready":
            self.close()
            if header.get("type") == "ModelUnavailableError":
                raise ModelUnavailableError(header.get("message", ""))
            raise RuntimeError(f"loading {model_name!r} failed: {header.get('type')}: {header.get('message')}")
        self.model = header["model"]
        self.versions = header["versions"]
        self.sandbox_uid = header.get("sandbox_uid")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def spawn(self, spec: dict) -> tuple[int, socket.socket]:
        ours, theirs = socket.socketpair()
        socket.send_fds(self.control, [b"F"], [theirs.fileno()])
        wire.send_message(self.control, {"op": "spawn", **spec})
        theirs.close()
        header, _ = wire.recv_message(self.control, deadline=time.monotonic() + 60)
        if header.get("op") != "spawned":
            ours.close()
            raise wire.WireError(f"the model process could not start a worker: {header.get('message', header)}")
        return int(header["pid"]), ours

    def exit_status(self, pid: int, wait: float = 2.0) -> dict:
        socket.send_fds(self.control, [b"F"], [])
        wire.send_message(self.control, {"op": "status", "pid": pid, "wait": wait})
        header, _ = wire.recv_message(self.control, deadline=time.monotonic() + wait + 30)
        return header

    def sweep(self) -> None:
        """Kill whatever processes a submission left behind (where isolation allows it)."""
        socket.send_fds(self.control, [b"F"], [])
        wire.send_message(self.control, {"op": "sweep"})
        wire.recv_message(self.control, deadline=time.monotonic() + 30)

    def close(self) -> None:
        try:
            self.control.close()
        finally:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            shutil.rmtree(self._scratch, ignore_errors=True)


@dataclass
class Worker:
    """One module's code in its own forked process; `call` runs one of its functions."""

    zygote: Zygote
    module_path: Path
    output_dir: Path
    limits: Limits = field(default_factory=Limits)
    trusted: bool = False
    helper: Callable[[str, list, dict], object] | None = None  # answers swapped-helper calls
    # The reference's next-token logits row after a token prefix, or None (see `memo`).
    memo: Callable[[tuple[int, ...]], object] | None = None
    hidden_paths: tuple[Path, ...] = ()  # folders covered up for this worker, beyond the project's own
    assignment: Assignment | None = None  # the module's contract (default: `assignment.DEFAULT`'s)
    script: scripted.Script | None = None  # what `scripted.SCRIPTED_MODEL` follows in the current call
    pid: int | None = None
    import_report: dict | None = None
    used_seconds: float = 0.0
    last_recorded: dict | None = None  # trusted workers: logits rows the last call computed

    def start(self) -> dict:
        """Fork the worker and import the module; returns the import report.

        Importing counts against the submission's time budget, restarts included: code
        that dies in every call cannot buy itself a fresh import each time for free."""
        if not self.trusted and self.used_seconds >= self.limits.submission_seconds:
            self.import_report = {"ok": False, "error": {"type": "Timeout", "message": (
                f"the time budget for the whole submission ({self.limits.submission_seconds:g} s) is used up")}}
            return self.import_report
        started = time.monotonic()
        try:
            self.import_report = self._start()
        except GraderFailure:
            self.kill()
            raise
        except Exception as error:  # noqa: BLE001 - whatever the worker sent, this submission only
            self.kill()
            self.import_report = {"ok": False, "error": {"type": "Crash", "message": f"the worker failed to start ({error})"}}
        finally:
            self.used_seconds += time.monotonic() - started
        return self.import_report

    def _start(self) -> dict:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._remove_scratch()  # a restart's predecessor
        # Outside every hidden folder: the worker mounts a private tmpfs on it.
        folder = scratch.make("worker")
        self._scratch = folder
        memory = self._memory_cgroup()
        graded = self.assignment or load_assignment()
        # The checkout, plus the suite and reference of an assignment kept outside it.
        own = [p for p in (graded.suite_dir, graded.reference_path.parent)
               if not any(p == top or top in p.parents for top in HIDDEN_FROM_STUDENTS)]
        hidden = _outermost([*HIDDEN_FROM_STUDENTS, *own, *self.hidden_paths])
        spec = {
            "memory": memory,
            "module_path": str(Path(self.module_path).resolve()),
            "module_name": graded.module_name,
            "contract": list(graded.contract),
            "output_dir": str(self.output_dir),
            "scratch_dir": str(folder),
            "repo_root": str(REPO_ROOT),
            "hidden_paths": [str(p) for p in hidden],
            "trusted": self.trusted,
            "memo": self.memo is not None and not self.trusted,
            "record": self.trusted,
            "threads": self.limits.threads or usable_cpus(),
            "limits": {"memory_bytes": self.limits.memory_bytes, "file_bytes": self.limits.output_bytes,
                       "processes": self.limits.processes},
        }
        try:
            self.pid, self._sock = self.zygote.spawn(spec)
        except (OSError, wire.WireError, TimeoutError) as error:
            self.pid = None
            raise GraderFailure(f"the model process could not start a worker ({error})") from None
        deadline = time.monotonic() + self.limits.import_seconds
        try:
            # The first message comes before any student code runs; the second after the import.
            isolated, _ = wire.recv_message(self._sock, deadline=deadline)
            if isolated.get("op") != "isolated":
                raise wire.WireError(f"expected the isolation report, got {isolated.get('op')!r}")
            header, _ = wire.recv_message(self._sock, deadline=deadline)
            if header.get("op") != "imported":
                raise wire.WireError(f"expected the import report, got {header.get('op')!r}")
        except TimeoutError:
            self.kill()
            return {"ok": False, "error": {"type": "Timeout", "message": f"importing took longer than {self.limits.import_seconds:g} s"}}
        except wire.PeerClosed:
            pid, self.pid = self.pid, None
            return {"ok": False, "error": {"type": "Crash", "message": self._crash_text(pid)}}
        except wire.WireError as error:
            self.kill()
            return {"ok": False, "error": {"type": "Crash", "message": f"the worker sent an invalid answer ({error})"}}
        # Plain types only: whatever this header holds came from after student code ran.
        report = {k: v for k, v in header.items() if k not in ("op", "blobs", "isolation")}
        report["ok"] = report.get("ok") is True
        missing = report.get("missing")
        report["missing"] = [str(name) for name in missing] if isinstance(missing, list) else []
        if not report["ok"]:
            report["error"] = _error_dict(report.get("error"))
        report["isolation"] = isolated.get("isolation") if isinstance(isolated.get("isolation"), dict) else {}
        if not report["ok"]:
            self.pid = None
        return report

    def _memory_cgroup(self) -> dict:
        """A memory cgroup for this start of the worker (the limit over all its processes),
        or why there is none: {"procs": file to join, "description"} / {"reason"}."""
        self._remove_cgroup()  # a restart's predecessor
        if self.trusted or not self.limits.memory_bytes:
            return {}
        try:
            self._cgroup = cgroup.MemoryCgroup.create(cgroup.cgroup_name(), self.limits.memory_bytes)
        except (OSError, ValueError) as error:
            return {"reason": str(error)}
        return {"procs": os.path.join(self._cgroup.path, "cgroup.procs"), "description": self._cgroup.describe()}

    def _remove_cgroup(self) -> None:
        group, self._cgroup = getattr(self, "_cgroup", None), None
        if group is not None:
            group.remove()

    def _crash_text(self, pid: int) -> str:
        """How the worker `pid` ended, in the student's words (see `_exit_status`)."""
        group = getattr(self, "_cgroup", None)
        text = _status_text(self._exit_status(pid))
        if group is not None and "SIGKILL" in text and group.oom_kills():
            limit = self.limits.memory_bytes / 2**30
            text = (f"the process was killed: your code used more than the memory limit ({limit:g} GiB beyond the "
                    f"model, over all the processes it started)")
        return text

    @property
    def alive(self) -> bool:
        return self.pid is not None

    def call(self, function: str, *args, seed: int | None = None, swap: tuple[str, ...] = (),
             seconds: float | None = None, **kwargs):
        """Run `function(*args, **kwargs)` in the worker; plain data comes back.

        `swap`: the helpers this call may have answered by the reference (decided here,
        whatever the worker asks). `seconds`: this call's limit (default: the limits'
        `test_seconds`), always within what is left of the submission's budget. The
        deadline is checked after every message, so a worker that keeps the grader busy
        answering requests is stopped as surely as one that goes quiet.

        Raises `StudentError`, `WorkerTimeout` or `WorkerCrashed` (after the latter two
        the worker is gone and `start()` makes a fresh one), or `GraderFailure`.
        """
        if not self.alive:
            raise WorkerCrashed("the worker is not running")
        left = self.limits.submission_seconds - self.used_seconds
        if left <= 0:
            raise WorkerTimeout(self.limits.submission_seconds, budget=True)
        limit = self.limits.test_seconds if seconds is None else seconds
        budget_bound = left < limit
        limit = min(limit, left)
        started = time.monotonic()
        deadline = started + limit
        self._memo_paths = OnePathPerCall()
        self._swap = frozenset(swap)
        try:
            wire.send_value_message(
                self._sock, {"op": "call", "fn": function, "seed": seed, "swap": list(swap)},
                {"args": list(args), "kwargs": kwargs},
            )
            while True:
                header, blobs = wire.recv_message(self._sock, deadline=deadline)
                if time.monotonic() >= deadline:
                    raise TimeoutError
                if header.get("op") == "helper" and self.helper is not None:
                    self._answer_helper(header, blobs)
                    continue
                if header.get("op") == "memo":
                    self._answer_memo(header, blobs)
                    continue
                if header.get("op") == "script":
                    self._answer_script(header, blobs)
                    continue
                if header.get("op") != "result":
                    raise wire.WireError(f"unexpected message {header.get('op')!r}")
                if not header.get("ok"):
                    raise StudentError(_error_dict(header.get("error")))
                value = wire.decode(header.get("value"), blobs)
                if self.trusted and header.get("recorded"):
                    value, self.last_recorded = value["value"], value["recorded"]
                return value
        except TimeoutError:
            self.kill()
            raise WorkerTimeout(self.limits.submission_seconds if budget_bound else limit, budget=budget_bound) from None
        except (wire.PeerClosed, BrokenPipeError, ConnectionResetError):
            pid, self.pid = self.pid, None
            raise WorkerCrashed(self._crash_text(pid)) from None
        except wire.WireError as error:
            self.kill()
            raise ProtocolViolation(f"the worker sent an invalid answer ({error})") from None
        finally:
            self._swap = frozenset()
            self.used_seconds += time.monotonic() - started

    def _exit_status(self, pid: int) -> dict:
        """How the worker `pid` ended; `GraderFailure` when the grader's side is at fault
        (the model process is gone, or the worker's own code failed)."""
        try:
            status = self.zygote.exit_status(pid)
        except (OSError, wire.WireError, TimeoutError) as error:
            raise GraderFailure(f"the model process is gone ({error or type(error).__name__})") from None
        if status.get("exit_code") == WORKER_INTERNAL_EXIT and status.get("exited") and "signal" not in status:
            raise GraderFailure("the grader's worker failed (its own code, not the submission's)")
        return status

    def _answer_helper(self, header: dict, blobs: list[bytes]) -> None:
        """The reference's answer to a swapped-in helper, if this call is entitled to it."""
        name = str(header.get("fn"))
        if name not in self._swap:
            wire.send_message(self._sock, {"ok": False, "error": {"type": "RuntimeError", "message": (
                f"the grader answers {name} only while a test lets the reference stand in for it")}})
            return
        payload = wire.decode(header.get("value"), blobs)
        if not (isinstance(payload, dict) and isinstance(payload.get("args", []), list)
                and isinstance(payload.get("kwargs", {}), dict) and all(isinstance(k, str) for k in payload.get("kwargs", {}))):
            raise wire.WireError("a helper call that is not (args, kwargs)")
        try:
            value = self.helper(name, payload.get("args", []), payload.get("kwargs", {}))
        except Exception as error:  # noqa: BLE001 - the reference's ValueError is an answer too
            wire.send_message(self._sock, {"ok": False, "error": {"type": type(error).__name__, "message": str(error)}})
        else:
            wire.send_value_message(self._sock, {"ok": True}, value)

    def _answer_script(self, header: dict, blobs: list[bytes]) -> None:
        """The scripted model's next tokens (see `scripted`), from this call's `script`."""
        question = scripted.valid_question(wire.decode(header.get("value"), blobs))
        if self.script is None or question is None:
            wire.send_message(self._sock, {"ok": False, "message": "the scripted model was asked something it cannot answer"})
            return
        wire.send_value_message(self._sock, {"ok": True}, self.script.next_tokens(*question))

    def _answer_memo(self, header: dict, blobs: list[bytes]) -> None:
        """Rows for the prefixes a worker's model call needs (see `OnePathPerCall`)."""
        answers: list = []
        try:
            prefixes = wire.decode(header.get("value"), blobs)
            for prefix in prefixes[:wire.MEMO_ROWS_PER_REQUEST]:
                if len(prefix) > OnePathPerCall.MAX_PREFIX_TOKENS:
                    answers.append(None)
                    continue
                prefix = tuple(int(i) for i in prefix)
                answers.append(self.memo(prefix) if self._memo_paths.allows(prefix) else None)
        except (TypeError, ValueError, OverflowError, wire.WireError):
            answers = []
        wire.send_value_message(self._sock, {"ok": True}, answers)

    def logits(self, token_ids: list[int], start: int = 0):
        """Trusted workers: the model's logits at every position of `token_ids` from `start` on."""
        assert self.trusted
        wire.send_value_message(self._sock, {"op": "logits", "start": int(start)}, list(token_ids))
        header, blobs = wire.recv_message(self._sock, deadline=time.monotonic() + 600)
        return wire.decode(header["value"], blobs)

    def kill(self) -> None:
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                kill()
            except (ProcessLookupError, PermissionError):
                continue
        try:
            self._sock.close()
        except OSError:
            pass
        try:
            self.zygote.exit_status(pid, wait=5.0)  # reaped, so it holds no process slot
        except (OSError, wire.WireError, TimeoutError):
            pass  # the model process is gone, and its children with it; the grader restarts it

    def close(self) -> None:
        self.kill()
        try:
            self.zygote.sweep()  # processes it left behind, even outside its process group
        except (OSError, wire.WireError, TimeoutError):
            pass  # the model process is gone; the grader restarts it
        self._remove_cgroup()  # and its processes, wherever they went
        self._remove_scratch()

    def _remove_scratch(self) -> None:
        folder, self._scratch = getattr(self, "_scratch", None), None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def output(self, limit: int = 4000) -> dict[str, str]:
        """What the submission printed (the first `limit` characters of each stream)."""
        result = {}
        for name in ("stdout", "stderr"):
            path = self.output_dir / f"{name}.txt"
            if path.exists():
                with open(path, "rb") as handle:
                    raw = handle.read(limit + 1)
                text = raw.decode("utf-8", errors="replace")
                result[name] = text[:limit] + ("\n[... output truncated]" if len(raw) > limit else "")
        return result
