"""The Gradescope bundle: build the zip, unpack it where Gradescope would (a temporary
/autograder), and run its run_autograder on three submissions with the offline model.

setup.sh is not run here (it installs into /autograder/venv): the current environment stands
in for it through AUTOGRADER_PYTHON.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder import gradescope, report
from autograder.grading import GROUPS

from autograder.assignment import load as _load_assignment

BASIC = _load_assignment("basic_prompting")  # the assignment these tests grade
POINTS = BASIC.points

REPO = Path(__file__).resolve().parent.parent
BUGGY = REPO / "tests" / "submissions" / "top_p_off_by_one"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return gradescope.build_bundle(tmp_path_factory.mktemp("bundle") / "autograder.zip", "tiny-qwen3")


def check_schema(data: dict) -> None:
    """The fields Gradescope reads: https://gradescope-autograders.readthedocs.io/en/latest/specs/"""
    assert isinstance(data["score"], (int, float)) and isinstance(data["execution_time"], int)
    assert isinstance(data["output"], str) and data["visibility"] in ("visible", "hidden", "after_due_date", "after_published")
    assert data["tests"]
    for test in data["tests"]:
        assert set(test) >= {"name", "score", "max_score", "status", "output", "visibility", "tags"}
        assert isinstance(test["name"], str) and isinstance(test["output"], str) and isinstance(test["tags"], list)
        assert test["status"] in ("passed", "failed") and test["visibility"] in report.VISIBILITY_LEVELS
        assert test["tags"][0] in POINTS and test["tags"][1] in GROUPS and 0 <= test["score"] <= test["max_score"] + 1e-9
    assert sum(t["max_score"] for t in data["tests"]) == pytest.approx(sum(POINTS.values()))
    assert data["score"] == pytest.approx(sum(t["score"] for t in data["tests"]), abs=1e-3)


def gradescope_root(tmp_path: Path, bundle: Path, submission: str | None) -> Path:
    """What Gradescope leaves behind: source/ (the zip), run_autograder, submission/, results/."""
    root = tmp_path / "autograder"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(root / "source")
        for info in archive.infolist():  # extractall drops the permission bits
            mode = info.external_attr >> 16
            if mode:
                os.chmod(root / "source" / info.filename, mode & 0o777)
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir()
    (root / "results").mkdir()
    if submission is not None:
        (root / "submission" / "decoding.py").write_text(submission)
    return root


def run_autograder(root: Path) -> tuple[dict, subprocess.CompletedProcess]:
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable)
    env.setdefault("AUTOGRADER_CACHE", str(root / "model-cache"))
    done = subprocess.run([str(root / "run_autograder")], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((root / "results" / "results.json").read_text()), done


def test_bundle_layout(bundle):
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in archive.infolist()}
        setup = archive.read("setup.sh").decode()
        info = json.loads(archive.read("bundle.json"))
    assert {"setup.sh", "run_autograder", "bundle.json", "pyproject.toml", "constraints/transformers4.txt",
            "autograder/gradescope.py", "autograder/grading.py", "solutions/basic_prompting/decoding.py"} <= names
    assert any(n.startswith("autograder/suites/basic_prompting/test_") for n in names)
    assert not any("__pycache__" in n or n.startswith("tests/") or n.startswith("course/") for n in names)
    assert modes["setup.sh"] & stat.S_IXUSR and modes["run_autograder"] & stat.S_IXUSR
    assert info["model"] == "tiny-qwen3" and info["limits"]["submission_seconds"] > 0
    assert "torch==2.13.0" in setup and "download.pytorch.org/whl/cpu" in setup
    assert setup.index("torch==2.13.0") < setup.index("-e \"$SOURCE\"")  # torch first
    # the reference's answers are computed into the image, after the cache is opened up to everyone
    assert setup.index("chmod -R a+rX") < setup.index('-m autograder prepare --model "$MODEL"')
    assert info["visibility"] == report.DEFAULT_VISIBILITY
    assert subprocess.run(["bash", "-n"], input=setup, text=True).returncode == 0


