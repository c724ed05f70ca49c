"""The zygote (holds the model, forks workers) and the worker loop (runs one module's code).

Started by the grading process as ``python -m autograder.sandbox.worker --control-fd N``.
The zygote sets torch to one thread *before* loading the model and never computes:
a forked child that uses several threads hangs if its parent already ran a
multi-threaded torch operation. Each worker then sets its own thread count.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import os
import resource
import signal
import socket
import sys
import time
import traceback

from . import wire
from .isolation import die_with_parent
from .memory import release_free_memory

# Exceptions a submission may raise that keep their type when they cross the wire;
# any other type arrives as RuntimeError with the original type name in the message.
PORTABLE_ERRORS = {cls.__name__: cls for cls in (ValueError, TypeError, IndexError, KeyError, RuntimeError,
                                                  NotImplementedError, ZeroDivisionError, AttributeError, AssertionError)}
MAX_MESSAGE_CHARS = 2000
# Logits rows the reference worker hands over per call (one message stays under wire's
# frame limit at Qwen3's vocabulary); rows beyond it are simply not memoised.
MAX_RECORDED_ROWS = 96
MAX_HELPER_ANSWERS = 64  # helper answers a worker keeps (see `_helper_stub`)
WORKER_INTERNAL_EXIT = 86  # the worker's own code failed (client.WORKER_INTERNAL_EXIT)


# --- zygote -------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--parent-pid", type=int, default=0)
    args = parser.parse_args()
    control = socket.socket(fileno=args.control_fd)
    # Die with the grading process (SIGKILLed graders leave no model process behind), and
    # take no Ctrl-C meant for it: it stops us itself, by closing the control socket.
    die_with_parent(args.parent_pid or None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    import torch

    torch.set_num_threads(1)  # before loading; see the module docstring
    try:
        from ..models import load_model_with_info

        model, tokenizer, info = load_model_with_info(args.model, mapped_weights=True)
    except BaseException as error:  # noqa: BLE001 - report why, whatever it is
        wire.send_message(control, {"op": "failed", "type": type(error).__name__, "message": str(error)})
        sys.exit(1)
    import transformers

    from .isolation import claim_sandbox_uid

    sandbox_uid = claim_sandbox_uid()
    wire.send_message(control, {
        "op": "ready",
        "sandbox_uid": sandbox_uid,
        "pid": os.getpid(),
        "model": dataclasses.asdict(info),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "python": sys.version.split()[0]},
    })
    # Workers are forked from here: a garbage collection in one writes to every object it
    # visits, copying this process's heap page by page into the worker's memory (and its
    # cgroup). Frozen objects are never visited again.
    gc.collect()
    gc.freeze()
    _serve_zygote(control, model, tokenizer)


class Children:
    """The model process's children: the workers it forks, whose exit statuses it keeps
    until asked, and the orphans it reaps as subreaper, which it does not record (a
    process flood would only grow the table). `reap` is the SIGCHLD handler."""

    def __init__(self):
        self.statuses: dict[int, int | None] = {}  # worker pid -> exit status, None while running

    def reap(self, *_) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.statuses:
                self.statuses[pid] = status

    def fork(self) -> int:
        """`os.fork()` for a worker, registered before SIGCHLD may run `reap`, so a worker
        that dies at once keeps its status. Returns 0 in the worker."""
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            pid = os.fork()
            if pid == 0:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                return 0
            self.statuses[pid] = None
            return pid
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)

    def exit_status(self, pid: int, wait: float) -> int | None:
        """The worker's wait status once it has ended (waiting up to `wait` s), else None."""
        deadline = time.monotonic() + wait
        while self.statuses.get(pid) is None and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.01)
        status = self.statuses.get(pid)
        if status is not None:
            del self.statuses[pid]
        return status


def _serve_zygote(control: socket.socket, model, tokenizer) -> None:
    children = Children()
    _become_subreaper()
    signal.signal(signal.SIGCHLD, children.reap)
    while True:
        try:
            _, fds, _, _ = socket.recv_fds(control, 1, 1)
            header, _ = wire.recv_message(control)
        except (wire.WireError, OSError):
            os._exit(0)  # the grading process is gone: so are we
        try:
            _serve_request(control, header, fds, model, tokenizer, children)
        except Exception as error:  # noqa: BLE001 - one failed request must not end the model process
            wire.send_message(control, {"op": "failed", "type": type(error).__name__, "message": str(error)[:2000]})


