"""A Gradescope autograder for the assignment: build the zip, and run it inside Gradescope.

``build_bundle(out_zip, model)`` (``python -m autograder gradescope --out autograder.zip``)
writes a zip that Gradescope's "Zip file upload" accepts:

* ``setup.sh`` - run once, as root, when Gradescope builds the image: Python >= 3.11 in a
  venv at /autograder/venv, torch 2.13.0 (CPU build, first), this project with the pinned
  versions of ``constraints/transformers4.txt``, and the model (the real one downloaded
  into the Hugging Face cache; the offline ones are built).
* ``run_autograder`` - run for every submission: grades
  ``/autograder/submission/decoding.py`` with our `Grader` and writes
  ``/autograder/results/results.json`` (``report.gradescope_results``).
* the project: ``autograder/`` (engine and hidden suites), ``solutions/`` (the reference),
  ``assignments/``, ``constraints/``, ``pyproject.toml``; and ``bundle.json`` (model, limits).

Every path hangs off ``AUTOGRADER_ROOT`` (default ``/autograder``), so a test can mimic
Gradescope in a temporary folder; ``AUTOGRADER_PYTHON`` picks the interpreter (default the
venv that setup.sh made).

How student code is kept apart: run_autograder runs as root (as Gradescope starts it),
and the grader forks every submission into a worker that drops to an unprivileged uid and
hides the reference and the hidden suites where the container allows it (see
``autograder/sandbox/isolation.py``; the isolation in force is printed to the TA-only
stdout and recorded in results.json's ``extra_data``). setup.sh also makes the reference
and the suites readable by root only. The grading itself runs in a child process: if it
dies, run_autograder still writes a results.json that says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from . import models
from .assignment import COURSE_MODEL_PATH, DESCRIPTOR, REPO_ROOT, Assignment, load as load_assignment
from .sandbox import scratch
from .submission_file import SubmissionFileError, read_submission_bytes

ROOT_ENV_VAR = "AUTOGRADER_ROOT"
PYTHON_ENV_VAR = "AUTOGRADER_PYTHON"
DEFAULT_ROOT = Path("/autograder")
TORCH_VERSION = "2.13.0"
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
CONSTRAINTS = "constraints/transformers4.txt"
OFFLINE_MODELS = (models.TINY_MODEL, models.SHAPED_MODEL)
# What every bundle holds, relative to the repository (folders are copied without caches);
# then the graded assignment's own files (`_assignment_files`).
BUNDLED = ("pyproject.toml", "README.md", "autograder", "constraints", COURSE_MODEL_PATH.relative_to(REPO_ROOT).as_posix())
# Where an assignment kept outside the checkout goes in the bundle (its suite, reference
# and student folder, with an assignment.toml that points at them there).
EXTERNAL = "external-assignment"
SKIPPED_PARTS = ("__pycache__", ".pytest_cache", ".ipynb_checkpoints", ".DS_Store")
# Extra seconds beyond the submission's own time budget: model loading and bookkeeping
# (the real-size model maps its float32 weights in seconds; its first forward takes 5-7 s).
# With the default budget (420 s) the whole run fits Gradescope's default 10 minutes.
STARTUP_SECONDS = 120

SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image; the zip is
# unpacked in $ROOT/source. Choose Gradescope's Ubuntu 24.04 base image (Python 3.12);
# on older images this tries python3.11 from apt.
set -euo pipefail
ROOT=${AUTOGRADER_ROOT:-/autograder}
SOURCE="$ROOT/source"
VENV="$ROOT/venv"
MODEL=__MODEL__
export HF_HOME="$ROOT/hf-home" AUTOGRADER_CACHE="$ROOT/model-cache"

if command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q python3 python3-venv python3-pip ca-certificates
fi
PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  apt-get install -y -q python3.11 python3.11-venv && PYTHON=python3.11 || {
    echo "Python >= 3.11 is needed: pick the Ubuntu 24.04 base image in Gradescope's autograder settings" >&2; exit 1; }
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip
# torch first, pinned and from the CPU index: an unpinned torch is a multi-GB CUDA build.
"${pip[@]}" install "torch==__TORCH__" --index-url __TORCH_INDEX__
"${pip[@]}" install -c "$SOURCE/__CONSTRAINTS__" -e "$SOURCE"

# The model: a hub model is downloaded into $HF_HOME, an offline stand-in built into $AUTOGRADER_CACHE.
PYTHONPATH="$SOURCE" "$VENV/bin/python" -c "import sys; from autograder import models; print('model ready:', models.model_path(sys.argv[1]))" "$MODEL"
mkdir -p "$HF_HOME" "$AUTOGRADER_CACHE"
chmod -R a+rX "$HF_HOME" "$AUTOGRADER_CACHE"

# The reference and the hidden suites: root only (student code runs under another uid).
chmod -R go-rwx "$SOURCE/solutions" "$SOURCE/autograder/suites"
[ ! -d "$SOURCE/__EXTERNAL__" ] || chmod -R go-rwx "$SOURCE/__EXTERNAL__"
# The reference's answers to every variant of the hidden tests, computed once into the
# image (owner-only, hidden from student code): each submission's grading then reuses them.
(cd "$SOURCE" && "$VENV/bin/python" -m autograder prepare --model "$MODEL" --assignment __ASSIGNMENT__) \
  || echo "warning: preparing the reference answers failed; each submission will compute what it needs" >&2
echo "autograder ready (model $MODEL)"
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this, as root, for every submission: it grades
# the file __SUBMISSION__ in $ROOT/submission and writes $ROOT/results/results.json.
set -uo pipefail
ROOT=${AUTOGRADER_ROOT:-/autograder}
PYTHON=${AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}
export PYTHONPATH="$ROOT/source${PYTHONPATH:+:$PYTHONPATH}"
export HF_HOME=${HF_HOME:-$ROOT/hf-home} AUTOGRADER_CACHE=${AUTOGRADER_CACHE:-$ROOT/model-cache}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
cd "$ROOT/source"
exec "$PYTHON" -m autograder.gradescope run --root "$ROOT"
"""


