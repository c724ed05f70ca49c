"""The worker's seccomp filter (`autograder/sandbox/seccomp.py`). Each test installs it in
a forked child, which answers over a pipe as JSON: the test process is never filtered.
A few seconds in all (one fresh interpreter imports torch under the filter)."""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from autograder.sandbox import seccomp
from tests.forked import run_in_child

libc = ctypes.CDLL(None, use_errno=True)
MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}.get(os.uname().machine, os.uname().machine)
SUPPORTED = MACHINE in seccomp.SYSCALLS and ctypes.sizeof(ctypes.c_void_p) == 8
NUMBERS = seccomp.SYSCALLS.get(MACHINE, {})
GETPID = {"x86_64": 39, "aarch64": 172}.get(MACHINE)
X86_64 = MACHINE == "x86_64"

pytestmark = pytest.mark.skipif(not SUPPORTED, reason=f"no seccomp filter for {MACHINE}")


# --- helpers ---------------------------------------------------------------------------


def filtered(body, timeout: float = 60.0, install: bool = True):
    """Run `body(description)` in a forked child that has installed the filter first
    (`install=False`: `body(None)`, unfiltered) and return what it returns (JSON);
    re-raise its failure here."""
    return run_in_child(lambda: body(seccomp.install() if install else None), timeout)[0]


def attempt(action) -> str:
    """'ok', or the errno name of the OSError `action` raised."""
    try:
        result = action()
    except OSError as error:
        return errno.errorcode.get(error.errno, str(error.errno))
    if hasattr(result, "close"):
        result.close()
    return "ok"


def syscall(number: int, *args) -> str:
    """'ok' (the result, if not 0, after a colon) or the errno name of a raw syscall."""
    result = libc.syscall(ctypes.c_long(number), *(ctypes.c_long(arg) if isinstance(arg, int) else arg for arg in args))
    if result == -1:
        code = ctypes.get_errno()
        return errno.errorcode.get(code, str(code))
    return "ok" if result == 0 else f"ok:{result}"


def call(function, *args) -> str:
    """The same for a libc function that returns -1 on failure."""
    if function(*args) == -1:
        code = ctypes.get_errno()
        return errno.errorcode.get(code, str(code))
    return "ok"


def raw_fork(number: int, *args) -> str:
    """'ok' or the errno name of a clone-like raw syscall (a child it makes exits at once)."""
    result = libc.syscall(ctypes.c_long(number), *args)
    if result == 0:
        os._exit(0)
    if result > 0:
        os.waitpid(result, 0)
        return "ok"
    return errno.errorcode[ctypes.get_errno()]


def seccomp_mode(status_file: str = "/proc/self/status") -> str:
    """'2' under a filter (the Seccomp field of /proc/.../status)."""
    return re.search(r"^Seccomp:\s*(\d)", Path(status_file).read_text(), re.M).group(1)