def _serve_request(control: socket.socket, header: dict, fds: list[int], model, tokenizer, children: Children) -> None:
    """One request from the grading process: spawn a worker, sweep, or report an exit status."""
    try:
        if header["op"] == "spawn":
            parent = os.getpid()
            pid = children.fork()
            if pid == 0:
                code = WORKER_INTERNAL_EXIT  # unless the loop below ends as it should
                try:
                    die_with_parent(parent)
                    control.close()
                    _run_worker(socket.socket(fileno=fds[0]), model, tokenizer, header)
                    code = 0
                except BaseException:  # noqa: BLE001 - our own failure: say so by the exit status
                    with contextlib.suppress(BaseException):
                        os.write(2, f"\n[grader's worker failed]\n{traceback.format_exc()[-4000:]}".encode(errors="replace"))
                finally:
                    os._exit(code)
            wire.send_message(control, {"op": "spawned", "pid": pid})
        elif header["op"] == "sweep":
            from .isolation import sweep

            sweep()
            wire.send_message(control, {"op": "swept"})
        elif header["op"] == "status":
            status = children.exit_status(header["pid"], float(header.get("wait", 1.0)))
            wire.send_message(control, {"op": "status", "pid": header["pid"], **_describe_status(status)})
    finally:
        for fd in fds:  # the worker's end of its socket is the worker's now
            os.close(fd)


def _become_subreaper() -> None:
    """Orphans of our workers (a submission's children) become our children, so we reap
    them: unreaped zombies of the sandbox uid would count against the next worker's
    process limit, and the machine's init may not reap them promptly."""
    import ctypes
    import ctypes.util

    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _describe_status(status: int | None) -> dict:
    if status is None:
        return {"exited": False}
    if os.WIFSIGNALED(status):
        return {"exited": True, "signal": os.WTERMSIG(status)}
    return {"exited": True, "exit_code": os.WEXITSTATUS(status)}


# --- worker -------------------------------------------------------------------------


