"""A single-node Slurm cluster of the tests' own: munged, slurmctld and slurmd started by
hand (no systemd) on free ports, with their configuration, state and logs in one folder,
and stopped again afterwards. Debian's ``slurm-wlm`` provides the daemons; with
AUTOGRADER_INSTALL_SLURM=1 (as .ci/run sets) a missing one is installed with apt-get."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

INSTALL_ENV_VAR = "AUTOGRADER_INSTALL_SLURM"
DAEMONS = ("munged", "slurmctld", "slurmd")


class SlurmUnavailable(Exception):
    """Why no cluster could be started (the test is skipped with this reason)."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _installed() -> bool:
    return all(shutil.which(d) or Path(f"/usr/sbin/{d}").exists() for d in DAEMONS) and shutil.which("sbatch") is not None


def ensure_installed() -> None:
    if _installed():
        return
    if os.environ.get(INSTALL_ENV_VAR) != "1":
        raise SlurmUnavailable(f"Slurm is not installed (set {INSTALL_ENV_VAR}=1 to let the test install Debian's "
                               f"slurm-wlm and munge with apt-get, as .ci/run does)")
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SlurmUnavailable("Slurm is not installed, and installing it needs root and apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"],
                    ["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"]):
        answer = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if command[1] == "install" and answer.returncode == 0:
            break
    if not _installed():
        raise SlurmUnavailable(f"apt-get could not install slurm-wlm: {(answer.stdout + answer.stderr)[-1500:]}")


def _daemon(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class Cluster:
    """``with Cluster() as cluster:`` ... ``cluster.env`` has SLURM_CONF for sbatch and friends."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))  # short: the munge socket path is limited
        self.env = dict(os.environ, SLURM_CONF=str(self.folder / "slurm.conf"))

    def __enter__(self) -> "Cluster":
        if os.geteuid() != 0:
            raise SlurmUnavailable("slurmd must run as root to start jobs (these tests are not root)")
        ensure_installed()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start(self) -> None:
        f = self.folder
        for sub in ("state", "spool", "log"):
            (f / sub).mkdir()
        (f / "munge.key").write_bytes(os.urandom(128))
        (f / "munge.key").chmod(0o600)
        self._run([_daemon("munged"), "--force", f"--key-file={f}/munge.key", f"--socket={f}/munge.sock",
                   f"--pid-file={f}/munged.pid", f"--log-file={f}/log/munged.log", f"--seed-file={f}/munge.seed"])
        host = socket.gethostname()
        cpus = os.cpu_count() or 1
        memory_mb = int(int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal"))) / 1024 * 0.8)
        (f / "slurm.conf").write_text("\n".join([
            "ClusterName=autograder-test", f"SlurmctldHost={host}", "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={f}/munge.sock",
            f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
            f"StateSaveLocation={f}/state", f"SlurmdSpoolDir={f}/spool",
            f"SlurmctldPidFile={f}/slurmctld.pid", f"SlurmdPidFile={f}/slurmd.pid",
            f"SlurmctldLogFile={f}/log/slurmctld.log", f"SlurmdLogFile={f}/log/slurmd.log",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU", "SchedulerType=sched/backfill", "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none", "MpiDefault=none", "ReturnToService=2",
            "SlurmctldTimeout=30", "SlurmdTimeout=30",
            f"NodeName={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
            "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""]))
        self._run([_daemon("slurmctld"), "-f", str(f / "slurm.conf")])
        self._run([_daemon("slurmd"), "-f", str(f / "slurm.conf")])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True, timeout=30)
            if state.returncode == 0 and state.stdout.strip() in ("idle", "mixed", "allocated"):
                return
            time.sleep(1)
        raise SlurmUnavailable(f"the node did not become idle (sinfo: {state.stdout.strip() or state.stderr.strip()}); "
                               f"{self.logs()}")

    def _run(self, command: list[str]) -> None:
        answer = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60)
        if answer.returncode != 0:
            raise SlurmUnavailable(f"{Path(command[0]).name} did not start (exit {answer.returncode}): "
                                   f"{(answer.stdout + answer.stderr).strip()[-800:]}; {self.logs()}")

    def logs(self) -> str:
        tails = []
        for log in sorted((self.folder / "log").glob("*.log")):
            tails.append(f"{log.name}: " + " | ".join(log.read_text(errors="replace").splitlines()[-5:]))
        return "; ".join(tails)

    def stop(self) -> None:
        subprocess.run(["scancel", "--full", "--quiet", "--user", "root"], env=self.env, capture_output=True, timeout=30)
        for name in ("slurmd", "slurmctld", "munged"):
            try:
                pid = int((self.folder / f"{name}.pid").read_text().split()[0])
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    os.kill(pid, 0)
                    time.sleep(0.1)
                os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass
        shutil.rmtree(self.folder, ignore_errors=True)