def in_grandchild(body) -> object:
    """`body()` in a fork of this process, its JSON answer (or the wait status if it died)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            os.write(write, json.dumps(body()).encode())
        finally:
            os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 1 << 16):
        data += chunk
    os.close(read)
    _, status = os.waitpid(pid, 0)
    return json.loads(data) if data else {"died": status}


# --- what is denied ----------------------------------------------------------------------


def test_af_unix_sockets_are_denied_but_socketpair_and_inet_work(tmp_path):
    path = str(tmp_path / "host-service.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)

    def body(_):
        control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        control.connect(path)  # before the filter: the service is reachable
        control.close()
        seccomp.install()
        answer = {"unix_stream": attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)),
                  "unix_dgram": attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)),
                  # The kernel reads the family as an int: bits above 32 must not slip past the check.
                  "unix_high_bits": syscall(NUMBERS["socket"], (1 << 32) | socket.AF_UNIX, socket.SOCK_STREAM, 0),
                  "inet": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)),
                  "inet_udp": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))}
        left, right = socket.socketpair()
        left.sendall(b"through a socketpair")
        answer["socketpair"] = right.recv(100).decode()
        answer["seqpacket_pair"] = attempt(lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)[0])
        # A datagram pair could sendto any path; a stream one, even with its peer gone, connects nowhere.
        answer["dgram_pair"] = attempt(lambda: socket.socketpair(socket.AF_UNIX,
                                                                 socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)[0])
        right.close()
        answer["pair_reconnect"] = attempt(lambda: left.connect(path))
        import multiprocessing

        one, other = multiprocessing.Pipe()  # duplex: a socketpair
        one.send({"x": 1})
        answer["multiprocessing_pipe"] = other.recv()
        return answer

    try:
        answer = filtered(body, install=False)
        listener.setblocking(False)
        accepted = 0
        while True:
            try:
                listener.accept()[0].close()
                accepted += 1
            except BlockingIOError:
                break
    finally:
        listener.close()
    assert answer == {"unix_stream": "EPERM", "unix_dgram": "EPERM", "unix_high_bits": "EPERM", "inet": "ok",
                      "inet_udp": "ok", "socketpair": "through a socketpair", "seqpacket_pair": "ok",
                      "dgram_pair": "EPERM", "pair_reconnect": "EISCONN", "multiprocessing_pipe": {"x": 1}}
    assert accepted == 1  # the control connection only: none came once the filter was in


def test_keyrings_and_sysv_ipc_are_denied_and_forked_children_inherit_the_filter():
    key_spec_session, key_spec_process, keyctl_get_keyring_id = -3, -2, 0
    ipc_private, ipc_creat = 0, 0o1000
    libc.shmget.restype = libc.msgget.restype = libc.semget.restype = ctypes.c_int

    def body(_):
        answer = {
            "keyctl": syscall(NUMBERS["keyctl"], keyctl_get_keyring_id, key_spec_session, 1),
            "add_key": syscall(NUMBERS["add_key"], ctypes.c_char_p(b"user"), ctypes.c_char_p(b"left-behind"),
                               ctypes.c_char_p(b"secret"), 6, key_spec_process),
            "request_key": syscall(NUMBERS["request_key"], ctypes.c_char_p(b"user"), ctypes.c_char_p(b"x"),
                                   ctypes.c_char_p(None), 0),
            "shmget": call(libc.shmget, ipc_private, 4096, ipc_creat | 0o600),
            "msgget": call(libc.msgget, ipc_private, ipc_creat | 0o600),
            "semget": call(libc.semget, ipc_private, 1, ipc_creat | 0o600),
            "shmat": call(libc.shmat, 0, None, 0),  # an id guessed, not made: also refused
            "mq_open": syscall(NUMBERS["mq_open"], ctypes.c_char_p(b"left-behind"), os.O_CREAT | os.O_RDWR, 0o600, 0),
            "seccomp": seccomp_mode(),
        }

        def grandchild():
            return {"seccomp": seccomp_mode(), "unix": attempt(lambda: socket.socket(socket.AF_UNIX)),
                    "keyctl": syscall(NUMBERS["keyctl"], keyctl_get_keyring_id, key_spec_session, 1),
                    "inet": attempt(lambda: socket.socket(socket.AF_INET))}

        answer["grandchild"] = in_grandchild(grandchild)
        return answer

    assert filtered(body) == {"keyctl": "EPERM", "add_key": "EPERM", "request_key": "EPERM", "shmget": "EPERM",
                              "msgget": "EPERM", "semget": "EPERM", "shmat": "EPERM", "mq_open": "EPERM",
                              "seccomp": "2",
                              "grandchild": {"seccomp": "2", "unix": "EPERM", "keyctl": "EPERM", "inet": "ok"}}


def test_io_uring_ptrace_and_namespaces_are_denied():
    ptrace_attach, ptrace_detach, wall = 16, 17, 0x40000000
    clone_newuser, clone_newnet = 0x10000000, 0x40000000

    def body(_):
        params = ctypes.create_string_buffer(120)  # struct io_uring_params
        answer = {"io_uring_setup": syscall(NUMBERS["io_uring_setup"], 4, params),
                  "io_uring_enter": syscall(NUMBERS["io_uring_enter"], 0, 0, 0, 0, 0, 0)}
        parent = os.getppid()
        answer["ptrace_attach"] = syscall(NUMBERS["ptrace"], ptrace_attach, parent, 0, 0)
        if answer["ptrace_attach"] == "ok":  # the filter failed: let the test process go again
            os.waitpid(parent, wall)
            syscall(NUMBERS["ptrace"], ptrace_detach, parent, 0, 0)
        buffer = ctypes.create_string_buffer(8)
        local = (ctypes.c_void_p * 2)(ctypes.addressof(buffer), 8)
        answer["process_vm_readv"] = syscall(NUMBERS["process_vm_readv"], parent, local, 1, local, 1, 0)
        answer["unshare_user"] = call(libc.unshare, clone_newuser)
        answer["unshare_net"] = call(libc.unshare, clone_newnet)
        answer["setns"] = syscall(NUMBERS["setns"], 0, 0)
        answer["chroot"] = call(libc.chroot, b"/")
        # clone() with a namespace flag is unshare by another name (like fork if allowed).
        answer["clone_newuser"] = raw_fork(NUMBERS["clone"], ctypes.c_ulong(clone_newuser | signal.SIGCHLD),
                                           *[ctypes.c_ulong(0)] * 4)
        clone_args = (ctypes.c_uint64 * 11)(clone_newuser, 0, 0, 0, signal.SIGCHLD)  # struct clone_args
        answer["clone3"] = raw_fork(NUMBERS["clone3"], clone_args, ctypes.c_ulong(ctypes.sizeof(clone_args)))
        return answer

    assert filtered(body) == {"io_uring_setup": "EPERM", "io_uring_enter": "EPERM", "ptrace_attach": "EPERM",
                              "process_vm_readv": "EPERM", "unshare_user": "EPERM", "unshare_net": "EPERM",
                              "setns": "EPERM", "chroot": "EPERM", "clone_newuser": "EPERM", "clone3": "ENOSYS"}


@pytest.mark.skipif(not X86_64, reason="x32 and i386 syscalls exist only on x86_64")
def test_x32_and_foreign_arch_syscalls_are_denied():
    def int80_getpid():
        """i386's getpid (20) through int 0x80, as a 64-bit process may still call it."""
        code = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        code.write(b"\xb8\x14\x00\x00\x00\xcd\x80\xc3")  # mov eax, 20; int 0x80; ret
        function = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(code)))
        return {"result": function(), "pid": os.getpid()}

    def probe():
        return {"x32_getpid": syscall(seccomp.X32_SYSCALL_BIT | GETPID),
                "i386": in_grandchild(int80_getpid)}  # (a kernel without ia32 emulation kills it)

    unfiltered = filtered(lambda _: probe(), install=False)
    answer = filtered(lambda _: probe())
    assert unfiltered["x32_getpid"] != "EPERM"  # a pid (x32 ABI built in) or ENOSYS
    assert answer["x32_getpid"] == "EPERM"
    if unfiltered["i386"].get("result") != unfiltered["i386"].get("pid"):
        pytest.skip(f"no i386 syscalls on this kernel to check ({unfiltered['i386']}); x32 denied")
    assert answer["i386"]["result"] == -errno.EPERM, answer