def test_real_model_bundle_downloads_it(tmp_path):
    with zipfile.ZipFile(gradescope.build_bundle(tmp_path / "real.zip", "Qwen/Qwen3-0.6B-Base")) as archive:
        setup = archive.read("setup.sh").decode()
    # models.model_path downloads a hub model that is not cached yet
    assert "models.model_path(sys.argv[1])" in setup and "MODEL=Qwen/Qwen3-0.6B-Base" in setup


@pytest.mark.parametrize("kind", ["reference", "skeleton", "buggy"])
def test_run_autograder(tmp_path, bundle, kind):
    source = {"reference": BASIC.reference_path, "skeleton": BASIC.skeleton_path, "buggy": BUGGY / "decoding.py"}[kind]
    data, done = run_autograder(gradescope_root(tmp_path, bundle, source.read_text()))
    check_schema(data)
    by_function = {f: sum(t["score"] for t in data["tests"] if t["tags"][0] == f) for f in POINTS}
    if kind == "reference":
        assert data["score"] == pytest.approx(100)
    elif kind == "skeleton":
        assert data["score"] == 0
    else:
        wrong = set(json.loads((BUGGY / "expected.json").read_text())["wrong"])
        for function, points in POINTS.items():
            assert (by_function[function] < points - 1e-6) == (function in wrong), function
    assert "score" in done.stdout  # the TA-only log
    text = json.dumps({k: v for k, v in data.items() if k != "extra_data"})
    for leak in ("mass_before", "grading.student(", "def test_"):
        assert leak not in text


def test_visibility_per_group_and_inputs_per_student(tmp_path):
    """A bundle built with other visibility levels writes them per test; the student's
    Gradescope id (with the file) decides the hidden inputs."""
    built = gradescope.build_bundle(tmp_path / "custom.zip", "tiny-qwen3",
                                    visibility=gradescope.parse_visibility(["hidden=after_published", "public=hidden"]))
    root = gradescope_root(tmp_path, built, BUGGY.joinpath("decoding.py").read_text())
    (root / "submission_metadata.json").write_text(json.dumps({"id": 99, "users": [{"id": "4321", "email": "b@x"},
                                                                                     {"id": "1234", "email": "a@x"}]}))
    data, done = run_autograder(root)
    check_schema(data)
    assert {(t["tags"][1], t["visibility"]) for t in data["tests"]} == {("public", "hidden"), ("hidden", "after_published")}
    inputs = data["extra_data"]["metadata"]["hidden_inputs"]
    assert inputs["derived_from"]["student"] == "1234+4321" and inputs["draws"]
    assert f"hidden inputs: seed {inputs['seed']}" in done.stdout  # the TA-only log
    with pytest.raises(ValueError, match="GROUP=LEVEL"):
        gradescope.parse_visibility(["hidden=later"])


def test_run_autograder_without_decoding_py(tmp_path, bundle):
    root = gradescope_root(tmp_path, bundle, None)
    (root / "submission" / "notes.txt").write_text("oops")
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable)
    done = subprocess.run([str(root / "run_autograder")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    data = json.loads((root / "results" / "results.json").read_text())
    assert data["score"] == 0 and "decoding.py" in data["output"] and data["tests"] == []


def test_checked_results_rejects_inflated_scores():
    good = {"score": 5, "tests": [{"name": "t", "score": 1, "max_score": 2, "status": "failed", "output": "",
                                   "visibility": "visible", "tags": ["softmax"]}]}
    assert gradescope.checked_results(json.loads(json.dumps(good)))["score"] == 1  # the total is recomputed
    bad = json.loads(json.dumps(good))
    bad["tests"][0]["score"] = 3
    with pytest.raises(ValueError):
        gradescope.checked_results(bad)
