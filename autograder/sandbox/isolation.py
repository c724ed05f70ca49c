"""OS-level isolation of a worker, applied right after fork, before student code runs.

What is applied depends on what the machine allows; each part is tried on its own and
the report says which held (``degraded`` names every part that did not):

* As root (Gradescope, CI, a container): a private mount namespace in which the whole
  file system is read-only; the reference, the hidden suites, the project's tests and
  every grading folder are covered by empty tmpfs mounts; ``/tmp``, ``/var/tmp``,
  ``/dev/shm`` and ``/run/lock`` are replaced by one private, size-capped tmpfs that also
  holds the worker's folder; empty network and IPC namespaces; a PID namespace with its
  own ``/proc``. Then, *always*, even where the namespaces are refused (a container
  without CAP_SYS_ADMIN), the process drops to a dedicated unprivileged uid with no
  capabilities and ``no_new_privs``, so it cannot read root's files, signal the grader
  or other processes, or write results; RLIMIT_NPROC bounds forks.
* As an ordinary user where the kernel allows unprivileged user namespaces: the same
  namespaces inside a user namespace (same uid outside it), then every capability is
  dropped and ``no_new_privs`` set, so the mounts cannot be undone (a nested user
  namespace sees them locked).
* Otherwise: none of this; only process-group, time, memory and file-size limits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import signal
import stat
import time

from . import seccomp  # (imported now: inside the sandbox its source is out of sight)

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND = 32, 4096
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = 1024, 2048, 1 << 21, 1 << 24
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (new syscalls share one table)
MOUNT_ATTR_RDONLY, AT_FDCWD, AT_RECURSIVE = 0x1, -100, 0x8000

# Uids no account uses. Each model process claims one of its own (a lock held for its
# lifetime), so the sweep after each submission, which kills every process of that uid,
# never touches another grader's workers on the same machine.
SANDBOX_UID_BASE = int(os.environ.get("AUTOGRADER_SANDBOX_UID", "59000"))
SANDBOX_UID_COUNT = 1000
MAX_PROCESSES = 64
SANDBOX_UID = SANDBOX_UID_BASE  # replaced by `claim_sandbox_uid` in each model process
# Where the claims' lock files live: the first of these that is (or can be made) a
# directory owned by root and writable by nobody else. Never a file directly in /tmp:
# anyone can plant a symlink or a file of their own there.
LOCK_DIRS = ("/run/autograder", "/var/lib/autograder", "/tmp/.autograder-locks")
_claim: int | None = None  # the lock's fd; every worker closes its copy (see `isolate`)

# World-writable places shared by every process on the machine: in the sandbox they are
# replaced by one private tmpfs, so nothing written there outlives the worker or reaches
# the next student, and the RAM it takes (RLIMIT_AS does not count tmpfs) is capped.
SHARED_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
PRIVATE_TMP_OPTIONS = "size=64m,nr_inodes=16384,mode=0755"


def claim_sandbox_uid() -> int:
    """Claim a sandbox uid for this process's lifetime (root only; else the own uid)."""
    global SANDBOX_UID, _claim
    if os.geteuid() != 0:
        return os.getuid()
    import fcntl

    folder = _lock_dir()
    try:
        for uid in range(SANDBOX_UID_BASE, SANDBOX_UID_BASE + SANDBOX_UID_COUNT):
            fd = os.open(f"sandbox-uid-{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=folder)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            if _claim is not None:
                os.close(_claim)
            SANDBOX_UID, _claim = uid, fd  # held until this process exits
            return uid
    finally:
        os.close(folder)
    raise RuntimeError("no free sandbox uid: too many graders on this machine")


def _lock_dir() -> int:
    """An fd of the first of `LOCK_DIRS` that only root can write to."""
    for path in LOCK_DIRS:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and not info.st_mode & 0o022:
            return fd
        os.close(fd)  # someone else's: not a place for our locks
    raise RuntimeError(f"no safe folder for the sandbox uid locks (tried {', '.join(LOCK_DIRS)})")


def close_inherited_fds() -> None:
    """Close this process's copy of the sandbox-uid claim (a forked worker must not hold
    it: through it, code could release the lock and hand the uid to another grader).
    The lock stays held by the model process's own copy. `isolate` calls this."""
    global _claim
    if _claim is not None:
        try:
            os.close(_claim)
        except OSError:
            pass
        _claim = None


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


def _prctl(option: int, arg: int = 0) -> int:
    return _libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


def die_with_parent(parent_pid: int | None = None) -> None:
    """SIGKILL this process when its parent ends (PR_SET_PDEATHSIG). The setting is lost
    on fork and on a change of uid, so every process of ours sets it again; if the parent
    is already gone (`parent_pid` given and no longer our parent), exit now."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


# --- the file system ------------------------------------------------------------------


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


_KEPT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
               "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME}


def _make_read_only() -> None:
    """Every mount of this (private) mount namespace read-only; new mounts on top of it
    (the tmpfs mounts below) are writable."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    if _libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr)) == 0:
        return
    # Kernels before 5.12 (or a seccomp filter that refuses it): each mount by itself,
    # keeping the flags a user namespace may not clear.
    with open("/proc/self/mountinfo") as handle:
        mounts = [line.split(" - ")[0].split() for line in handle]
    refused = []
    for fields in mounts:
        point = re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), fields[4])  # mountinfo's escapes
        flags = sum(_KEPT_FLAGS.get(option, 0) for option in fields[5].split(","))
        try:
            _mount("none", point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | flags, None)
        except OSError as error:
            if os.path.exists(point):  # (a mount under one covered earlier is out of reach anyway)
                refused.append(f"{point}: {os.strerror(error.errno)}")
    if refused:
        raise OSError(0, f"writable: {', '.join(refused[:5])}{' ...' if len(refused) > 5 else ''}")


