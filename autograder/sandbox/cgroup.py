"""A memory limit over all processes of one submission: a memory cgroup.

Why: ``RLIMIT_AS`` is a limit per process. A submission that starts more processes
(``multiprocessing``, ``os.fork``, a shell) gets the limit once for each of them: one
submission held 4.7 GiB in 6 processes under a 1 GiB limit. A memory cgroup counts
the memory of every process in it together, and the kernel's OOM killer ends one of
them (cgroup v1) or all of them (cgroup v2 with ``memory.oom.group``) when their
total would go over the limit. Processes a member forks are members too; leaving
the cgroup needs root (or write access to the cgroup tree), which a submission,
running as the sandbox uid, does not have.

What is charged: memory the cgroup's processes allocate, and pages they are the
first to touch (page cache included: a file page is charged to whoever reads it in
first; clean file pages are reclaimed before anything is killed). Pages already
mapped by the parent process that forked them (the zygote's model weights, its
Python heap) are not charged to the child when it moves in, unless the child writes
them: copy-on-write then gives it a private copy, and that copy is charged.

Supported:

* cgroup v1: the hierarchy with the ``memory`` controller (found in
  ``/proc/self/mountinfo``); a child cgroup is made below the caller's memory cgroup
  (``/proc/self/cgroup``) with ``memory.limit_in_bytes`` and, where swap accounting
  is on, ``memory.memsw.limit_in_bytes`` set to the same value, so that swap is no
  way out.
* cgroup v2: the ``cgroup2`` mount; a child below the caller's cgroup with
  ``memory.max``, ``memory.swap.max`` = 0 and ``memory.oom.group`` = 1 where those
  files exist. The v2 "no internal processes" rule: the child has the memory
  controller only if ``memory`` is in the caller's cgroup's
  ``cgroup.subtree_control``; when it is not, it is enabled there, which the
  kernel refuses (EBUSY) when that cgroup holds processes itself, as the caller's
  own cgroup does unless it is the root. Then `create` fails with that reason.

Where neither can be used (no such mount, read-only, not root, no controller), or
on a system without ``/proc``, `MemoryCgroup.create` raises `CgroupUnavailable`,
whose message says why.

The usual sequence: the grader calls ``MemoryCgroup.create(cgroup_name(), limit)``;
the worker it forks calls ``cgroup.add()`` first thing, while it is still root,
before it drops to the sandbox uid; the grader reads ``oom_kills()`` and
``peak_bytes()`` when the worker ends, then calls ``remove()``. ``remove_stale()``
at start-up removes what a grader that was SIGKILLed left behind.

Standard library only.
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import os
import signal
import time

from . import scratch

__all__ = ["CgroupUnavailable", "MemoryCgroup", "cgroup_name", "remove_stale"]

DEFAULT_PREFIX = "autograder-"
_MOUNTINFO = "/proc/self/mountinfo"
_PROC_CGROUP = "/proc/self/cgroup"
_counter = itertools.count()
_mkdir = os.mkdir  # tests of the v2 file handling replace it to lay out a fake cgroup


class CgroupUnavailable(OSError):
    """No memory cgroup can be made here; ``str(error)`` says why."""


def cgroup_name(prefix: str = DEFAULT_PREFIX) -> str:
    """A fresh name ``<prefix><this pid>-<n>``: the form `remove_stale` recognises."""
    return f"{prefix}{os.getpid()}-{next(_counter)}"


# --- finding the hierarchy ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Hierarchy:
    version: int  # 1 or 2
    mountpoint: str
    own: str  # the caller's cgroup folder in this hierarchy
    read_only: bool


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _mounts() -> list[tuple[str, str, str, set[str], set[str]]]:
    """(fstype, root, mountpoint, mount options, super options) of each mount."""
    try:
        with open(_MOUNTINFO) as file:
            lines = file.read().splitlines()
    except OSError as error:
        raise CgroupUnavailable(f"cannot read {_MOUNTINFO} ({error.strerror or error}): "
                                "no cgroups on this system") from None
    mounts = []
    for line in lines:
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 6 or len(tail) < 3:
            continue
        mounts.append((tail[0], _unescape(fields[3]), _unescape(fields[4]),
                       set(fields[5].split(",")), set(tail[2].split(","))))
    return mounts


def _own_paths() -> tuple[str | None, str | None]:
    """The caller's (v1 memory, v2) cgroup paths from /proc/self/cgroup."""
    try:
        with open(_PROC_CGROUP) as file:
            lines = file.read().splitlines()
    except OSError as error:
        raise CgroupUnavailable(f"cannot read {_PROC_CGROUP} ({error.strerror or error})") from None
    v1 = v2 = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy_id, controllers, path = parts
        if hierarchy_id == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v1, v2