def _apply_limits(limits: dict) -> None:
    """Resource limits for the submission's process (and anything it starts)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if limits.get("memory_bytes"):
        # Address space already mapped (the shared model) plus the allowance.
        with open("/proc/self/statm") as statm:
            mapped = int(statm.read().split()[0]) * resource.getpagesize()
        cap = mapped + int(limits["memory_bytes"])
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    if limits.get("file_bytes"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writing past the cap fails instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"], limits["file_bytes"]))


def _redirect_output(output_dir: str) -> None:
    for fd, name in ((1, "stdout.txt"), (2, "stderr.txt")):
        target = os.open(os.path.join(output_dir, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(target, fd)
        os.close(target)


def _run_worker(sock: socket.socket, model, tokenizer, spec: dict) -> None:
    os.setsid()  # own process group: the grading process can kill it and all it started
    import torch

    from . import isolation, memo, stubs  # noqa: F401 - import now: the source may be hidden below

    _redirect_output(spec["output_dir"])
    try:
        with open(spec["module_path"], "rb") as handle:  # read before privileges are dropped
            source = handle.read()
    except OSError:
        source = None
    memory = _join_memory_cgroup(spec.get("memory") or {})  # while still root: it cannot leave it
    isolation_report = {"user": "trusted reference worker"} if spec.get("trusted") else isolation.isolate(
        spec.get("hidden_paths", []), spec["scratch_dir"],
        int(spec.get("limits", {}).get("processes") or isolation.MAX_PROCESSES))
    if not spec.get("trusted"):
        isolation_report["memory"] = memory
    os.chdir(spec["scratch_dir"])
    sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != spec.get("repo_root")]
    sys.path.insert(0, os.path.dirname(spec["module_path"]))
    _apply_limits(spec.get("limits", {}))
    torch.set_num_threads(int(spec.get("threads") or 1))
    # Line-buffered: the worker ends with os._exit, which flushes nothing.
    sys.stdout = open(1, "w", closefd=False, errors="replace", buffering=1)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False, errors="replace", buffering=1)  # noqa: SIM115

    # Sent before any student code runs, so student code cannot forge it.
    wire.send_message(sock, {"op": "isolated", "isolation": isolation_report})
    module, report = _import_submission(spec["module_path"], source, spec.get("module_name", "decoding"), spec.get("contract", []))
    _flush()
    wire.send_message(sock, {"op": "imported", **report})
    if module is None:
        return
    originals = {name: getattr(module, name, None) for name in spec.get("contract", [])}
    refs = {"model": model, "tokenizer": tokenizer}
    if spec.get("record"):
        spec["recorded"] = {}
        memo.install_recorder(model, spec["recorded"])
    elif spec.get("memo"):
        memo.install_memo(model, lambda prefixes: _memo_rows(sock, prefixes))
    while True:
        try:
            header, blobs = wire.recv_message(sock)
        except wire.WireError:
            return
        if header.get("op") == "call":
            _serve_call(sock, module, originals, refs, header, blobs, spec)
            _flush()
        elif header.get("op") == "logits" and spec.get("trusted"):
            _serve_logits(sock, model, header, blobs)
        else:
            return
        release_free_memory()


def _join_memory_cgroup(memory: dict) -> str:
    """Join the cgroup the grading process made for this worker; what limits its memory."""
    per_process = "per process only (RLIMIT_AS), not over all its processes"
    if not memory.get("procs"):
        return f"{per_process}: {memory['reason']}" if memory.get("reason") else per_process
    try:
        fd = os.open(memory["procs"], os.O_WRONLY)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
    except OSError as error:
        return f"{per_process}: could not join {memory['procs']} ({error.strerror})"
    return str(memory.get("description"))


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - a submission may have replaced or closed them
            pass


def _import_submission(path: str, source: bytes | None, name: str, contract: list[str]):
    """Run the submission's source as module `name` (from memory: the file itself may be
    unreadable once privileges are dropped)."""
    import linecache
    import types

    started = time.perf_counter()
    try:
        if source is None:
            raise FileNotFoundError(f"cannot read {os.path.basename(path)}")
        text = source.decode("utf-8", errors="replace")
        linecache.cache[path] = (len(text), None, text.splitlines(True), path)  # tracebacks show its lines
        module = types.ModuleType(name)
        module.__file__ = path
        sys.modules[name] = module
        exec(compile(source, path, "exec"), module.__dict__)  # noqa: S102 - this is what a worker is for
    except BaseException as error:  # noqa: BLE001 - SystemExit, KeyboardInterrupt... all count
        return None, {"ok": False, "error": _describe_error(error, path)}
    missing = [fn for fn in contract if not callable(module.__dict__.get(fn))]
    return module, {"ok": True, "missing": missing, "seconds": time.perf_counter() - started}


def _describe_error(error: BaseException, path: str) -> dict:
    """Type, message and the submission's own stack frames (never the grader's)."""
    try:
        message = str(error)
    except BaseException:  # noqa: BLE001
        message = "<the exception's message could not be printed>"
    frames = [
        f"  {os.path.basename(frame.filename)}, line {frame.lineno}, in {frame.name}\n    {(frame.line or '').strip()}"
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.filename == path
    ]
    if isinstance(error, SyntaxError) and error.lineno:
        frames.append(f"  {os.path.basename(path)}, line {error.lineno}\n    {(error.text or '').strip()}")
    return {
        "type": type(error).__name__,
        "message": message[:MAX_MESSAGE_CHARS],
        "traceback": "\n".join(frames[-8:])[:4 * MAX_MESSAGE_CHARS],
    }


def _helper_stub(sock: socket.socket, name: str, answers: dict):
    """A stand-in for one of the student's helpers that asks the grading process for
    the reference's answer (so the reference code never enters this process).

    Answers are kept in `answers` by the call's exact arguments: a sampling loop on
    fixed logits asks the same question at every step, and the reference's helpers are
    deterministic. Each use decodes a fresh copy, so mutating one changes nothing."""
    import hashlib
    import json

    def stub(*args, **kwargs):
        blobs: list[bytes] = []
        tree = wire.encode({"args": list(args), "kwargs": kwargs}, blobs)
        digest = hashlib.sha256(json.dumps([name, tree]).encode())
        for blob in blobs:
            digest.update(len(blob).to_bytes(8, "little"))
            digest.update(blob)
        key = digest.hexdigest()
        if key not in answers:
            wire.send_message(sock, {"op": "helper", "fn": name, "value": tree}, blobs)
            header, reply = wire.recv_message(sock)
            if not header.get("ok"):
                error = header.get("error", {})
                raise PORTABLE_ERRORS.get(error.get("type"), RuntimeError)(error.get("message", "helper failed"))
            if len(answers) >= MAX_HELPER_ANSWERS:
                answers.pop(next(iter(answers)))
            answers[key] = (header["value"], reply)
        return wire.decode(*answers[key])

    stub.__name__ = stub.__qualname__ = name
    return stub


def _memo_rows(sock: socket.socket, prefixes: list[tuple[int, ...]]) -> list:
    """Ask the grading process for the reference's logits rows after these prefixes."""
    rows: list = []
    for start in range(0, len(prefixes), wire.MEMO_ROWS_PER_REQUEST):
        chunk = [list(p) for p in prefixes[start:start + wire.MEMO_ROWS_PER_REQUEST]]
        wire.send_value_message(sock, {"op": "memo"}, chunk)
        header, blobs = wire.recv_message(sock)
        answer = wire.decode(header.get("value"), blobs) if header.get("ok") else []
        rows += (list(answer) + [None] * len(chunk))[: len(chunk)]
    return rows