# --- what still works --------------------------------------------------------------------


def test_ordinary_work_runs_under_the_filter(tmp_path):
    # torch is already imported in this process (conftest), so the forked child's import
    # would be a no-op: a fresh interpreter, started under the filter, imports it instead.
    script = ("import json, re, torch\n"
              "torch.set_num_threads(2)\n"
              "a = torch.arange(64 * 64, dtype=torch.float32).reshape(64, 64) / 4096\n"
              "b = (a @ a.T).sum().item()\n"
              "seccomp = re.search(r'^Seccomp:\\s*(\\d)', open('/proc/self/status').read(), re.M).group(1)\n"
              "print(json.dumps({'sum': b, 'threads': torch.get_num_threads(), 'seccomp': seccomp}))\n")
    expected_sum = sum(sum(x * y for x, y in zip(row, col)) for row in
                       [[(i * 64 + k) / 4096 for k in range(64)] for i in range(64)]
                       for col in [[(j * 64 + k) / 4096 for k in range(64)] for j in range(64)])

    def body(_):
        answer = {}
        target = tmp_path / "data.txt"
        with open(target, "w") as handle:
            handle.write("written under the filter")
        answer["file"] = target.read_text()
        with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
            os.rename(target, Path(folder) / "moved")
            answer["listing"] = os.listdir(folder)
        results = {}

        def work(index):
            results[index] = (sum(range(10000 * (index + 1))), seccomp_mode("/proc/thread-self/status"),
                              attempt(lambda: socket.socket(socket.AF_UNIX)))

        threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        answer["threads"] = [results[index] for index in range(4)]
        answer["true"] = subprocess.run(["/bin/true"]).returncode
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
        answer["torch"] = json.loads(done.stdout) if done.returncode == 0 else done.stderr[-3000:]
        return answer

    answer = filtered(body, timeout=240)
    assert answer["file"] == "written under the filter"
    assert answer["listing"] == ["moved"]
    assert answer["threads"] == [[sum(range(10000 * (index + 1))), "2", "EPERM"] for index in range(4)]
    assert answer["true"] == 0
    assert isinstance(answer["torch"], dict), answer["torch"]
    assert answer["torch"]["seccomp"] == "2" and answer["torch"]["threads"] == 2
    assert answer["torch"]["sum"] == pytest.approx(expected_sum, rel=1e-4)