def _folder(mountpoint: str, root: str, path: str) -> str | None:
    """Where cgroup `path` lies under a mount of the hierarchy's `root`, or None."""
    if path.startswith("/.."):  # outside this cgroup namespace
        return None
    root = root.rstrip("/")
    if root:
        if path != root and not path.startswith(root + "/"):
            return None
        path = path[len(root):]
    folder = os.path.join(mountpoint, path.lstrip("/")).rstrip("/") or "/"
    return folder if os.path.isdir(folder) else None


def _candidates(version: int | None = None) -> tuple[list[_Hierarchy], list[str]]:
    """Usable-looking hierarchies, v1 memory first (a controller is in one hierarchy
    only, so where a v1 memory mount exists, v2 has no memory controller), and the
    reasons the others were passed over."""
    mounts = _mounts()
    own_v1, own_v2 = _own_paths()
    found: list[_Hierarchy] = []
    reasons: list[str] = []
    for wanted in (1, 2):
        if version is not None and wanted != version:
            continue
        if wanted == 1:
            matching = [m for m in mounts if m[0] == "cgroup" and "memory" in m[4]]
            own, label = own_v1, "cgroup v1 memory"
        else:
            matching = [m for m in mounts if m[0] == "cgroup2"]
            own, label = own_v2, "cgroup v2"
        if not matching:
            reasons.append(f"{label}: not mounted")
            continue
        if own is None:
            reasons.append(f"{label}: this process has no entry for it in {_PROC_CGROUP}")
            continue
        # The mount whose root is the longest prefix of our path, writable ones first.
        located = []
        for _fstype, root, mountpoint, options, superoptions in matching:
            folder = _folder(mountpoint, root, own)
            if folder is not None:
                read_only = "ro" in options or "ro" in superoptions
                located.append((read_only, -len(root), _Hierarchy(wanted, mountpoint, folder, read_only)))
        if not located:
            reasons.append(f"{label}: this process's cgroup {own} is not visible under "
                           + ", ".join(m[2] for m in matching))
            continue
        located.sort(key=lambda entry: entry[:2])
        found.append(located[0][2])
    return found, reasons


# --- small file helpers (fork-safe: no locks, no buffered io) -------------------------


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)  # O_TRUNC as a shell's > does; cgroupfs ignores it
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _read(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return None


def _keyed(text: str | None, key: str) -> int | None:
    """The number after `key` in a 'key value' per line file (memory.events, oom_control)."""
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1])
    return None


def _why(error: OSError, action: str) -> str:
    code = error.errno
    if code in (errno.EACCES, errno.EPERM):
        hint = "permission denied (needs root, or a cgroup delegated to this user)"
    elif code == errno.EROFS:
        hint = "the cgroup file system is mounted read-only (a container without cgroup access?)"
    elif code == errno.ENOSPC:
        hint = "no space: the kernel's cgroup limit (cgroup.max.descendants?) is reached"
    else:
        hint = error.strerror or str(error)
    return f"{action}: {hint}"