def _script_tokens(sock: socket.socket, sequence: list[int], positions: list[int]) -> list[int]:
    """Ask the grading process which token follows each position (see `scripted`)."""
    wire.send_value_message(sock, {"op": "script"}, {"sequence": sequence, "positions": positions})
    header, blobs = wire.recv_message(sock)
    if not header.get("ok"):
        raise RuntimeError(header.get("message", "the scripted model could not answer"))
    return list(wire.decode(header.get("value"), blobs))


def _serve_call(sock, module, originals, refs, header, blobs, spec) -> None:
    import random

    import torch

    swap = set(header.get("swap", []))
    answers = spec.setdefault("helper_answers", {})
    for name, original in originals.items():
        module.__dict__[name] = _helper_stub(sock, name, answers) if name in swap else original
    try:
        def resolve(name: str):
            if name == "scripted_model":  # a fresh one per call: it remembers the caches it made
                from .stubs import ScriptedModel

                return ScriptedModel(lambda sequence, positions: _script_tokens(sock, sequence, positions), refs["model"].config)
            return refs[name]

        payload = wire.decode(header["value"], blobs, resolve_ref=resolve)
        function = originals.get(header["fn"]) or getattr(module, header["fn"])
        # Every call starts from a known global RNG state, so grading twice gives the same
        # result even for code that ignores its `generator` (a different state per call,
        # so such code still draws different tokens in different calls).
        spec["calls"] = spec.get("calls", 0) + 1
        seed = int(header["seed"]) if header.get("seed") is not None else 1_000_003 + spec["calls"]
        torch.manual_seed(seed)
        random.seed(seed)
        started = time.perf_counter()
        with torch.no_grad():
            value = function(*payload.get("args", []), **payload.get("kwargs", {}))
        elapsed = time.perf_counter() - started
        header = {"op": "result", "ok": True, "seconds": elapsed}
        if "recorded" in spec:  # the reference worker: hand over the rows it computed
            recorded = dict(list(spec["recorded"].items())[:MAX_RECORDED_ROWS])
            value = {"value": value, "recorded": {"prefixes": [list(p) for p in recorded], "rows": list(recorded.values())}}
            header["recorded"] = True
            spec["recorded"].clear()
        wire.send_value_message(sock, header, value)
    except BaseException as error:  # noqa: BLE001 - report SystemExit and friends as the test's failure
        wire.send_message(sock, {"op": "result", "ok": False, "error": _describe_error(error, spec["module_path"])})


def _serve_logits(sock, model, header, blobs) -> None:
    """Trusted workers only: next-token logits after each given token prefix."""
    import torch

    token_ids = wire.decode(header["value"], blobs)
    start = max(int(header.get("start") or 0), 0)  # rows from this position on (a reply stays within a frame)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([token_ids])).logits[0, start:].float().contiguous()
    wire.send_value_message(sock, {"op": "result", "ok": True}, logits)


if __name__ == "__main__":
    main()