# -- building the zip ---------------------------------------------------------------------


def _tree(path: Path) -> list[Path]:
    """The files under `path` a bundle copies: no caches, no links except to a file
    another assignment folder of the checkout holds (course_model.py, shared)."""
    def wanted(p: Path) -> bool:
        if any(part in SKIPPED_PARTS for part in p.relative_to(path).parts) or p.suffix == ".pyc":
            return False
        if p.is_symlink():
            target = p.resolve()
            return target.is_file() and (REPO_ROOT / "assignments").resolve() in target.parents
        return p.is_file()
    return [p for p in sorted(path.rglob("*")) if wanted(p)]


def _assignment_files(assignment: Assignment) -> tuple[list[tuple[Path, str]], str]:
    """(file, name in the bundle) pairs of the assignment's own files, and how the bundle's
    grader names it: the course's own by name (its suite is under autograder/), one kept
    elsewhere by its folder in the bundle, with a rewritten assignment.toml."""
    def inside(path: Path) -> bool:
        return REPO_ROOT.resolve() in path.resolve().parents
    if all(inside(p) for p in (assignment.suite_dir, assignment.reference_path, assignment.student_dir)) \
            and load_assignment(assignment.name).suite_dir == assignment.suite_dir:
        reference_dir = assignment.reference_path.parent
        pairs = [(p, p.relative_to(REPO_ROOT).as_posix()) for folder in (reference_dir, assignment.student_dir)
                 for p in _tree(folder)]
        return pairs, assignment.name
    pairs = [(p, f"{EXTERNAL}/suite/{p.relative_to(assignment.suite_dir).as_posix()}") for p in _tree(assignment.suite_dir)
             if p.name != DESCRIPTOR or p.parent != assignment.suite_dir]
    pairs += [(assignment.reference_path, f"{EXTERNAL}/reference/{assignment.submission_file}")]
    pairs += [(p, f"{EXTERNAL}/student/{p.relative_to(assignment.student_dir).as_posix()}") for p in _tree(assignment.student_dir)]
    return pairs, f"{EXTERNAL}/suite"


def _external_descriptor(assignment: Assignment) -> str:
    """The assignment.toml of an assignment from outside the checkout, as the bundle lays it out."""
    lines = [f"name = {json.dumps(assignment.name)}", f"title = {json.dumps(assignment.title)}",
             f"submission = {json.dumps(assignment.submission_file)}", 'student_folder = "../student"',
             f"reference = {json.dumps('../reference/' + assignment.submission_file)}",
             f"helpers = {json.dumps(list(assignment.helpers))}", "", "[points]"]
    lines += [f"{function} = {points!r}" for function, points in assignment.points.items()]
    return "\n".join(lines) + "\n"


def _files(repo: Path) -> list[Path]:
    found = []
    for name in BUNDLED:
        path = repo / name
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += _tree(path)
        else:
            raise FileNotFoundError(f"the bundle needs {path}, which is missing")
    return found


