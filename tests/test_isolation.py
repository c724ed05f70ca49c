"""The OS isolation of a worker (`autograder/sandbox/isolation.py`), called directly in
forked processes: no model, a few seconds in all. See docs/THREAT_MODEL.md.

Root-mode tests need root; user-namespace tests run as `nobody` (a root test process
forks and drops to it first) or as the current user, and skip where the kernel refuses
unprivileged user namespaces."""

from __future__ import annotations

import ctypes
import errno
import faulthandler
import fcntl
import os
import select
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from autograder.sandbox import isolation
from tests.forked import run_in_child

ROOT = os.geteuid() == 0
NOBODY = 65534
CAP_SYS_ADMIN = 21
MNT_DETACH = 2
libc = ctypes.CDLL(None, use_errno=True)

needs_root = pytest.mark.skipif(not ROOT, reason="root mode: needs root (as on Gradescope or in a container)")


# --- helpers ---------------------------------------------------------------------------


def in_child(body, timeout: float = 30.0):
    """Run `body()` in a forked child and return what it returns (JSON); re-raise its
    failure here. Whichever process ends up returning from `isolate` (a grandchild, with
    a PID namespace) still holds the pipe and answers; the child's exit status is added
    as `status` when the answer is a dict."""
    value, status = run_in_child(body, timeout)
    if isinstance(value, dict):
        value["status"] = status
    return value


def attempt(action) -> str:
    """'ok', or the errno name of the OSError `action` raised."""
    try:
        action()
    except OSError as error:
        return errno.errorcode.get(error.errno, str(error.errno))
    return "ok"


def read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def write(path: str, data: bytes = b"x") -> None:
    with open(path, "wb") as handle:
        handle.write(data)


def become(uid: int) -> None:
    """Drop from root to `uid` as an ordinary process of that user would be (dumpable:
    a uid change from root makes a process non-dumpable, so it could not write its own
    /proc/self/uid_map)."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def lose_cap_sys_admin() -> None:
    """What Docker's default capabilities look like: root, CAP_SETUID, no CAP_SYS_ADMIN."""
    header, data = CapHeader(0x20080522, 0), (CapData * 2)()
    assert libc.capget(ctypes.byref(header), ctypes.byref(data)) == 0
    data[0].effective &= ~(1 << CAP_SYS_ADMIN)
    data[0].permitted &= ~(1 << CAP_SYS_ADMIN)
    assert libc.capset(ctypes.byref(header), ctypes.byref(data)) == 0, os.strerror(ctypes.get_errno())


def with_claimed_uid(worker):
    """As the model process does: claim a sandbox uid (released when this child ends),
    then run `worker` in a forked worker of its own."""
    def body():
        uid = isolation.claim_sandbox_uid()
        return {"sandbox_uid": uid, **in_child(worker)}
    return body


def _can(flags: int, as_nobody: bool) -> bool:
    def probe():
        if as_nobody:
            become(NOBODY)
        return libc.unshare(flags) == 0
    try:
        return bool(in_child(probe, timeout=10))
    except AssertionError:
        return False


MOUNTS_AS_ROOT = ROOT and _can(isolation.CLONE_NEWNS, as_nobody=False)
USER_NAMESPACES = _can(isolation.CLONE_NEWUSER, as_nobody=ROOT)
needs_mounts = pytest.mark.skipif(not MOUNTS_AS_ROOT, reason="root mode with namespaces: needs root with CAP_SYS_ADMIN")
needs_userns = pytest.mark.skipif(not USER_NAMESPACES, reason="this kernel (or a seccomp/AppArmor policy) refuses unprivileged user namespaces")


