"""autograder.sandbox.cgroup: one memory limit over all processes of a submission.

The tests that need a real cgroup skip, with the reason `CgroupUnavailable` gives,
where none can be made (not root, read-only, no memory controller). The tests at the
end check only the v2 file handling, on a fake cgroup folder; they run anywhere.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import time
import traceback
import uuid

import pytest

from autograder.sandbox import cgroup as cgroup_module
from autograder.sandbox.cgroup import CgroupUnavailable, MemoryCgroup, cgroup_name, remove_stale

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (Linux)")

MiB = 1 << 20
LIMIT = 256 * MiB
TEST_PREFIX = f"agtest{uuid.uuid4().hex[:8]}-"  # never matches a real grader's cgroups


def _new_cgroup(limit: int = LIMIT, name: str | None = None) -> MemoryCgroup:
    try:
        return MemoryCgroup.create(name or cgroup_name(TEST_PREFIX), limit)
    except CgroupUnavailable as error:
        pytest.skip(f"no memory cgroup here: {error}")


def _fork(body) -> int:
    """Run `body` in a child that never returns into pytest; its exit code is body's result."""
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            gc.disable()  # a collection would copy the whole forked heap (copy-on-write) into the cgroup
            code = body() or 0
        except BaseException:  # noqa: BLE001 - report, then leave
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def _reap(pid: int, timeout: float = 60.0) -> int:
    """The exit status of child `pid`; SIGKILLs it and fails past `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            _kill_and_reap(pid)
            pytest.fail(f"child {pid} still running after {timeout} s")
        time.sleep(0.02)


def _kill_and_reap(pid: int | None) -> None:
    """For finally blocks: make sure child `pid` is gone and reaped."""
    if not pid:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _sigkilled(status: int) -> bool:
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def _gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for its new parent to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _run_allocators(cg: MemoryCgroup, count: int, size: int, hold: float) -> tuple[int, list[int] | None]:
    """A child joins `cg` and forks `count` processes that each touch `size` bytes and
    hold them `hold` seconds. Returns the child's status and its children's statuses
    (None when the child itself was killed before it could report them)."""
    read_end, write_end = os.pipe()
    child = None
    try:
        def body():
            os.close(read_end)
            cg.add()
            kids = []
            for _ in range(count):
                kid = os.fork()
                if kid == 0:
                    try:
                        os.close(write_end)  # or the parent's read waits for this one too
                        data = b"x" * size  # every page written: all of it charged
                        time.sleep(hold)
                        os._exit(0 if len(data) == size else 2)
                    except BaseException:  # noqa: BLE001 - MemoryError and the like
                        os._exit(3)
                kids.append(kid)
            statuses = [os.waitpid(kid, 0)[1] for kid in kids]
            os.write(write_end, json.dumps(statuses).encode())
            return 0

        child = _fork(body)
        os.close(write_end)
        write_end = None
        status = _reap(child)
        child = None
        report = _read_all(read_end)
        return status, (json.loads(report) if report else None)
    finally:
        _kill_and_reap(child)
        os.close(read_end)
        if write_end is not None:
            os.close(write_end)


def test_limit_holds_across_processes():
    cg = _new_cgroup(LIMIT)
    try:
        status, statuses = _run_allocators(cg, count=3, size=150 * MiB, hold=3.0)
        # v1 kills the largest member; v2 with memory.oom.group kills them all, the
        # reporting child too.
        killed = [s for s in statuses or [] if _sigkilled(s)] or ([status] if _sigkilled(status) else [])
        assert killed, f"3 x 150 MiB under {cg.describe()}: nothing was OOM-killed (statuses {status}, {statuses})"
        assert cg.oom_kills() >= 1
        peak = cg.peak_bytes()
        if cg.version == 1:
            assert peak is not None
        if peak is not None:
            assert peak <= cg.limit_bytes, f"peak {peak} over the limit {cg.limit_bytes}"
            assert peak >= 150 * MiB, f"peak {peak}: the allocations were not charged to the cgroup"
    finally:
        assert cg.remove()


def test_work_under_the_limit_is_untouched():
    cg = _new_cgroup(LIMIT)
    try:
        status, statuses = _run_allocators(cg, count=3, size=40 * MiB, hold=1.0)
        assert status == 0
        assert statuses == [0, 0, 0]
        assert cg.oom_kills() == 0
        peak = cg.peak_bytes()
        if peak is not None:  # all three held their 40 MiB at once, counted together
            assert 100 * MiB <= peak <= cg.limit_bytes
    finally:
        assert cg.remove()


def test_kill_all_ends_a_double_forked_process_and_remove_leaves_nothing():
    cg = _new_cgroup(LIMIT)
    read_end, write_end = os.pipe()
    child = grandchild = None
    try:
        def body():
            os.close(read_end)
            cg.add()
            escaped = os.fork()
            if escaped == 0:
                os.close(write_end)  # or the test's read would wait for this process's end
                os.setsid()  # its own session: away from its parent, which leaves now
                time.sleep(300)
                os._exit(0)
            os.write(write_end, str(escaped).encode())
            return 0

        child = _fork(body)
        os.close(write_end)
        write_end = None
        assert _reap(child) == 0
        child = None
        grandchild = int(_read_all(read_end))
        assert not _gone(grandchild)
        assert cg.pids() == [grandchild]  # orphaned, reparented, still in the cgroup

        assert cg.kill_all(timeout=10.0) is True
        assert cg.pids() == []
        deadline = time.monotonic() + 5
        while not _gone(grandchild) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _gone(grandchild)

        path = cg.path
        assert cg.remove() is True
        assert not os.path.exists(path)
    finally:
        _kill_and_reap(child)
        os.close(read_end)
        if write_end is not None:
            os.close(write_end)
        cg.remove()  # kills the grandchild too if a check above failed
        if grandchild and not _gone(grandchild):  # kill_all failed: still end it
            os.kill(grandchild, signal.SIGKILL)


def test_remove_stale_removes_only_cgroups_whose_creator_is_gone():
    dead = _fork(lambda: 0)
    assert _reap(dead) == 0  # a pid that no longer exists
    stale = _new_cgroup(64 * MiB, name=f"{TEST_PREFIX}{dead}-0")
    alive = leftover = None
    try:
        alive = _new_cgroup(64 * MiB, name=f"{TEST_PREFIX}{os.getpid()}-0")

        def body():
            stale.add()
            time.sleep(600)

        leftover = _fork(body)  # a process the dead creator left running in its cgroup
        deadline = time.monotonic() + 10
        while stale.pids() != [leftover] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stale.pids() == [leftover]

        assert remove_stale(TEST_PREFIX) == 1
        assert not os.path.exists(stale.path)
        assert os.path.isdir(alive.path)
        assert _sigkilled(_reap(leftover, timeout=10))
        leftover = None
        assert remove_stale(TEST_PREFIX) == 0
    finally:
        _kill_and_reap(leftover)
        stale.remove()
        if alive is not None:
            assert alive.remove()


def test_describe_names_the_version_and_the_limit():
    cg = _new_cgroup(LIMIT)
    try:
        text = cg.describe()
        assert f"cgroup v{cg.version}" in text
        assert "256.0 MiB" in text
        assert cg.path in text
        assert cg.version in (1, 2)
        assert os.path.isdir(cg.path)
    finally:
        assert cg.remove()
    big = _new_cgroup(1 << 30)
    try:
        assert "1.0 GiB" in big.describe()
    finally:
        assert big.remove()


def test_add_refuses_a_process_that_does_not_exist():
    cg = _new_cgroup(LIMIT)
    try:
        dead = _fork(lambda: 0)
        _reap(dead)
        with pytest.raises(CgroupUnavailable):
            cg.add(dead)
    finally:
        assert cg.remove()


# --- v2 file handling on a fake cgroup folder (no kernel involved) --------------------


def _fake_v2(tmp_path, controllers: str, subtree: str, monkeypatch):
    parent = tmp_path / "grader"
    parent.mkdir()
    (parent / "cgroup.controllers").write_text(controllers + "\n")
    (parent / "cgroup.subtree_control").write_text(subtree + "\n")
    hierarchy = cgroup_module._Hierarchy(2, str(tmp_path), str(parent), False)
    monkeypatch.setattr(cgroup_module, "_candidates", lambda version=None: ([hierarchy], []))

    def mkdir(path):  # what cgroupfs shows in a new child with the memory controller
        os.mkdir(path)
        for name, text in (("cgroup.procs", ""), ("cgroup.kill", ""), ("memory.max", "max"),
                           ("memory.swap.max", "max"), ("memory.oom.group", "0"), ("memory.peak", "0"),
                           ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")):
            with open(os.path.join(path, name), "w") as file:
                file.write(text)

    monkeypatch.setattr(cgroup_module, "_mkdir", mkdir)
    return parent


def test_v2_files_limit_swap_and_oom_group(tmp_path, monkeypatch):
    _fake_v2(tmp_path, "cpu io memory pids", "memory pids", monkeypatch)
    cg = MemoryCgroup.create("autograder-1-0", 300 * MiB)
    assert cg.version == 2
    files = {name: open(os.path.join(cg.path, name)).read() for name in os.listdir(cg.path)}
    assert files["memory.max"] == str(300 * MiB)
    assert files["memory.swap.max"] == "0"
    assert files["memory.oom.group"] == "1"
    assert cg.swap_limited
    assert cg.describe().startswith("cgroup v2 memory limit 300.0 MiB over all its processes")

    with open(os.path.join(cg.path, "memory.events"), "w") as file:
        file.write("low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\n")
    with open(os.path.join(cg.path, "memory.peak"), "w") as file:
        file.write("123456\n")
    assert cg.oom_kills() == 2
    assert cg.peak_bytes() == 123456
    assert cg.kill_all(timeout=1) is True  # no processes; cgroup.kill was written
    assert open(os.path.join(cg.path, "cgroup.kill")).read() == "1"


def test_v2_reports_a_missing_memory_controller(tmp_path, monkeypatch):
    _fake_v2(tmp_path, "cpu io pids", "", monkeypatch)
    with pytest.raises(CgroupUnavailable, match="memory controller is not available"):
        MemoryCgroup.create("autograder-1-0", 300 * MiB)
    assert not (tmp_path / "grader" / "autograder-1-0").exists()
