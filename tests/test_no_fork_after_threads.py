"""`float32_weights` converts in a fresh interpreter, never a fork, and never waits without a limit.

A process that has run multi-threaded torch code and then forks can leave its child
waiting forever on a lock one of those threads held: the benchmark's first run on a
fresh cache hung that way, building the model and then forking to convert it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from autograder import assignment, models

from autograder.assignment import load as _load_assignment

BASIC = _load_assignment("basic_prompting")  # the assignment these tests grade

# Runs in its own interpreter, so the thread pools it starts never touch pytest's.
HAZARD = """
import os, sys
from pathlib import Path

import torch

from autograder import models

def no_fork():
    raise AssertionError("os.fork() after torch started its threads")

torch.set_num_threads(2)
a = torch.randn(1500, 1500)
(a @ a).sum()  # starts torch's intra-op thread pool
source = Path(sys.argv[1])
source.mkdir()
models._build_from_config(source, models.TINY_CONFIG, 1, torch.bfloat16)
os.fork = no_fork  # subprocess's fork-and-exec does not go through os.fork
print(models.float32_weights(source, "hazard-test"))
"""


def test_float32_copy_after_multithreaded_torch_finishes(tmp_path):
    env = dict(os.environ, AUTOGRADER_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(assignment.REPO_ROOT))
    source = tmp_path / "bf16"
    try:
        result = subprocess.run([sys.executable, "-c", HAZARD, str(source)], env=env, cwd=assignment.REPO_ROOT,
                                capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"float32_weights hung after multi-threaded torch work:\n{expired.stderr}")
    assert result.returncode == 0, result.stderr
    copy = Path(result.stdout.strip().splitlines()[-1])
    assert copy.parent == tmp_path / "cache" and (copy / "FLOAT32_OF.json").exists()
    assert models._stored_dtype(json.loads((copy / "config.json").read_text())) == "float32"

    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    original, converted = load_file(str(source / "model.safetensors")), load_file(str(copy / "model.safetensors"))
    assert original.keys() <= converted.keys()
    for name, tensor in original.items():
        assert tensor.dtype == torch.bfloat16 and converted[name].dtype == torch.float32
        assert torch.equal(converted[name], tensor.float()), name
    model = AutoModelForCausalLM.from_pretrained(str(copy))
    assert all(p.dtype == torch.float32 for p in model.parameters())


def _corrupt_checkpoint(folder: Path) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen3", "torch_dtype": "bfloat16"}))
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    return folder


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _nothing_built(cache: Path) -> bool:
    return not cache.exists() or all(entry.suffix == ".lock" for entry in cache.iterdir())


def test_failed_conversion_says_what_and_why(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV_VAR, str(tmp_path / "cache"))
    source = _corrupt_checkpoint(tmp_path / "corrupt")
    started = time.monotonic()
    with pytest.raises(models.ModelUnavailableError) as raised:
        models.float32_weights(source, "corrupt-test")
    assert time.monotonic() - started < 120
    message = str(raised.value)
    assert f"float32 copy of the weights in {source}" in message
    assert "exited with status 1" in message
    assert "SafetensorError" in message  # the last lines of the child's stderr
    assert "course_model.py --parent" in message and models.CONVERT_TIMEOUT_ENV_VAR in message  # the command
    assert _nothing_built(tmp_path / "cache")


def test_conversion_past_its_limit_is_killed_and_reported(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV_VAR, str(tmp_path / "cache"))
    source = _corrupt_checkpoint(tmp_path / "slow")  # importing torch alone takes longer than the limit
    started = time.monotonic()
    with pytest.raises(models.ModelUnavailableError) as raised:
        models.float32_weights(source, "slow-test", timeout=0.2)
    assert time.monotonic() - started < 30
    message = str(raised.value)
    assert str(source) in message and "ran past its limit of 0.2 s and was killed" in message
    assert _processes_mentioning(str(source)) == []
    assert _nothing_built(tmp_path / "cache")


def test_conversion_limit_comes_from_parameter_then_env(monkeypatch):
    monkeypatch.delenv(models.CONVERT_TIMEOUT_ENV_VAR, raising=False)
    assert models._convert_timeout(None) == models.DEFAULT_CONVERT_TIMEOUT_S
    monkeypatch.setenv(models.CONVERT_TIMEOUT_ENV_VAR, "90")
    assert models._convert_timeout(None) == 90
    assert models._convert_timeout(5) == 5
    monkeypatch.setenv(models.CONVERT_TIMEOUT_ENV_VAR, "soon")
    with pytest.raises(ValueError, match=models.CONVERT_TIMEOUT_ENV_VAR):
        models._convert_timeout(None)


def test_float32_checkpoint_needs_no_copy(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen3", "torch_dtype": "float32"}))
    assert models.float32_weights(tmp_path, "unused", timeout=0.001) == tmp_path


def test_conversion_stops_when_its_parent_is_gone(tmp_path):
    """A grader killed while it waits leaves no conversion running on for nobody."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    command = [sys.executable, str(assignment.COURSE_MODEL_PATH), "--parent", gone.stdout.strip(),
               "float32", str(tmp_path / "source"), str(tmp_path / "copy")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "stopped: the parent process" in result.stderr
    assert not (tmp_path / "copy").exists()


def test_the_model_process_never_starts_torchs_thread_pool(tmp_path):
    """The model process forks every worker, so it must never run a multi-threaded torch
    operation (the hazard above): after grading, it has no more threads than `import
    torch` alone starts, while its workers computed with every core."""
    import shutil

    from autograder.grading import Grader

    baseline = subprocess.run([sys.executable, "-c", "import os, torch; print(len(os.listdir('/proc/self/task')))"],
                              capture_output=True, text=True, timeout=120, check=True)
    folder = tmp_path / "reference"
    folder.mkdir()
    shutil.copy(BASIC.reference_path, folder / "decoding.py")
    with Grader("tiny-qwen3") as grader:
        assert grader.grade(folder).score == 100
        threads = len(os.listdir(f"/proc/{grader.zygote.process.pid}/task"))
    assert threads <= int(baseline.stdout), "the model process started threads: forking it is no longer safe"
