"""The similarity report (`python -m autograder similarity`) on examples/class plus two near-copies.

examples/class: alice, bob and carol are one solution with a one-line bug each (tests/submissions
fixtures), dave is the untouched skeleton, erin a five-line attempt. We add frank (alice's file,
every local variable renamed and every comment rewritten) and gina (alice's file, its functions
in reverse order).
"""

from __future__ import annotations

import argparse
import ast
import io
import os
import tokenize
import shutil
import sys
from pathlib import Path

import pytest

from autograder import similarity

REPO = Path(__file__).resolve().parent.parent
CLASS = REPO / "examples" / "class"
COPIES = {frozenset(p) for p in (("alice", "frank"), ("alice", "gina"), ("frank", "gina"))}
EVIL = "<img src=x onerror=alert(1)>"  # a legal folder name on Linux

RENAMES = {"exponents": "exps", "powers": "pw", "sorted_probs": "ranked", "order": "perm", "cumulative": "running",
           "keep_count": "n_keep", "filtered": "result", "kept": "chosen", "input_ids": "ids", "new_ids": "generated",
           "next_id": "tok", "distribution": "dist", "cut": "end_at", "position": "where"}


def renamed_copy(code: str) -> str:
    """Every local variable in RENAMES renamed and every comment rewritten. Only names are
    touched: not attributes (``.logits``), keyword arguments (``input_ids=``), strings, nor
    parameters and function names (the assignment fixes them)."""
    edits, depth, tokens = [], 0, list(tokenize.generate_tokens(io.StringIO(code).readline))
    for i, tok in enumerate(tokens):
        if tok.type == tokenize.OP:
            depth += tok.string in "([{"
            depth -= tok.string in ")]}"
        before = tokens[i - 1].string if i else ""
        after = tokens[i + 1].string if i + 1 < len(tokens) else ""
        if tok.type == tokenize.NAME and tok.string in RENAMES and before != "." and not (depth and after == "="):
            edits.append((tok.start, tok.end, RENAMES[tok.string]))
        elif tok.type == tokenize.COMMENT:
            edits.append((tok.start, tok.end, "# worked this out at 2am"))
    lines = code.splitlines(keepends=True)
    for (row, start), (_, end), text in reversed(edits):  # right to left: earlier columns stay valid
        lines[row - 1] = lines[row - 1][:start] + text + lines[row - 1][end:]
    return "".join(lines)


def reordered_copy(code: str) -> str:
    """The same functions in reverse order (the module header first)."""
    tree = ast.parse(code)
    lines = code.splitlines(keepends=True)
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    header = "".join(lines[:functions[0].lineno - 1])
    bodies = ["".join(lines[f.lineno - 1:f.end_lineno]) for f in functions]
    return header + "\n\n".join(reversed(bodies))


def make_class(root: Path) -> Path:
    """examples/class copied into `root` (the real files, not the symlinks) plus frank and gina."""
    for entry in sorted(CLASS.iterdir()):
        (root / entry.name).mkdir()
        shutil.copyfile(entry / "decoding.py", root / entry.name / "decoding.py")  # follows the folder symlink
    alice = (root / "alice" / "decoding.py").read_text()
    for name, code in (("frank", renamed_copy(alice)), ("gina", reordered_copy(alice))):
        assert code != alice
        compile(code, name, "exec")  # still a valid submission
        (root / name).mkdir()
        (root / name / "decoding.py").write_text(code)
    return root


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path, monkeypatch):
    """Every test runs in its own folder: a report (or worse) written to the current folder lands there."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def class_dir(tmp_path_factory) -> Path:
    return make_class(tmp_path_factory.mktemp("class"))


@pytest.fixture(scope="module")
def result(class_dir):
    return similarity.compare_class(class_dir)


def pair_of(result, a: str, b: str):
    return next(p for p in result.pairs if {p.a, p.b} == {a, b})


def test_the_copies_are_copies_in_disguise(class_dir):
    """A guard for the tests below: frank and gina are not alice's file under another name."""
    alice = (class_dir / "alice" / "decoding.py").read_text()
    frank = (class_dir / "frank" / "decoding.py").read_text()
    gina = (class_dir / "gina" / "decoding.py").read_text()
    assert "exponents" not in frank and "running total" not in frank and "def softmax" in frank
    assert "model(input_ids=ids).logits" in frank and '["input_ids"]' in frank  # keywords and strings kept
    assert gina.index("def generate_text") < gina.index("def softmax") and alice.index("def softmax") < alice.index("def generate_text")


def test_near_copies_rank_first_above_the_threshold(result):
    assert [c.student for c in result.compared] == ["alice", "bob", "carol", "dave", "erin", "frank", "gina"]
    assert not result.skipped
    sims = [p.similarity for p in result.pairs]
    assert sims == sorted(sims, reverse=True) and len(result.pairs) == 21
    # The renamed copy is alice's code once names are set aside: the top pair, both ways.
    top = result.pairs[0]
    assert {top.a, top.b} == {"alice", "frank"} and min(top.a_in_b, top.b_in_a) > 0.95
    for a, b in COPIES:
        pair = pair_of(result, a, b)
        assert min(pair.a_in_b, pair.b_in_a) >= result.threshold, (a, b, pair)
        assert pair.code_a and pair.code_b and "<mark>" in pair.code_a  # shown side by side
    # Each copy's best match is its original (or the other copy), not bob or carol.
    for copy in ("frank", "gina"):
        best = next(p for p in result.pairs if copy in (p.a, p.b))
        assert frozenset((best.a, best.b)) in COPIES, best
    # alice, bob and carol are one solution with a one-line bug each: rightly flagged too,
    # and nothing else is.
    family = {"alice", "bob", "carol", "frank", "gina"}
    assert {frozenset((p.a, p.b)) for p in result.flagged} == {frozenset((a, b)) for a in family for b in family if a < b}


