"""OS-level isolation of a worker, applied right after fork, before student code runs.

What is applied depends on what the machine allows, and the report says which:

* As root (Gradescope, CI, a container): a private mount namespace in which the
  reference, the hidden suites, the project's tests and every grading folder are
  covered by empty tmpfs mounts; a network namespace with no interfaces up; then the
  process drops to a dedicated unprivileged uid, so it cannot read root's files,
  signal the grader or other processes, or write results; RLIMIT_NPROC bounds forks.
* As an ordinary user where the kernel allows unprivileged user namespaces: the same
  mount and network namespaces inside a user namespace (same uid outside).
* Otherwise: none of this; only process-group, time, memory and file-size limits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_NOSUID, MS_NODEV = 2, 4

# Uids no account uses. Each model process claims one of its own (a lock held for its
# lifetime), so the sweep after each submission, which kills every process of that uid,
# never touches another grader's workers on the same machine.
SANDBOX_UID_BASE = int(os.environ.get("AUTOGRADER_SANDBOX_UID", "59000"))
SANDBOX_UID_COUNT = 1000
MAX_PROCESSES = 64
SANDBOX_UID = SANDBOX_UID_BASE  # replaced by `claim_sandbox_uid` in each model process
_claim = None


def claim_sandbox_uid() -> int:
    """Claim a sandbox uid for this process's lifetime (root only; else the own uid)."""
    global SANDBOX_UID, _claim
    if os.geteuid() != 0:
        return os.getuid()
    import fcntl

    for uid in range(SANDBOX_UID_BASE, SANDBOX_UID_BASE + SANDBOX_UID_COUNT):
        handle = open(f"/tmp/.autograder-sandbox-uid-{uid}.lock", "a")  # noqa: SIM115 - held until exit
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        SANDBOX_UID, _claim = uid, handle
        return uid
    raise RuntimeError("no free sandbox uid: too many graders on this machine")

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                       data.encode() if data else None), f"mount {target}")


def _hide(paths: list[str], writable: str | None, owner: int) -> list[str]:
    _mount("none", "/", None, MS_REC | MS_PRIVATE, None)  # our mounts stay ours
    hidden = []
    for path in paths:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0555")
            hidden.append(path)
    if writable:
        _mount("tmpfs", writable, "tmpfs", MS_NOSUID | MS_NODEV, f"size=64m,mode=0700,uid={owner},gid={owner}")
    return hidden


def isolate(hidden_paths: list[str], scratch_dir: str) -> dict:
    """Isolate this (single-threaded, just forked) process as far as the machine allows."""
    report = {"user": "same as the grader", "hidden_paths": [], "network": "available", "processes": "unlimited"}
    try:
        if os.geteuid() == 0:
            _unshare(CLONE_NEWNS | CLONE_NEWNET)
            report["hidden_paths"] = _hide(hidden_paths, scratch_dir, SANDBOX_UID)
            report["network"] = "none (empty network namespace)"
            import resource

            resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCESSES, MAX_PROCESSES))
            os.setgroups([])
            os.setgid(SANDBOX_UID)
            os.setuid(SANDBOX_UID)
            report["user"] = f"unprivileged uid {SANDBOX_UID}"
            report["processes"] = f"at most {MAX_PROCESSES}"
        else:
            uid, gid = os.getuid(), os.getgid()
            _unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET)
            with open("/proc/self/setgroups", "w") as handle:
                handle.write("deny")
            with open("/proc/self/uid_map", "w") as handle:
                handle.write(f"{uid} {uid} 1")
            with open("/proc/self/gid_map", "w") as handle:
                handle.write(f"{gid} {gid} 1")
            report["hidden_paths"] = _hide(hidden_paths, scratch_dir, uid)
            report["network"] = "none (empty network namespace)"
            report["user"] = "same uid, in a user namespace"
    except OSError as error:
        report["degraded"] = f"{error}"
    return report


def sweep(timeout: float = 10.0) -> None:
    """Kill every process of the sandbox uid (children a submission left behind, even
    ones that escaped its process group) and return once none is left alive.

    Runs in a throw-away child that becomes that uid. One `kill(-1)` is not enough: the
    kernel needs a moment to tear down each killed process (dozens of forked copies of
    a model process, on a busy machine), and until then they count against the next
    worker's process limit; so the child signals again until only zombies (ours to reap)
    remain, or until `timeout`."""
    if os.geteuid() != 0:
        return
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(SANDBOX_UID)
            os.setuid(SANDBOX_UID)
            deadline = time.monotonic() + timeout
            while True:
                os.kill(-1, signal.SIGKILL)  # every process this uid may signal, i.e. its own
                if not live_processes_of(SANDBOX_UID, besides=os.getpid()) or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
        except OSError:
            pass
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def live_processes_of(uid: int, besides: int | None = None) -> list[int]:
    """Pids of processes of `uid` that are not zombies (a zombie holds no memory, runs
    nothing and is reaped by its parent)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == besides:
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            with open(f"/proc/{entry.name}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # it exited while we looked
        if state not in ("Z", "X"):
            found.append(int(entry.name))
    return found