def _format_bytes(count: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


# --- the cgroup -------------------------------------------------------------------------


class MemoryCgroup:
    """One child memory cgroup: a limit over the memory of all processes in it.

    ``path`` is its folder, ``version`` 1 or 2, ``limit_bytes`` the limit the kernel
    holds (rounded down to a page), ``swap_limited`` whether swap counts too."""

    def __init__(self, path: str, version: int, limit_bytes: int | None = None, swap_limited: bool = False):
        self.path = path
        self.version = version
        self.limit_bytes = limit_bytes
        self.swap_limited = swap_limited
        self._procs = os.path.join(path, "cgroup.procs")

    def __repr__(self) -> str:
        return f"MemoryCgroup({self.path!r}, version={self.version}, limit_bytes={self.limit_bytes})"

    # creation

    @classmethod
    def create(cls, name: str, limit_bytes: int, *, version: int | None = None) -> "MemoryCgroup":
        """Make the child cgroup `name` below the caller's memory cgroup, limited to
        `limit_bytes` over all its processes. `version` (1 or 2) restricts the search to
        that cgroup version; by default v1's memory hierarchy is used where it is
        mounted, else v2. Raises `CgroupUnavailable` saying why when it cannot."""
        if not name or "/" in name or name in (".", "..") or "\0" in name:
            raise ValueError(f"not a cgroup name: {name!r}")
        limit_bytes = int(limit_bytes)
        if limit_bytes <= 0:
            raise ValueError(f"the limit must be positive, not {limit_bytes}")
        hierarchies, reasons = _candidates(version)
        for hierarchy in hierarchies:
            try:
                return cls._create_in(hierarchy, name, limit_bytes)
            except CgroupUnavailable as error:
                reasons.append(str(error))
        raise CgroupUnavailable("no memory cgroup can be made here: " + "; ".join(reasons))

    @classmethod
    def _create_in(cls, hierarchy: _Hierarchy, name: str, limit_bytes: int) -> "MemoryCgroup":
        label = f"cgroup v{hierarchy.version}"
        if hierarchy.read_only:
            raise CgroupUnavailable(f"{label}: {hierarchy.mountpoint} is mounted read-only")
        if hierarchy.version == 2:
            cls._enable_memory_v2(hierarchy.own)
        path = os.path.join(hierarchy.own, name)
        if os.path.isdir(path):
            # Left by an earlier process whose pid was reused: start afresh if it is
            # empty; one with processes in it belongs to someone else.
            if MemoryCgroup(path, hierarchy.version).pids():
                raise FileExistsError(errno.EEXIST, "a cgroup of that name exists and has processes", path)
            try:
                os.rmdir(path)
            except OSError as error:
                raise CgroupUnavailable(f"{label}: " + _why(error, f"cannot remove the old {path}")) from None
        try:
            _mkdir(path)
        except OSError as error:
            raise CgroupUnavailable(f"{label}: " + _why(error, f"cannot create {path}")) from None
        try:
            if hierarchy.version == 1:
                limit, swap = cls._limit_v1(path, limit_bytes)
            else:
                limit, swap = cls._limit_v2(path, limit_bytes)
        except OSError as error:
            try:
                os.rmdir(path)
            except OSError:
                pass
            raise CgroupUnavailable(f"{label}: " + _why(error, f"cannot set the limit in {path}")) from None
        return cls(path, hierarchy.version, limit, swap)

    @staticmethod
    def _limit_v1(path: str, limit_bytes: int) -> tuple[int, bool]:
        _write(os.path.join(path, "memory.limit_in_bytes"), str(limit_bytes))
        swap = False
        memsw = os.path.join(path, "memory.memsw.limit_in_bytes")
        if os.path.exists(memsw):  # only with swap accounting on; must be >= the memory limit
            try:
                _write(memsw, str(limit_bytes))
                swap = True
            except OSError:
                pass
        read_back = (_read(os.path.join(path, "memory.limit_in_bytes")) or "").strip()
        return (int(read_back) if read_back.isdigit() else limit_bytes), swap

    @staticmethod
    def _limit_v2(path: str, limit_bytes: int) -> tuple[int, bool]:
        if not os.path.exists(os.path.join(path, "memory.max")):
            raise CgroupUnavailable(f"cgroup v2: {path} has no memory.max: the memory controller is not enabled for it")
        _write(os.path.join(path, "memory.max"), str(limit_bytes))
        swap = False
        swap_max = os.path.join(path, "memory.swap.max")
        if os.path.exists(swap_max):
            try:
                _write(swap_max, "0")
                swap = True
            except OSError:
                pass
        oom_group = os.path.join(path, "memory.oom.group")
        if os.path.exists(oom_group):
            try:
                _write(oom_group, "1")
            except OSError:
                pass
        read_back = (_read(os.path.join(path, "memory.max")) or "").strip()
        return (int(read_back) if read_back.isdigit() else limit_bytes), swap

    @staticmethod
    def _enable_memory_v2(parent: str) -> None:
        """Make sure children of `parent` get the memory controller (the v2 rules)."""
        controllers = (_read(os.path.join(parent, "cgroup.controllers")) or "").split()
        if "memory" not in controllers:
            raise CgroupUnavailable(
                f"cgroup v2: the memory controller is not available in {parent} "
                f"(its cgroup.controllers lists: {' '.join(controllers) or 'nothing'}); "
                "the cgroup above it would have to enable it in its cgroup.subtree_control")
        subtree = os.path.join(parent, "cgroup.subtree_control")
        if "memory" in (_read(subtree) or "").split():
            return
        try:
            _write(subtree, "+memory")
        except OSError as error:
            if error.errno == errno.EBUSY:
                raise CgroupUnavailable(
                    f"cgroup v2: 'memory' is not in {subtree} and cannot be enabled there: {parent} "
                    "holds processes itself (this one among them), and the v2 'no internal processes' "
                    "rule allows controllers for children only in a cgroup without processes; run the "
                    "grader in a leaf cgroup below one that has memory enabled (e.g. systemd-run --scope "
                    "-p Delegate=yes)") from None
            raise CgroupUnavailable("cgroup v2: " + _why(error, f"cannot enable 'memory' in {subtree}")) from None
        if "memory" not in (_read(subtree) or "").split():
            raise CgroupUnavailable(f"cgroup v2: writing +memory to {subtree} did not enable it")

    # membership

    def add(self, pid: int = 0) -> None:
        """Move process `pid` (0: the caller) into this cgroup, with its threads.

        Safe in a child just forked from a threaded parent (only os.open/os.write);
        call it while the child is still root, before it drops privileges. Processes
        it forks afterwards are members from birth. Raises `CgroupUnavailable`."""
        try:
            _write(self._procs, str(int(pid)))
        except OSError as error:
            raise CgroupUnavailable(_why(error, f"cannot move process {pid or os.getpid()} into {self.path}")) from None

    def _folders(self) -> list[str]:
        """This cgroup and any below it (a member with access could have made some)."""
        folders = []
        for folder, _dirs, _files in os.walk(self.path, topdown=False):
            folders.append(folder)
        return folders or [self.path]

    def pids(self) -> list[int]:
        """The processes in this cgroup (and any cgroup below it), sorted; [] once it is gone."""
        found: set[int] = set()
        for folder in self._folders():
            for word in (_read(os.path.join(folder, "cgroup.procs")) or "").split():
                if word.isdigit() and int(word) > 0:
                    found.add(int(word))
        return sorted(found)

    # accounting

    def usage_bytes(self) -> int | None:
        """Memory charged now (v1 memory.usage_in_bytes, v2 memory.current)."""
        name = "memory.usage_in_bytes" if self.version == 1 else "memory.current"
        text = (_read(os.path.join(self.path, name)) or "").strip()
        return int(text) if text.isdigit() else None

    def peak_bytes(self) -> int | None:
        """The most memory charged at once since creation (v1 memory.max_usage_in_bytes,
        v2 memory.peak, Linux 5.19+); None where the kernel does not keep it."""
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        text = (_read(os.path.join(self.path, name)) or "").strip()
        return int(text) if text.isdigit() else None

    def oom_kills(self) -> int:
        """How many processes the OOM killer ended for this cgroup's limit.

        v2: memory.events' oom_kill. v1: memory.oom_control's oom_kill (Linux 4.13+);
        on older kernels 1 if memory.failcnt > 0 (the limit was hit, which may also have
        been resolved by reclaim alone: a heuristic), else 0."""
        if self.version == 2:
            return _keyed(_read(os.path.join(self.path, "memory.events")), "oom_kill") or 0
        count = _keyed(_read(os.path.join(self.path, "memory.oom_control")), "oom_kill")
        if count is not None:
            return count
        failcnt = (_read(os.path.join(self.path, "memory.failcnt")) or "").strip()
        return 1 if failcnt.isdigit() and int(failcnt) > 0 else 0

    # ending

    def kill_all(self, timeout: float = 10.0) -> bool:
        """SIGKILL every process in this cgroup (processes that double-forked away from
        their parent included) until none is left or `timeout` seconds have passed;
        True if it is empty. The caller itself, if it is a member, is spared (and the
        cgroup then never becomes empty). v2 uses cgroup.kill (Linux 5.14+) where
        present; otherwise, and on v1, it repeats reading cgroup.procs and killing, which
        also catches processes forked between a read and the kills."""
        deadline = time.monotonic() + timeout
        me = os.getpid()
        kill_file = os.path.join(self.path, "cgroup.kill")
        if self.version == 2 and os.path.exists(kill_file) and me not in self.pids():
            try:
                _write(kill_file, "1")
            except OSError:
                pass
        pause = 0.005
        while True:
            pids = [pid for pid in self.pids() if pid != me]
            if not pids:
                return True
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:  # gone already, or not ours to kill (outside our pid namespace)
                    pass
            if time.monotonic() >= deadline:
                return not [pid for pid in self.pids() if pid != me]
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def remove(self, timeout: float = 10.0) -> bool:
        """Kill every process in it, then remove the cgroup (and any below it). Never
        raises: False if something is left (see `pids`), True once it is gone."""
        try:
            if not os.path.isdir(self.path):
                return True
            self.kill_all(timeout)
            deadline = time.monotonic() + min(timeout, 5.0)
            while True:
                try:
                    for folder in self._folders():  # deepest first
                        os.rmdir(folder)
                    return True
                except FileNotFoundError:
                    if not os.path.isdir(self.path):
                        return True
                except OSError:
                    # EBUSY for a moment after the last member died (the kernel finishes
                    # its exit asynchronously), or for good while members remain.
                    if time.monotonic() >= deadline:
                        return False
                    self.kill_all(0.5)
                    time.sleep(0.05)
        except Exception:  # noqa: BLE001 - never raises, as promised
            return False

    def describe(self) -> str:
        """E.g. 'cgroup v1 memory limit 1.0 GiB over all its processes (/sys/fs/...)'."""
        limit = _format_bytes(self.limit_bytes) if self.limit_bytes is not None else "unknown"
        swap = "" if self.swap_limited else ", swap not counted"
        return f"cgroup v{self.version} memory limit {limit} over all its processes{swap} ({self.path})"


def remove_stale(prefix: str = DEFAULT_PREFIX) -> int:
    """Remove the cgroups named ``<prefix><creator pid>-<n>`` below the caller's memory
    cgroup whose creator process no longer exists (a grader SIGKILLed before it could
    clean up): their processes are killed, the folders removed. Returns how many were
    removed; 0 where there are no cgroups. Never raises."""
    try:
        hierarchies, _reasons = _candidates()
    except CgroupUnavailable:
        return 0
    removed = 0
    for hierarchy in hierarchies:
        try:
            entries = list(os.scandir(hierarchy.own))
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith(prefix):
                continue
            creator = entry.name[len(prefix):].split("-", 1)[0]
            if not creator.isdigit() or scratch.alive(int(creator)):
                continue
            try:
                if not entry.is_dir(follow_symlinks=False):
                    continue
            except OSError:
                continue
            if MemoryCgroup(entry.path, hierarchy.version).remove():
                removed += 1
    return removed