def _script(template: str, model: str, assignment: Assignment, named: str) -> str:
    return (template.replace("__MODEL__", shlex.quote(model)).replace("__ASSIGNMENT__", shlex.quote(named))
            .replace("__SUBMISSION__", assignment.submission_file).replace("__EXTERNAL__", EXTERNAL)
            .replace("__TORCH__", TORCH_VERSION).replace("__TORCH_INDEX__", TORCH_INDEX).replace("__CONSTRAINTS__", CONSTRAINTS))


def parse_visibility(settings: list[str] | None) -> dict:
    """``["hidden=after_published", ...]`` -> {group: level}, checked against Gradescope's
    levels and our groups (`grading.GROUPS`)."""
    from .grading import GROUPS
    from .report import VISIBILITY_LEVELS

    chosen = {}
    for setting in settings or []:
        group, _, level = setting.partition("=")
        group, level = group.strip(), level.strip()
        if group not in GROUPS or level not in VISIBILITY_LEVELS:
            raise ValueError(f"--visibility {setting!r}: write GROUP=LEVEL with GROUP one of {', '.join(GROUPS)} and LEVEL "
                             f"one of {', '.join(VISIBILITY_LEVELS)}")
        chosen[group] = level
    return chosen


def build_bundle(out_zip: Path, model: str, limits=None, visibility: dict | None = None,
                 assignment: "str | Path | Assignment | None" = None) -> Path:
    """Write Gradescope's autograder zip for grading `assignment` (default
    `assignment.DEFAULT`) with `model` (a hub id or an offline name); `visibility`:
    group -> Gradescope level, over `report.DEFAULT_VISIBILITY`."""
    from .report import DEFAULT_VISIBILITY
    from .sandbox.limits import Limits

    if Path(model).is_dir():
        raise ValueError(f"{model} is a local folder; the bundle needs a hub id (downloaded by setup.sh) "
                         f"or one of {', '.join(OFFLINE_MODELS)}")
    limits = limits or Limits()
    assignment = load_assignment(assignment)
    own, named = _assignment_files(assignment)
    repo = REPO_ROOT
    info = {
        "assignment": named,
        "assignment_name": assignment.name,
        "submission_file": assignment.submission_file,
        "model": model,
        "limits": dataclasses.asdict(limits),
        "visibility": DEFAULT_VISIBILITY | (visibility or {}),
        "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": _git_commit(repo),
    }
    out_zip = Path(out_zip)
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    temporary = out_zip.with_suffix(out_zip.suffix + ".tmp")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, text in (("setup.sh", _script(SETUP_SH, model, assignment, named)),
                           ("run_autograder", _script(RUN_AUTOGRADER, model, assignment, named))):
            entry = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
            entry.external_attr = (0o100755 << 16)  # executable, as Gradescope expects
            entry.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(entry, text)
        bundle.writestr("bundle.json", json.dumps(info, indent=2) + "\n")
        written = set()
        for path, name in [(p, p.relative_to(repo).as_posix()) for p in _files(repo)] + own:
            if name not in written:  # the course's model loader is also in the assignment's folder
                bundle.write(path, name)
                written.add(name)
        if named.startswith(EXTERNAL):
            bundle.writestr(f"{EXTERNAL}/suite/{DESCRIPTOR}", _external_descriptor(assignment))
    os.replace(temporary, out_zip)
    return out_zip