def test_the_skeleton_makes_no_one_similar(class_dir, result):
    """dave handed in the skeleton: its signatures and imports are in bob's (buggy) file too,
    yet the pair ranks below every copy; without the skeleton as boilerplate it would not."""
    dave_bob = pair_of(result, "dave", "bob")
    assert dave_bob.similarity < 0.1 and dave_bob.code_a is None
    assert result.pairs.index(dave_bob) > max(result.pairs.index(pair_of(result, a, b)) for a, b in COPIES)
    assert next(c for c in result.compared if c.student == "dave").own_tokens == 0
    for other in ("alice", "bob", "carol", "frank", "gina"):
        assert pair_of(result, "erin", other).similarity < result.threshold
    # The control: the same comparison with no boilerplate finds the skeleton in bob's file.
    raw = similarity.compare_class(class_dir, boilerplate=())
    assert pair_of(raw, "dave", "bob").similarity >= result.threshold


def test_examples_class_as_it_is():
    """The shipped sample class, its symlinked folders included, and nothing written."""
    result = similarity.compare_class(CLASS)
    assert [c.student for c in result.compared] == ["alice", "bob", "carol", "dave", "erin"]
    assert not result.skipped
    assert {frozenset((p.a, p.b)) for p in result.flagged} == {frozenset(p) for p in (("alice", "bob"), ("alice", "carol"), ("bob", "carol"))}


def test_html_report_escapes_names_and_code(class_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich: no wrapping of the long name in the table
    root = tmp_path / "class"
    shutil.copytree(class_dir, root)
    alice = (root / "alice" / "decoding.py").read_text()
    (root / EVIL).mkdir()
    (root / EVIL / "decoding.py").write_text(alice + '\n# </code></pre><script>alert("code")</script>\n')
    out = tmp_path / "report" / "similarity.html"
    assert similarity.main([str(root), "--out", str(out), "--top", "0"]) == 0
    html = out.read_text(encoding="utf-8")
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert EVIL not in html and "<img" not in html and "<script" not in html.lower()
    assert "&lt;script&gt;alert(" in html  # the student's code is there, escaped
    # Ranked with both names, both directions, and the highlighted code side by side.
    assert html.index("#1: ") < html.index("#2: ")
    assert html.count('class="side"') == 15  # every flagged pair: C(6, 2), six copies of one solution
    assert "<mark>" in html and "% of alice's code is in" in html
    assert os.stat(out).st_mode & 0o077 == 0  # like grades: the TA's alone
    shown = capsys.readouterr().out
    assert EVIL in shown and "report:" in shown  # the terminal shows the name as it is (no markup there)


def test_missing_and_unreadable_files_are_skipped(class_dir, tmp_path, capsys):
    root = tmp_path / "class"
    shutil.copytree(class_dir, root)
    (root / "hank").mkdir()  # handed in nothing
    (root / "ivy").mkdir()
    (root / "ivy" / "decoding.py").symlink_to(root / "alice" / "decoding.py")  # refused, as by the grader
    (root / "jack").mkdir()
    (root / "jack" / "decoding.py").write_bytes(b"def softmax(x):\n    return '\xff\xfe'\n")  # not UTF-8
    out = tmp_path / "similarity.html"
    assert similarity.main([str(root), "--out", str(out)]) == 0
    result = similarity.compare_class(root)
    skipped = {s.student: s.reason for s in result.skipped}
    assert set(skipped) == {"hank", "ivy", "jack"}
    assert "no decoding.py" in skipped["hank"] and "symbolic link" in skipped["ivy"] and "UTF-8" in skipped["jack"]
    assert "ivy" not in {c.student for c in result.compared}
    html = out.read_text(encoding="utf-8")
    assert "<h2>Skipped</h2>" in html and all(f"<td>{name}</td>" in html for name in skipped)
    shown = capsys.readouterr().out
    assert all(f"skipped {name}" in shown for name in skipped)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def test_cli_writes_the_report_only_and_no_grade(class_dir, tmp_path, monkeypatch):
    """Through add_cli, as `python -m autograder similarity` runs it: one file appears (the report
    in the current folder), the class folder is unchanged, and no grades.csv/results.json exists."""
    root = tmp_path / "class"
    shutil.copytree(class_dir, root)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    similarity.add_cli(commands)
    args = parser.parse_args(["similarity", str(root), "--threshold", "0.9", "--top", "3"])
    assert args.handler(args) == 0
    after = snapshot(tmp_path)
    assert set(after) - set(before) == {"work/similarity.html"}
    assert {k: v for k, v in after.items() if k in before} == before
    assert not [p for p in tmp_path.rglob("*") if p.name in ("grades.csv", "results.json", "feedback.md")]
    html = (work / "similarity.html").read_text(encoding="utf-8")
    assert html.count("<tr class=\"flagged\">") == 3 and "not listed" in html  # --top 3 of the 10 pairs >= 0.9


def test_cli_arguments(tmp_path, capsys):
    assert similarity.main([str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    for bad in (["--threshold", "1.5"], ["--top", "-1"]):
        with pytest.raises(SystemExit):
            similarity.main([str(tmp_path), *bad])


def test_without_copydetect_it_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "copydetect", None)  # `import copydetect` raises ImportError
    assert similarity.main([str(tmp_path)]) == 2
    assert "copydetect" in capsys.readouterr().err and not (tmp_path / "similarity.html").exists()