def _hide(paths: list[str], keep: list[str]) -> list[str]:
    """Cover each folder of `paths` with an empty read-only tmpfs. The folders of `keep`
    that lie inside one (a virtual environment inside the checkout) are bound back
    read-only, unless they hold a hidden folder themselves."""
    paths = [os.path.realpath(p) for p in paths if os.path.isdir(p)]
    inside = {folder: [p for p in paths if _below(folder, p)] for folder in keep}
    kept = {folder: min(covers, key=len) for folder, covers in inside.items()
            if covers and os.path.isdir(folder) and not any(_below(p, folder) or p == folder for p in paths)}
    _cover(kept)
    for path in paths:
        if path not in kept.values() and not any(_below(path, p) for p in paths):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=4k,nr_inodes=16,mode=0555")
    return paths


def _below(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip("/") + "/")


def import_folders(prefixes: tuple[str, ...] | None = None) -> list[str]:
    """Where Python finds code (sys.path, the environment's own folders), resolved."""
    import sys

    found = [*sys.path, *(prefixes if prefixes is not None else (sys.prefix, sys.exec_prefix))]
    return sorted({os.path.realpath(p) for p in found if p and os.path.isdir(p)})


def _private_tmp(scratch_dir: str, owner: int) -> list[str]:
    """One size-capped tmpfs for everything the worker may write: the scratch folder (its
    working directory, owned by `owner`) and, in place of the machine's shared ones,
    /tmp, /var/tmp, /dev/shm and /run/lock (empty, sticky, world-writable). The scratch
    folder may itself lie under /tmp: it is made again inside the new /tmp."""
    targets: list[str] = []
    for path in SHARED_WRITABLE:
        real = os.path.realpath(path)
        if os.path.isdir(real) and real not in targets:
            targets.append(real)
    _mount("tmpfs", scratch_dir, "tmpfs", MS_NOSUID | MS_NODEV, PRIVATE_TMP_OPTIONS)
    arena = os.open(scratch_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fchdir(arena)  # bind sources below are relative: they resolve in the arena, whatever covers its path
        for index, target in enumerate(targets):
            name = f"shared-{index}"
            os.mkdir(name, 0o700)
            os.chmod(name, 0o1777)
            _mount(name, target, None, MS_BIND, None)
        os.mkdir("work", 0o700)
        os.chown("work", owner, owner)
        try:
            still_there = os.path.samestat(os.stat(scratch_dir), os.fstat(arena))
        except FileNotFoundError:
            still_there = False
        if not still_there:  # it was under one of the targets, now covered
            os.makedirs(scratch_dir, 0o755, exist_ok=True)
        _mount("work", scratch_dir, None, MS_BIND, None)
    finally:
        os.close(arena)
    os.chdir(scratch_dir)
    return targets


def _blocking_folder(path: str, uid: int) -> str | None:
    """The first folder on the way to `path` (itself included) that `uid`, with no
    supplementary groups, may not pass through or list; None if it may."""
    parts = [part for part in path.split("/") if part]
    folders = ["/" + "/".join(parts[:depth]) for depth in range(len(parts) + 1)]
    for index, folder in enumerate(folders):
        info = os.stat(folder)
        bits = (info.st_mode >> 6) & 7 if info.st_uid == uid else info.st_mode & 7
        needed = 5 if index == len(folders) - 1 else 1  # list the target; pass through the rest
        if bits & needed != needed:
            return folder
    return None


def unreachable_import_folders(uid: int, folders: list[str] | None = None) -> dict[str, str]:
    """{folder on `sys.path`: the folder that blocks it} for those `uid` cannot read: a
    Python installed under a private home (pyenv in /root) leaves the sandbox uid able to
    import only what was imported before it took over."""
    import sys

    found: dict[str, str] = {}
    for folder in sorted({os.path.realpath(p) for p in (folders if folders is not None else sys.path) if p}):
        if os.path.isdir(folder) and not any(folder.startswith(known + "/") for known in found):
            blocker = _blocking_folder(folder, uid)
            if blocker is not None:
                found[folder] = blocker
    return found


def _cover(folders: dict[str, str]) -> list[str]:
    """Make `folders` readable behind the folders that cover them ({folder: its cover}):
    each cover becomes a read-only tmpfs that holds only read-only binds of the folders
    needed below it (everything else there, a home folder, a checkout, stays out of sight)."""
    handles = {folder: os.open(folder, os.O_PATH | os.O_CLOEXEC) for folder in folders}  # before they are covered
    try:
        for cover in sorted(set(folders.values())):
            _mount("tmpfs", cover, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,nr_inodes=256,mode=0755")
            for folder, fd in handles.items():
                if folders[folder] != cover:
                    continue
                os.makedirs(folder, 0o755, exist_ok=True)
                _mount(f"/proc/self/fd/{fd}", folder, None, MS_BIND | MS_REC, None)
                _mount("none", folder, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
            _mount("none", cover, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
    finally:
        for fd in handles.values():
            os.close(fd)
    return sorted(folders)


# --- processes --------------------------------------------------------------------------


def _enter_pid_namespace() -> None:
    """Make this process's future a process in a new PID namespace.

    `unshare(CLONE_NEWPID)` moves only the children, so this process forks twice: its
    child becomes the namespace's init (pid 1, which only reaps), and only the grandchild
    (pid 2, an ordinary process that signals reach as usual) returns from here. The two
    others hold no file descriptor of the worker's, wait, and end as the grandchild did,
    so whoever waits for this pid sees the worker's own exit status. When the init ends,
    the kernel kills everything still in the namespace (whatever the submission left)."""
    _unshare(CLONE_NEWPID)
    status_read, status_write = os.pipe()
    first = os.fork()
    if first:
        _close_all_but(status_read)
        _end_as(_read_status(status_read, first))
    die_with_parent()  # the namespace's init: when it ends, the kernel ends all inside
    second = os.fork()
    if second:
        _close_all_but(status_write)
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # pid 1 ignores what it has no handler for
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                os._exit(1)
            if pid == second:
                os.write(status_write, status.to_bytes(4, "little", signed=True))
                os._exit(0)
    os.close(status_read)
    os.close(status_write)


def _close_all_but(keep: int) -> None:
    os.closerange(0, keep)
    os.closerange(keep + 1, 1 << 20)


def _read_status(fd: int, child: int) -> int:
    data = b""
    while len(data) < 4:
        chunk = os.read(fd, 4 - len(data))
        if not chunk:
            break
        data += chunk
    _, status = os.waitpid(child, 0)
    return int.from_bytes(data, "little", signed=True) if len(data) == 4 else status


def _end_as(status: int) -> None:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if number not in (signal.SIGKILL, signal.SIGSTOP):  # (these two have no handler to reset)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [number])
            signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
        os._exit(128 + number)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def _drop_bounding_set() -> None:
    """Capabilities this process and its children can never gain again (needs
    CAP_SETPCAP: as root, call it before changing uid)."""
    for cap in range(64):
        if _prctl(PR_CAPBSET_DROP, cap) != 0 and ctypes.get_errno() == 22:  # EINVAL: past the last one
            break
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


def _drop_capabilities() -> None:
    """No effective, permitted or inheritable capabilities (in a user namespace: none
    over its mounts, so they cannot be undone)."""
    _drop_bounding_set()

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    _check(_libc.capset(ctypes.byref(Header(0x20080522, 0)), ctypes.byref((Data * 2)())), "capset")
    if _capability_sets()[:4] != [0, 0, 0, 0]:
        raise OSError(0, "some remain")


def _capability_sets() -> list[int]:
    """Effective, permitted, inheritable, ambient and bounding sets, and no_new_privs."""
    with open("/proc/self/status") as handle:
        fields = dict(line.split(":", 1) for line in handle if ":" in line)
    return [int(fields[name], 16) for name in ("CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd", "NoNewPrivs")]


# --- the whole -------------------------------------------------------------------------


def isolate(hidden_paths: list[str], scratch_dir: str, max_processes: int = MAX_PROCESSES) -> dict:
    """Isolate this (single-threaded, just forked) process as far as the machine allows.

    With a PID namespace, the process that returns is a grandchild of the caller's
    process (see `_enter_pid_namespace`); its parent's exit status is its own."""
    report: dict = {"user": "same as the grader", "hidden_paths": [], "network": "available", "processes": "unlimited",
                    "private_tmp": [], "file_system": "writable as for the user", "syscalls": "all allowed"}
    failed: list[str] = []
    close_inherited_fds()
    root = os.geteuid() == 0
    owner = SANDBOX_UID if root else os.getuid()
    namespaces = root
    if not root:
        uid, gid = os.getuid(), os.getgid()
        try:
            _unshare(CLONE_NEWUSER)
            with open("/proc/self/setgroups", "w") as handle:
                handle.write("deny")
            with open("/proc/self/uid_map", "w") as handle:
                handle.write(f"{uid} {uid} 1")
            with open("/proc/self/gid_map", "w") as handle:
                handle.write(f"{gid} {gid} 1")
            namespaces = True
        except OSError as error:
            failed.append(f"no user namespace ({error}): none of the namespaces below")
    mounts = False
    if namespaces:
        try:
            _unshare(CLONE_NEWNS)
            _mount("none", "/", None, MS_REC | MS_PRIVATE, None)  # our mounts stay ours
            mounts = True
        except OSError as error:
            failed.append(f"no private mount namespace ({error}): no folder is hidden, /tmp and /dev/shm are shared")
    if mounts:
        try:
            _make_read_only()
            report["file_system"] = "read-only except its own folder"
        except OSError as error:
            failed.append(f"file system not (all) read-only ({error})")
        runtime = [] if root else [f"/run/user/{os.getuid()}", os.environ.get("XDG_RUNTIME_DIR", "")]
        try:
            report["hidden_paths"] = _hide([*hidden_paths, *filter(None, runtime)], import_folders())
        except OSError as error:
            failed.append(f"folders not hidden ({error})")
        try:
            report["private_tmp"] = _private_tmp(scratch_dir, owner)
            if report["file_system"].startswith("read-only"):
                report["file_system"] += " and its private " + ", ".join(report["private_tmp"])
        except OSError as error:
            failed.append(f"no private /tmp ({error})")
    if root:
        blocked = unreachable_import_folders(owner)
        if blocked and mounts:
            try:
                report["exposed_import_folders"] = _cover(blocked)
                blocked = {}
            except OSError as error:
                failed.append(f"Python's own folders not made readable ({error})")
        if blocked:
            failed.append(f"uid {owner} cannot read {', '.join(blocked)} (behind {', '.join(sorted(set(blocked.values())))}): "
                          f"student code can import only modules loaded before it started")
    if namespaces:
        try:
            _unshare(CLONE_NEWNET)
            report["network"] = "none (empty network namespace)"
        except OSError as error:
            failed.append(f"network not isolated ({error})")
        try:
            _unshare(CLONE_NEWIPC)
        except OSError as error:
            failed.append(f"System V IPC not isolated ({error})")
    if mounts:  # (a PID namespace needs its own /proc, so a private mount namespace)
        try:
            _enter_pid_namespace()
            report["processes"] = "own PID namespace"
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
        except OSError as error:
            failed.append(f"{'no PID namespace' if report['processes'] == 'unlimited' else 'no private /proc'} ({error})")
    if root:
        if not mounts:  # the scratch folder is not a fresh tmpfs of the sandbox uid: hand it over
            try:
                os.chown(scratch_dir, owner, owner)
                os.chmod(scratch_dir, 0o700)
            except OSError as error:
                failed.append(f"scratch folder not handed over ({error})")
        _drop_bounding_set()
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_NPROC, (max_processes, max_processes))
            os.setgroups([])
            os.setgid(owner)
            os.setuid(owner)
            die_with_parent()  # a change of uid cleared it
            report["user"] = f"unprivileged uid {owner}"
            report["processes"] = f"at most {max_processes}" + (", own PID namespace" if report["processes"] != "unlimited" else "")
        except OSError as error:
            failed.append(f"STILL ROOT: could not drop to uid {owner} ({error})")
    elif namespaces:
        report["user"] = "same uid, in a user namespace"
    if namespaces:
        try:
            _drop_capabilities()
            report["user"] += ", no capabilities"
        except OSError as error:
            failed.append(f"capabilities not all dropped ({error})")
    # Set-uid programs (sudo, su, ...) and file capabilities grant nothing from here on.
    if _prctl(PR_SET_NO_NEW_PRIVS, 1) != 0:
        failed.append(f"no_new_privs not set ({os.strerror(ctypes.get_errno())})")
    # Last, in every mode: what no mount or uid can stop (connecting to a host service's
    # socket, kernel keyrings and System V IPC that outlive the worker, ptrace, io_uring).
    try:
        report["syscalls"] = seccomp.install()
    except OSError as error:
        failed.append(f"no seccomp filter ({error})")
    try:
        os.chdir(scratch_dir)
    except OSError:
        pass
    if failed:
        report["degraded"] = "; ".join(failed)
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
    # The model process reaps its children from a SIGCHLD handler. Were that handler to
    # run while we wait (another child exiting meanwhile), it could reap ours first and
    # our waitpid would fail: hold SIGCHLD back until ours is reaped.
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    try:
        _sweep_as_sandbox_uid(timeout)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)


def _sweep_as_sandbox_uid(timeout: float) -> None:
    pid = os.fork()
    if pid == 0:
        try:
            close_inherited_fds()
            os.setgroups([])
            os.setgid(SANDBOX_UID)
            os.setuid(SANDBOX_UID)
            deadline = time.monotonic() + timeout
            while True:
                os.kill(-1, signal.SIGKILL)  # every process this uid may signal, i.e. its own
                if not live_processes_of(SANDBOX_UID, besides=os.getpid()) or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            remove_own_files(SHARED_WRITABLE, deadline)
        except OSError:
            pass
        finally:
            os._exit(0)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass  # someone reaped it already: it is done


def remove_own_files(folders, deadline: float) -> None:
    """Delete what this uid left in the machine's shared writable folders (where the
    worker had no private /tmp: the next student runs as the same uid): its entries at
    the top of each folder, and in folders there that anyone may write to. Run as that
    uid, so no link it planted can make this delete anything else; other users' trees
    (a checkout under /tmp, say) are never walked."""
    import shutil

    uid = os.getuid()
    pending = list(folders)
    while pending and time.monotonic() < deadline:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
                if info.st_uid == uid:
                    if stat.S_ISDIR(info.st_mode):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)
                elif stat.S_ISDIR(info.st_mode) and info.st_mode & 0o002 and folder in folders:
                    pending.append(entry.path)  # one level down, in a folder anyone may write to
            except OSError:
                continue


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
