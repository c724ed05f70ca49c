"""A seccomp-bpf filter for the worker: the last step of `isolation.isolate`, after
``no_new_privs`` and before student code runs; every thread and child inherits it, and
it holds in every isolation mode (root, user namespace, or no namespaces at all).

Denied with EPERM, and why:

* ``socket(AF_UNIX, ...)``: a read-only bind mount does not stop ``connect()`` to a host
  service (docker.sock, systemd, D-Bus). ``socketpair`` stays (multiprocessing uses it),
  but not of SOCK_DGRAM, whose sockets may still ``sendto`` any path (/dev/log, journald).
  Other families stay (the network namespace handles them).
* Kernel keyrings: state that outlives the process and reaches the next student.
* System V IPC and POSIX message queues: the same, and a way to the grader's uid where
  there is no IPC namespace.
* io_uring: its operations (connect, openat, ...) bypass this filter.
* ptrace, process_vm_*, pidfd_getfd, kcmp, process_madvise: other processes' memory and
  fds; without a PID namespace the grader may run as the same uid.
* Namespaces and mounts (unshare, setns, clone with namespace flags, mount API): a fresh
  user namespace would give back capabilities over new mounts and network namespaces.
* bpf, perf_event_open, userfaultfd, modules, kexec, reboot, swap: kernel attack surface
  no grading needs.
* x32 syscall numbers (x86_64) and foreign-arch syscalls (i386 ``int 0x80``, arm32):
  another syscall table, which the per-number rules here would not match.

``clone3`` gets ENOSYS instead: its flags lie in memory the filter cannot read, and
glibc then falls back to ``clone``, whose flags it can.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys

_SOCKETS = "Unix sockets reach host services (docker.sock) that a read-only mount does not stop"
_KEYRINGS = "kernel keyrings: state that outlives the process and reaches the next student"
_SYSV_IPC = "System V IPC: shared state across processes of the uid, without an IPC namespace the grader's"
_MQUEUE = "POSIX message queues: shared state that outlives the process"
_IO_URING = "io_uring: its operations (connect, openat, ...) bypass this filter"
_PROCESSES = "other processes' memory and fds (the grader's, where it runs as the same uid)"
_NAMESPACES = "namespaces and mounts: a new user namespace gives capabilities back"
_KERNEL = "kernel attack surface no grading needs"

# name -> why: denied whatever the arguments (EPERM).
DENIED: dict[str, str] = {
    **dict.fromkeys(("add_key", "request_key", "keyctl"), _KEYRINGS),
    **dict.fromkeys(("shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl",
                     "msgget", "msgsnd", "msgrcv", "msgctl"), _SYSV_IPC),
    **dict.fromkeys(("mq_open", "mq_unlink"), _MQUEUE),  # (mq_open is the only way to a queue's fd)
    **dict.fromkeys(("io_uring_setup", "io_uring_enter", "io_uring_register"), _IO_URING),
    **dict.fromkeys(("ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
                     "process_madvise"), _PROCESSES),
    **dict.fromkeys(("unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "open_tree",
                     "open_tree_attr", "move_mount", "fsopen", "fsmount", "fsconfig", "fspick",
                     "mount_setattr"), _NAMESPACES),
    **dict.fromkeys(("bpf", "perf_event_open", "userfaultfd", "kexec_load", "kexec_file_load",
                     "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff"), _KERNEL),
}
# name -> why: denied for some arguments only (see `_program`).
CHECKED: dict[str, str] = {
    "socket": "EPERM for AF_UNIX (the low 32 bits of the family: the kernel reads an int). " + _SOCKETS,
    # A connected stream or seqpacket pair can reach nothing else (connect: EISCONN); a
    # datagram one can sendto, or connect to, any datagram socket's path.
    "socketpair": "EPERM for SOCK_DGRAM (whatever the flags above SOCK_TYPE_MASK). " + _SOCKETS,
    "clone": "EPERM with any CLONE_NEW* flag. " + _NAMESPACES,
    "clone3": "ENOSYS: its flags are in memory the filter cannot read; glibc falls back to clone",
}

# Numbers from the kernel's uapi headers: x86_64's asm/unistd_64.h, aarch64's
# asm-generic/unistd.h. Syscalls added since 5.1 share one number on every architecture.
SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {
        "socket": 41, "socketpair": 53, "clone": 56, "clone3": 435,
        "add_key": 248, "request_key": 249, "keyctl": 250,
        "shmget": 29, "shmat": 30, "shmdt": 67, "shmctl": 31, "semget": 64, "semop": 65, "semtimedop": 220,
        "semctl": 66, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71, "mq_open": 240, "mq_unlink": 241,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_getfd": 438, "kcmp": 312,
        "process_madvise": 440,
        "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
        "open_tree": 428, "open_tree_attr": 467, "move_mount": 429, "fsopen": 430, "fsmount": 432,
        "fsconfig": 431, "fspick": 433, "mount_setattr": 442,
        "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "kexec_load": 246, "kexec_file_load": 320,
        "init_module": 175, "finit_module": 313, "delete_module": 176, "reboot": 169, "swapon": 167,
        "swapoff": 168,
    },
    "aarch64": {
        "socket": 198, "socketpair": 199, "clone": 220, "clone3": 435,
        "add_key": 217, "request_key": 218, "keyctl": 219,
        "shmget": 194, "shmat": 196, "shmdt": 197, "shmctl": 195, "semget": 190, "semop": 193,
        "semtimedop": 192, "semctl": 191, "msgget": 186, "msgsnd": 189, "msgrcv": 188, "msgctl": 187,
        "mq_open": 180, "mq_unlink": 181,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "pidfd_getfd": 438, "kcmp": 272,
        "process_madvise": 440,
        "unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
        "open_tree": 428, "open_tree_attr": 467, "move_mount": 429, "fsopen": 430, "fsmount": 432,
        "fsconfig": 431, "fspick": 433, "mount_setattr": 442,
        "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "kexec_load": 104, "kexec_file_load": 294,
        "init_module": 105, "finit_module": 273, "delete_module": 106, "reboot": 142, "swapon": 224,
        "swapoff": 225,
    },
}
NEWER_THAN_HEADERS = {"open_tree_attr"}  # Linux 6.15: an older kernel just returns ENOSYS
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}
X32_SYSCALL_BIT = 0x40000000

AF_UNIX, SOCK_DGRAM, SOCK_TYPE_MASK = 1, 2, 0xF
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET (CLONE_NEWTIME, 0x80,
# is only for unshare and clone3: in clone's flags those bits are the exit signal).
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC = 1, 1
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS = 38, 39
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000

# Classic BPF, as seccomp runs it on `struct seccomp_data`.
BPF_LD_W_ABS, BPF_ALU_AND_K, BPF_JEQ_K, BPF_JSET_K, BPF_RET_K = 0x20, 0x54, 0x15, 0x45, 0x06
OFFSET_NR, OFFSET_ARCH, OFFSET_ARGS = 0, 4, 16
# The low 32 bits of args[0] and args[1] (int parameters: the kernel ignores the rest).
OFFSET_ARG0_LOW = OFFSET_ARGS + (0 if sys.byteorder == "little" else 4)
OFFSET_ARG1_LOW = OFFSET_ARG0_LOW + 8


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def architecture() -> str:
    """This process's architecture as a key of `SYSCALLS`; OSError if it has none (a
    32-bit Python on a 64-bit kernel would see every one of its syscalls refused)."""
    machine = os.uname().machine
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if machine not in SYSCALLS or ctypes.sizeof(ctypes.c_void_p) != 8:
        raise OSError(errno.ENOTSUP, f"seccomp filter: unsupported architecture {machine} "
                                     f"({8 * ctypes.sizeof(ctypes.c_void_p)}-bit process)")
    return machine


def _program(arch: str) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions. Jumps name labels; they are made
    relative (and checked to fit BPF's 8-bit offsets) at the end."""
    numbers = SYSCALLS[arch]
    eperm, enosys = SECCOMP_RET_ERRNO | errno.EPERM, SECCOMP_RET_ERRNO | errno.ENOSYS
    code: list[tuple] = []  # (code, jt, jf, k), jt/jf: a label or 0 (the next instruction)
    labels: dict[str, int] = {}

    def label(name: str) -> None:
        labels[name] = len(code)

    # Another syscall table (i386's int 0x80 on x86_64, arm32 on aarch64): its numbers mean
    # other syscalls, so none of the rules below apply; refuse all of it. EPERM rather than
    # killing: the same answer as every other refusal here, and nothing else breaks.
    code.append((BPF_LD_W_ABS, 0, 0, OFFSET_ARCH))
    code.append((BPF_JEQ_K, 0, "deny", AUDIT_ARCH[arch]))
    code.append((BPF_LD_W_ABS, 0, 0, OFFSET_NR))
    if arch == "x86_64":  # the x32 ABI: the same syscalls under numbers with this bit set
        code.append((BPF_JSET_K, "deny", 0, X32_SYSCALL_BIT))
    for name in DENIED:
        code.append((BPF_JEQ_K, "deny", 0, numbers[name]))
    code.append((BPF_JEQ_K, "socket", 0, numbers["socket"]))
    code.append((BPF_JEQ_K, "socketpair", 0, numbers["socketpair"]))
    code.append((BPF_JEQ_K, "clone", 0, numbers["clone"]))
    code.append((BPF_JEQ_K, "enosys", 0, numbers["clone3"]))
    code.append((BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    label("socket")
    code.append((BPF_LD_W_ABS, 0, 0, OFFSET_ARG0_LOW))
    code.append((BPF_JEQ_K, "deny", 0, AF_UNIX))
    code.append((BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    label("socketpair")
    code.append((BPF_LD_W_ABS, 0, 0, OFFSET_ARG1_LOW))
    code.append((BPF_ALU_AND_K, 0, 0, SOCK_TYPE_MASK))
    code.append((BPF_JEQ_K, "deny", 0, SOCK_DGRAM))
    code.append((BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    label("clone")
    code.append((BPF_LD_W_ABS, 0, 0, OFFSET_ARG0_LOW))
    code.append((BPF_JSET_K, "deny", 0, CLONE_NAMESPACES))
    code.append((BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    label("deny")
    code.append((BPF_RET_K, 0, 0, eperm))
    label("enosys")
    code.append((BPF_RET_K, 0, 0, enosys))

    def offset(target, at: int) -> int:
        if target == 0:
            return 0
        distance = labels[target] - at - 1
        if not 0 <= distance <= 255:
            raise ValueError(f"seccomp filter: jump to {target} too far ({distance})")
        return distance

    return [(op, offset(jt, at), offset(jf, at), k) for at, (op, jt, jf, k) in enumerate(code)]


def describe(arch: str) -> str:
    return (f"seccomp ({arch}): no AF_UNIX sockets, keyrings, SysV IPC or message queues, io_uring, ptrace, "
            f"namespaces or mounts, bpf/perf/modules ({len(DENIED)} syscalls denied, socket, socketpair and "
            f"clone by argument; {'x32 and ' if arch == 'x86_64' else ''}foreign-arch syscalls refused)")


def install() -> str:
    """Install the filter in this process and every thread of it (all later threads and
    children inherit it; it cannot be removed). Sets no_new_privs if not yet set.

    Returns a one-line description for the isolation report; raises OSError when the
    architecture is not supported or the kernel refuses."""
    arch = architecture()
    instructions = _program(arch)
    array = (SockFilter * len(instructions))(*(SockFilter(*instruction) for instruction in instructions))
    prog = SockFprog(len(instructions), ctypes.cast(array, ctypes.POINTER(SockFilter)))
    # Without CAP_SYS_ADMIN the kernel takes a filter only with no_new_privs set (so the
    # filter cannot be used to confuse a set-uid program).
    if _prctl(PR_GET_NO_NEW_PRIVS) != 1 and _prctl(PR_SET_NO_NEW_PRIVS, 1) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"seccomp filter: no_new_privs not set: {os.strerror(error)}")
    # TSYNC: also every thread already running (none, right after fork; but be sure).
    result = _libc.syscall(ctypes.c_long(SYS_SECCOMP[arch]), ctypes.c_ulong(SECCOMP_SET_MODE_FILTER),
                           ctypes.c_ulong(SECCOMP_FILTER_FLAG_TSYNC), ctypes.byref(prog))
    if result == 0:
        return describe(arch)
    error = ctypes.get_errno()
    if result > 0:  # TSYNC: that thread has a filter of its own that this one does not extend
        raise OSError(errno.EBUSY, f"seccomp filter refused: thread {result} could not take it")
    if error == errno.ENOSYS:  # before Linux 3.17: no seccomp(2), and no TSYNC
        if _libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(prog),
                       ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0:
            return describe(arch)
        error = ctypes.get_errno()
    raise OSError(error, f"seccomp filter refused by the kernel: {os.strerror(error)}")


def _prctl(option: int, arg: int = 0) -> int:
    return _libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