# --- the module itself ---------------------------------------------------------------------


def test_install_returns_the_description():
    def body(description):
        return {"description": description, "seccomp": seccomp_mode()}

    answer = filtered(body)
    assert answer["seccomp"] == "2"
    description = answer["description"]
    assert isinstance(description, str) and "\n" not in description
    assert description.startswith(f"seccomp ({MACHINE}): no AF_UNIX sockets, keyrings, SysV IPC")
    assert f"({len(seccomp.DENIED)} syscalls denied" in description
    assert ("x32" in description) == X86_64


def test_an_unsupported_architecture_raises_before_installing_anything():
    def body(_):
        real = os.uname

        class Uname:
            machine = "riscv64"

        os.uname = lambda: Uname()
        try:
            outcome = attempt(seccomp.install)
            message = ""
            try:
                seccomp.install()
            except OSError as error:
                message = str(error)
        finally:
            os.uname = real
        return {"outcome": outcome, "message": message, "seccomp": seccomp_mode()}

    answer = filtered(body, install=False)
    assert answer["outcome"] == "ENOTSUP" and "unsupported architecture riscv64" in answer["message"]
    assert answer["seccomp"] == "0"


@pytest.mark.parametrize("arch, header", [("x86_64", "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
                                          ("aarch64", "/usr/include/asm-generic/unistd.h")])
def test_syscall_numbers_match_the_kernel_headers(arch, header):
    candidates = [header, "/usr/include/asm/unistd_64.h"] if arch == "x86_64" else [header]
    found = next((Path(path) for path in candidates if Path(path).exists()), None)
    if found is None:
        pytest.skip(f"no {header} to check the {arch} numbers against")
    defined = {name: int(number) for name, number in
               re.findall(r"^#define __NR_(\w+)\s+(\d+)\s*$", found.read_text(), re.M)}
    table = seccomp.SYSCALLS[arch]
    assert set(table) == set(seccomp.DENIED) | set(seccomp.CHECKED)
    checked = {name: number for name, number in table.items() if name in defined}
    assert checked == {name: defined[name] for name in checked}
    assert set(table) - set(checked) <= seccomp.NEWER_THAN_HEADERS
    assert seccomp.SYS_SECCOMP[arch] == defined["seccomp"]