@pytest.fixture
def secret():
    """A readable folder with a secret file, outside /tmp (which the sandbox replaces
    anyway), that the sandbox is asked to hide."""
    for parent in ("/var/lib", str(Path.home()), os.getcwd()):
        try:
            folder = Path(tempfile.mkdtemp(prefix="autograder-isolation-test-", dir=parent))
            break
        except OSError:
            continue
    folder.chmod(0o755)
    (folder / "hidden").mkdir(mode=0o755)
    (folder / "hidden" / "answer.txt").write_text("SECRET")
    (folder / "hidden" / "answer.txt").chmod(0o644)
    (folder / "owned").write_text("the grader's own file\n")  # a file of the sandbox's own uid, outside the sandbox
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def scratch():
    """The worker's scratch folder, created as `client.Worker.start` creates it (under /tmp)."""
    folder = Path(tempfile.mkdtemp(prefix="autograder-scratch-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


# --- root mode ---------------------------------------------------------------------------


@needs_root
def test_root_without_cap_sys_admin_still_drops_the_uid(secret, scratch):
    """Docker's default capabilities: no namespaces, but the uid drop must hold anyway."""
    root_only = secret / "root-only.txt"
    root_only.write_text("REFERENCE")
    root_only.chmod(0o600)

    def worker():
        lose_cap_sys_admin()
        report = isolation.isolate([str(secret / "hidden")], str(scratch))
        return {
            "report": report,
            "uids": list(os.getresuid()),
            "groups": os.getgroups(),
            "read root-only": attempt(lambda: read(str(root_only))),
            "write scratch": attempt(lambda: write("output.bin")),
            "cwd": os.getcwd(),
        }

    seen = in_child(with_claimed_uid(worker))
    uid = seen["sandbox_uid"]
    assert seen["uids"] == [uid, uid, uid] and seen["groups"] == []
    assert seen["read root-only"] == "EACCES"
    assert seen["report"]["user"].startswith(f"unprivileged uid {uid}")
    assert "mount namespace" in seen["report"]["degraded"]  # and it says what did not hold
    assert seen["report"]["hidden_paths"] == []
    assert seen["write scratch"] == "ok" and seen["cwd"] == str(scratch)


@needs_mounts
def test_root_workers_get_a_private_size_capped_tmp_and_shm(secret, scratch):
    planted = {path: f"{path}/autograder-isolation-test-{os.getpid()}" for path in ("/tmp", "/var/tmp", "/dev/shm")}
    for path in planted.values():
        write(path, b"from outside")
    token = f"written-{os.getpid()}"

    def worker():
        report = isolation.isolate([str(secret / "hidden")], str(scratch))
        return {
            "report": report,
            "planted visible": [path for path in planted.values() if os.path.exists(path)],
            "writes": {folder: attempt(lambda f=folder: write(f"{f}/{token}")) for folder in (*planted, ".")},
            "cwd": os.getcwd(),
            "fill /dev/shm": attempt(lambda: write(f"/dev/shm/{token}-big", b"0" * (100 << 20))),
        }

    try:
        seen = in_child(with_claimed_uid(worker))
        assert seen["report"].get("degraded") is None, seen["report"]
        assert seen["planted visible"] == []  # nothing another process (or student) put there
        assert seen["writes"] == {"/tmp": "ok", "/var/tmp": "ok", "/dev/shm": "ok", ".": "ok"}
        assert seen["cwd"] == str(scratch)  # the scratch folder, under /tmp, is still there for the worker
        assert seen["fill /dev/shm"] == "ENOSPC"  # RAM that RLIMIT_AS does not count is capped
        left = [f"{folder}/{token}" for folder in planted if os.path.exists(f"{folder}/{token}")]
        assert left == [] and list(scratch.iterdir()) == []  # nothing reaches the next student
    finally:
        for path in planted.values():
            os.unlink(path)


@needs_mounts
def test_root_workers_can_import_from_a_python_under_a_private_home(secret, scratch):
    """pyenv under /root (mode 0700): the sandbox uid must still read Python's own folders,
    and nothing else of that home."""
    home = secret / "home"
    library = home / "python" / "lib"
    library.mkdir(parents=True)
    (library / "late_module.py").write_text("VALUE = 42\n")
    (home / "ssh-key").write_text("PRIVATE")
    for folder in (home / "python", library):
        folder.chmod(0o755)
    home.chmod(0o700)

    def worker():
        import sys

        sys.path.append(str(library))
        report = isolation.isolate([str(secret / "hidden")], str(scratch))
        return {
            "report": report,
            "import": attempt(lambda: __import__("late_module")),
            "read key": attempt(lambda: read(str(home / "ssh-key"))),
            "write library": attempt(lambda: write(str(library / "planted.py"))),
        }

    seen = in_child(with_claimed_uid(worker))
    assert seen["report"].get("degraded") is None, seen["report"]
    assert str(library) in seen["report"]["exposed_import_folders"]
    assert seen["import"] == "ok"
    assert seen["read key"] in ("ENOENT", "EACCES")  # the rest of that home stays out of reach
    assert seen["write library"] in ("EROFS", "EACCES")


@needs_mounts
def test_root_workers_see_a_read_only_file_system_and_only_their_own_processes(secret, scratch):
    writable = secret / "world-writable.txt"
    writable.write_text("as setup.sh might leave one\n")
    writable.chmod(0o666)

    def worker():
        report = isolation.isolate([str(secret / "hidden")], str(scratch))
        return {
            "report": report,
            "read hidden": attempt(lambda: read(str(secret / "hidden" / "answer.txt"))),
            "write world-writable": attempt(lambda: write(str(writable))),
            "pid": os.getpid(),
            "processes": sorted(int(name) for name in os.listdir("/proc") if name.isdigit()),
        }

    seen = in_child(with_claimed_uid(worker))
    assert seen["read hidden"] == "ENOENT"
    assert seen["write world-writable"] == "EROFS"
    assert seen["pid"] == 2 and seen["processes"] == [1, 2]
    assert "PID namespace" in seen["report"]["processes"]


@pytest.mark.skipif(not (MOUNTS_AS_ROOT or (not ROOT and USER_NAMESPACES)), reason="needs root with CAP_SYS_ADMIN, or user namespaces")
def test_the_pid_namespace_passes_the_exit_status_through_and_kills_leftovers(secret, scratch):
    for ending, expected in (("exit 7", lambda s: os.WIFEXITED(s) and os.WEXITSTATUS(s) == 7),
                             ("SIGSEGV", lambda s: os.WIFSIGNALED(s) and os.WTERMSIG(s) == signal.SIGSEGV)):
        def body(ending=ending):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_end)
                isolation.isolate([str(secret / "hidden")], str(scratch))
                if os.fork() == 0:  # a leftover that escapes the process group and holds the pipe
                    os.setsid()
                    time.sleep(60)
                    os._exit(0)
                os.close(write_end)
                if ending == "exit 7":
                    os._exit(7)
                faulthandler.disable()  # (pytest's: its dump would only be noise)
                os.kill(os.getpid(), signal.SIGSEGV)
                os._exit(0)
            os.close(write_end)
            _, status = os.waitpid(pid, 0)
            ready = select.select([read_end], [], [], 5)[0]  # EOF once the leftover is dead too
            return {"worker status": status, "leftover gone": bool(ready) and os.read(read_end, 1) == b""}

        seen = in_child(with_claimed_uid(body) if ROOT else body)
        assert expected(seen["worker status"]), (ending, seen)
        assert seen["leftover gone"], ending


@needs_root
def test_sweep_survives_the_model_process_reaping_its_children():
    """The model process reaps its children from a SIGCHLD handler. A child exiting while
    `sweep` waited for its own let that handler reap sweep's child first, and sweep died
    with ChildProcessError, and the model process with it (about 1 sweep in 13 here)."""
    from autograder.sandbox.worker import Children

    def body():
        isolation.claim_sandbox_uid()
        children = Children()
        signal.signal(signal.SIGCHLD, children.reap)  # as the model process does
        failures, forked = [], []
        for _ in range(200):
            for delay in (0.001, 0.002, 0.003, 0.005):  # exit while sweep waits
                pid = children.fork()
                if pid == 0:
                    time.sleep(delay)
                    os._exit(0)
                forked.append(pid)
            try:
                isolation.sweep()
            except OSError as error:
                failures.append(repr(error))
        statuses = [children.exit_status(pid, wait=5.0) for pid in forked]
        return {"failures": failures[:3], "failed": len(failures),
                "exited cleanly": sum(s is not None and os.WIFEXITED(s) and os.WEXITSTATUS(s) == 0 for s in statuses)}

    seen = in_child(body, timeout=120)
    assert seen["failed"] == 0, seen
    assert seen["exited cleanly"] == 800, "every worker's exit status is kept until asked for"


@needs_root
def test_the_uid_claim_is_safe_from_tmp_and_not_inherited_by_workers(scratch, tmp_path):
    # An attacker's symlink where the old code opened the lock file, as root, in /tmp.
    # (In a range of uids no grader uses, so that every lock file name is free for it.)
    target = tmp_path / "created-through-a-symlink"
    base = next(base for base in range(63000, 64000, 8) if not any(
        os.path.lexists(f"/tmp/.autograder-sandbox-uid-{uid}.lock") or os.path.lexists(f"{folder}/sandbox-uid-{uid}.lock")
        for uid in range(base, base + 8) for folder in getattr(isolation, "LOCK_DIRS", ())))
    made = [Path(f"/tmp/.autograder-sandbox-uid-{uid}.lock") for uid in range(base, base + 8)]
    for path in made:
        path.symlink_to(target)

    def worker():
        isolation.isolate([], str(scratch))
        return {"fds": [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                        if os.path.exists(f"/proc/self/fd/{fd}")]}

    def model_process():
        isolation.SANDBOX_UID_BASE = base
        uid = isolation.claim_sandbox_uid()
        claim = isolation._claim if isinstance(isolation._claim, int) else isolation._claim.fileno()
        folder = os.readlink(f"/proc/self/fd/{claim}")
        info = os.stat(os.path.dirname(folder))
        return {"uid": uid, "lock": folder, "folder owner": info.st_uid, "folder mode": info.st_mode & 0o777,
                "cloexec": bool(fcntl.fcntl(claim, fcntl.F_GETFD) & fcntl.FD_CLOEXEC), **in_child(worker)}

    try:
        seen = in_child(model_process)
    finally:
        for path in made:
            path.unlink()
        for uid in range(base, base + 8):  # (the lock files of this test's range of uids)
            for folder in getattr(isolation, "LOCK_DIRS", ()):
                Path(f"{folder}/sandbox-uid-{uid}.lock").unlink(missing_ok=True)
    assert not target.exists()
    assert not seen["lock"].startswith("/tmp/.autograder-sandbox-uid-")
    assert seen["folder owner"] == 0 and seen["folder mode"] & 0o022 == 0
    assert seen["cloexec"]
    assert not [fd for fd in seen["fds"] if "sandbox-uid" in fd], seen["fds"]  # the worker cannot unlock it


@needs_root
def test_a_lock_folder_someone_else_made_is_not_used(tmp_path, monkeypatch):
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, NOBODY, NOBODY)
    monkeypatch.setattr(isolation, "LOCK_DIRS", (str(theirs), str(ours)))

    def model_process():
        isolation.claim_sandbox_uid()
        return os.readlink(f"/proc/self/fd/{isolation._claim}")

    assert os.path.dirname(in_child(model_process)) == str(ours)
    assert list(theirs.iterdir()) == []
    assert ours.stat().st_mode & 0o777 == 0o700