def _git_commit(repo: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# -- inside Gradescope ----------------------------------------------------------------------


def student_id(root: Path) -> str:
    """Whose submission this is, from Gradescope's submission_metadata.json: the ids of
    its users (a group's, sorted and joined by '+'). It decides the hidden inputs with the
    file (`hidden_inputs`), so a resubmission of the same file draws the same ones.
    "submission" when the metadata is missing or unreadable."""
    try:
        users = json.loads((root / "submission_metadata.json").read_text(encoding="utf-8"))["users"]
        ids = sorted(str(user.get("id") or user.get("email") or "").strip() for user in users if isinstance(user, dict))
        ids = [i for i in ids if i]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        ids = []
    return "+".join(ids)[:200] or "submission"


def find_submission(folder: Path, name: str) -> Path | None:
    """The submission's file `name` (e.g. decoding.py) by the rule every entry point
    follows (`discovery.find_submission_file`: exactly one, at any depth, symbolic links
    never followed, hidden folders and ``__MACOSX`` not searched), or None."""
    from .discovery import find_submission_file

    return find_submission_file(folder, upload=True, name=name).path


def error_results(message: str, execution_time: float = 0.0) -> dict:
    """results.json when no grading happened: the student sees why; no test, no points."""
    return {"score": 0.0, "execution_time": int(round(execution_time)), "output": message,
            "visibility": "visible", "stdout_visibility": "hidden", "tests": []}


def checked_results(data: dict) -> dict:
    """The grading child's results, checked against the schema; the total is recomputed."""
    tests = data["tests"]
    if not isinstance(tests, list) or not tests:
        raise ValueError("no tests in the results")
    for test in tests:
        for key in ("name", "score", "max_score", "status", "output", "visibility", "tags"):
            if key not in test:
                raise ValueError(f"test without {key}: {test.get('name')}")
        if not 0 <= float(test["score"]) <= float(test["max_score"]) + 1e-9:
            raise ValueError(f"test score outside [0, max_score]: {test['name']}")
    data["score"] = round(sum(float(t["score"]) for t in tests), 4)
    data["execution_time"] = int(data.get("execution_time", 0))
    return data


def run(root: Path) -> int:
    """Grade root/submission and write root/results/results.json (always, whatever happens)."""
    from . import report

    started = time.monotonic()
    try:
        return _run(root, started)
    except Exception:  # noqa: BLE001 - Gradescope must get a results.json in every case
        import traceback

        traceback.print_exc(file=sys.stdout)
        report.write_json(root / "results" / "results.json", error_results(
            "The autograder could not grade this submission (an error in the grader, not necessarily in your "
            "code). Your course staff can see the details; please tell them.", time.monotonic() - started))
        return 0


def _run(root: Path, started: float) -> int:
    from . import report
    from .sandbox.limits import Limits

    results_path = root / "results" / "results.json"
    info = json.loads((root / "source" / "bundle.json").read_text())
    from .discovery import find_submission_file

    named = str(info.get("assignment") or "")
    file_name = str(info.get("submission_file") or load_assignment(_bundled(root, named)).submission_file)
    found = find_submission_file(root / "submission", upload=True, name=file_name)
    submission = found.path
    if submission is None:
        # Not a graded 0: nothing was graded, and the message says what was found and what to rename.
        report.write_json(results_path, error_results(f"Not graded: {found.problem}"))
        print(f"not submitted: {found.problem}")
        return 0
    if found.nested:
        print(f"grading {found.relative}")
    try:
        # Read without following a symlink, blocking on a FIFO or reading a huge file (as root).
        source = read_submission_bytes(submission)
    except SubmissionFileError as error:
        report.write_json(results_path, error_results(f"{error}"))
        print(f"{submission}: {error}")
        return 0
    work = scratch.make("run")
    try:
        folder = work / "submission"
        folder.mkdir()
        (folder / file_name).write_bytes(source)
        out = work / "out" / "results.json"
        out.parent.mkdir()
        limits = info.get("limits", {})
        timeout = float(limits.get("submission_seconds", Limits().submission_seconds)) + STARTUP_SECONDS
        command = [sys.executable, "-m", "autograder.gradescope", "grade-one", str(folder), "--out", str(out),
                   "--model", info["model"], "--limits", json.dumps(limits), "--student", student_id(root),
                   "--assignment", str(_bundled(root, named)),
                   "--visibility", json.dumps(info.get("visibility", {})),
                   "--hide", str(root / "results"), "--hide", str(work / "out")]
        try:
            child = subprocess.run(command, cwd=work, timeout=timeout, stdin=subprocess.DEVNULL)
            code = child.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
        try:
            results = checked_results(json.loads(out.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as error:
            print(f"grading failed (exit {code}): {type(error).__name__}: {error}")
            results = error_results("The autograder could not grade this submission (an error in the grader, not "
                                    "necessarily in your code). Your course staff can see the details; please tell them.",
                                    time.monotonic() - started)
        report.write_json(results_path, results)
        print(f"score {results['score']:g}; results: {results_path}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bundled(root: Path, named: str) -> str:
    """The bundle's assignment as `assignment.load` takes it: a name, or its folder in the bundle."""
    return str(root / "source" / named) if "/" in named else (named or "")


def grade_one(folder: Path, out: Path, model: str, limits: dict, hide: list[Path], *, student: str = "submission",
              visibility: dict | None = None, assignment: str | None = None) -> int:
    """The grading child: grade `folder` as `student`'s, write results.json to `out` (tests
    shown at `visibility`); TA notes on stdout."""
    from . import report
    from .grading import Grader
    from .sandbox.limits import Limits

    known = {f.name for f in dataclasses.fields(Limits)}
    with Grader(model, Limits(**{k: v for k, v in limits.items() if k in known}), assignment=assignment or None) as grader:
        if hasattr(grader, "hidden_paths"):
            grader.hidden_paths += [p.resolve() for p in hide]
        result = grader.grade(folder, student=student)
    results = report.gradescope_results(result, visibility)
    report.write_json(out, results)
    # stdout is shown to instructors only (stdout_visibility: hidden)
    print(f"graded with {result.metadata.get('model', {}).get('name')}: {result.score:g} / {result.max_score:g}")
    print(f"isolation: {results.get('extra_data', {}).get('isolation')}")
    inputs = result.metadata.get("hidden_inputs", {})
    print(f"hidden inputs: seed {inputs.get('seed')} (student {student!r}); draws {json.dumps(inputs.get('draws', {}))}")
    for error in result.internal_errors:
        print(f"grader error: {error}")
    return 0


# -- command line -------------------------------------------------------------------------------


def _build_command(args) -> int:
    from .sandbox.limits import Limits

    defaults = Limits()
    limits = Limits(test_seconds=args.test_timeout or defaults.test_seconds,
                    submission_seconds=args.submission_timeout or defaults.submission_seconds,
                    memory_bytes=int(args.memory_limit_gb * 2**30) if args.memory_limit_gb else defaults.memory_bytes)
    model = models.resolve_model_name(args.model)
    try:
        assignment = load_assignment(args.assignment)
        path = build_bundle(args.out, model, limits, parse_visibility(args.visibility), assignment)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from .report import DEFAULT_VISIBILITY

    shown = DEFAULT_VISIBILITY | parse_visibility(args.visibility)
    print(f"{path}: Gradescope autograder for {assignment.name}, model {model} "
          f"({path.stat().st_size / 1e6:.1f} MB); tests shown: "
          + ", ".join(f"{group} {level}" for group, level in shown.items())
          + ". Upload it under Configure Autograder -> Zip file upload.")
    return 0


def _run_command(args) -> int:
    return run(Path(args.root or os.environ.get(ROOT_ENV_VAR) or DEFAULT_ROOT))


def _grade_one_command(args) -> int:
    return grade_one(args.submission, args.out, args.model, json.loads(args.limits), args.hide or [],
                     student=args.student, visibility=json.loads(args.visibility), assignment=args.assignment)


def _add_build(commands, name: str):
    parser = commands.add_parser(name, help="build the Gradescope autograder zip (setup.sh, run_autograder, the project)")
    parser.add_argument("--out", type=Path, default=Path("autograder.zip"), help="where the zip goes (default %(default)s)")
    parser.add_argument("--model", help=f"model Gradescope grades with: {models.DEFAULT_MODEL} (default) or {models.TINY_MODEL} "
                                        f"(offline, for trying the workflow); default ${models.MODEL_ENV_VAR}")
    parser.add_argument("--test-timeout", type=float, help="the most seconds one call into student code may take (a call gets 20x the reference's time for the test, at least 10 s)")
    parser.add_argument("--submission-timeout", type=float, help="seconds for all calls of one submission")
    parser.add_argument("--memory-limit-gb", type=float, help="memory beyond the shared model, GiB")
    parser.add_argument("--assignment", help="what to grade: an assignment's name (default: the course's first, "
                                             "basic_prompting) or a folder with an assignment.toml")
    parser.add_argument("--visibility", action="append", metavar="GROUP=LEVEL",
                        help="when students see a group of tests: GROUP public (the tests that mirror the public "
                             "ones) or hidden (the rest, with inputs drawn per submission); LEVEL visible, hidden, "
                             "after_due_date or after_published (default: public=visible, hidden=after_due_date)")
    parser.set_defaults(handler=_build_command)
    return parser


def add_cli(commands) -> None:
    """Register `gradescope` (build the zip) on `python -m autograder`'s subparsers."""
    _add_build(commands, "gradescope")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.gradescope", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _add_build(commands, "build")
    run_parser = commands.add_parser("run", help="inside Gradescope (run_autograder calls it): grade the submission")
    run_parser.add_argument("--root", type=Path, help=f"Gradescope's folder (default ${ROOT_ENV_VAR} or {DEFAULT_ROOT})")
    run_parser.set_defaults(handler=_run_command)
    one = commands.add_parser("grade-one", help="internal: the grading child process of `run`")
    one.add_argument("submission", type=Path)
    one.add_argument("--out", type=Path, required=True)
    one.add_argument("--model", required=True)
    one.add_argument("--limits", default="{}")
    one.add_argument("--hide", type=Path, action="append", help="a folder student code must not see")
    one.add_argument("--student", default="submission", help="whose submission (decides the hidden inputs)")
    one.add_argument("--visibility", default="{}", help="group -> Gradescope visibility, as JSON")
    one.add_argument("--assignment", help="the assignment (a name, or its folder in the bundle)")
    one.set_defaults(handler=_grade_one_command)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
