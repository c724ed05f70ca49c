"""Run a function in a forked child and get its answer back (JSON over a pipe): tests
that change the process itself (isolation, seccomp) never change the test process."""

from __future__ import annotations

import json
import os
import select
import signal
import time
import traceback


def run_in_child(body, timeout: float = 30.0):
    """(what `body()` returned in a forked child, the child's wait status); its failure
    is raised here. Whichever process ends up answering (a grandchild, where `body`
    enters a PID namespace) still holds the pipe."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            answer = {"value": body()}
        except BaseException:  # noqa: BLE001 - every failure goes back to the test
            answer = {"error": traceback.format_exc()}
        try:
            os.write(write, json.dumps(answer).encode())
        finally:
            os._exit(0)
    os.close(write)
    data, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([read], [], [], max(0.0, deadline - time.monotonic()))[0]:
                chunk = os.read(read, 1 << 16)
                if not chunk:
                    break
                data += chunk
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(read)
        _, status = os.waitpid(pid, 0)
    if not data:
        raise AssertionError(f"the child answered nothing (wait status {status})")
    answer = json.loads(data)
    if "error" in answer:
        raise AssertionError(f"in the child:\n{answer['error']}")
    return answer["value"], status