# --- user-namespace mode ------------------------------------------------------------------


@needs_userns
def test_user_namespace_mounts_cannot_be_undone(secret, scratch):
    """As an ordinary user: the covers hold against umount, a nested user namespace,
    writes to the user's own files and signals to the user's other processes."""
    hidden = secret / "hidden"
    if ROOT:
        os.chown(secret / "owned", NOBODY, NOBODY)
        os.chown(scratch, NOBODY, NOBODY)

    def worker():
        if ROOT:
            become(NOBODY)
        parent = os.getpid()
        neighbour = os.fork()  # another process of the same user (the grader, say), until the test is done
        if neighbour == 0:
            os.closerange(3, 1 << 16)
            while os.getppid() == parent:
                time.sleep(0.05)
            os._exit(0)
        report = isolation.isolate([str(hidden)], str(scratch))
        seen = {"report": report, "read before": attempt(lambda: read(str(hidden / "answer.txt")))}
        seen["umount"] = attempt(lambda: isolation._check(libc.umount2(str(hidden).encode(), MNT_DETACH), "umount2"))
        seen["read after umount"] = attempt(lambda: read(str(hidden / "answer.txt")))
        seen["write own file"] = attempt(lambda: write(str(secret / "owned")))
        seen["signal neighbour"] = attempt(lambda: os.kill(neighbour, 0))
        with open("/proc/self/status") as handle:
            status = dict(line.split(":", 1) for line in handle if ":" in line)
        seen["CapEff"], seen["NoNewPrivs"] = status["CapEff"].strip(), status["NoNewPrivs"].strip()

        def nested():  # a fresh user namespace gives every capability back, but over new, locked copies
            uid = os.getuid()
            isolation._unshare(isolation.CLONE_NEWUSER)
            with open("/proc/self/uid_map", "w") as handle:
                handle.write(f"0 {uid} 1")
            isolation._unshare(isolation.CLONE_NEWNS)
            isolation._check(libc.umount2(str(hidden).encode(), MNT_DETACH), "umount2")

        seen["nested umount"] = attempt(nested)
        seen["read after nested umount"] = attempt(lambda: read(str(hidden / "answer.txt")))
        return seen

    try:
        seen = in_child(worker)
    finally:
        if ROOT:
            os.chown(secret / "owned", 0, 0)
    assert seen["report"].get("degraded") is None, seen["report"]
    assert seen["report"]["hidden_paths"][:1] == [str(hidden)]
    assert seen["read before"] == "ENOENT"
    assert seen["umount"] == "EPERM" and seen["read after umount"] == "ENOENT"
    # EPERM: seccomp refuses a nested namespace; where it cannot, EINVAL: the copies are MNT_LOCKED
    assert seen["nested umount"] in ("EPERM", "EINVAL") and seen["read after nested umount"] == "ENOENT"
    assert int(seen["CapEff"], 16) == 0 and seen["NoNewPrivs"] == "1"
    assert seen["write own file"] == "EROFS"
    assert seen["signal neighbour"] == "ESRCH"
    assert (secret / "owned").read_text() == "the grader's own file\n"


@needs_userns
def test_user_namespace_workers_get_a_private_tmp_too(scratch):
    planted = f"/tmp/autograder-isolation-test-{os.getpid()}"
    written = f"/dev/shm/autograder-isolation-test-{os.getpid()}"
    write(planted, b"from outside")
    os.chmod(planted, 0o644)
    if ROOT:
        os.chown(scratch, NOBODY, NOBODY)

    def worker():
        if ROOT:
            become(NOBODY)
        report = isolation.isolate([], str(scratch))
        return {"report": report, "planted visible": os.path.exists(planted),
                "write /dev/shm": attempt(lambda: write(written)),
                "write scratch": attempt(lambda: write("out.bin")), "cwd": os.getcwd()}

    try:
        seen = in_child(worker)
        assert not os.path.exists(written)  # it went to the worker's own /dev/shm
    finally:
        os.unlink(planted)
        Path(written).unlink(missing_ok=True)
    assert not seen["planted visible"]
    assert seen["report"]["private_tmp"][:1] == ["/tmp"]
    assert seen["write /dev/shm"] == "ok" and seen["write scratch"] == "ok" and seen["cwd"] == str(scratch)
    assert list(scratch.iterdir()) == []
