"""Similarity report for TAs: which submissions look alike. It never reads or changes a grade.

``python -m autograder similarity CLASS_DIR [--out similarity.html] [--threshold 0.6] [--top N]``

Submissions are found as ``grade-all`` finds them (`autograder.batch.discover`) and read
as the grader reads them (`read_submission_bytes`: no symlinked file, FIFO or huge file; a
symlinked *folder* is fine). Each file goes to copydetect (https://github.com/blingenf/copydetect)
as text, never as a path it would open itself: copydetect tokenizes it (every variable,
function and class name becomes one letter, strings become "S", comments and blank space
are dropped), fingerprints every run of `NOISE_THRESHOLD` such characters, drops the
fingerprints of the skeleton (the boilerplate: code every student got), and compares
every pair. For a pair (A, B), "A in B" is the share of A's own code (beyond the
skeleton) that B also has; a pair's similarity is the larger of its two directions, so a
file copied whole into a longer one still ranks high.

The HTML report is our own page (jinja2 with autoescape; self-contained, no script, no
outside resource): a ranked table and, for each listed pair at or above the threshold,
both files side by side with copydetect's matched stretches highlighted. We do not use
copydetect's own report: its template prints file names unescaped (a student folder
named ``<img src=x onerror=alert(1)>`` would run script in the TA's browser), loads
its styles from the web and opens a browser. The report is written readable by its
owner only, like grades: it holds every student's code.

A similarity is evidence for a conversation, never a verdict: short functions that are
written correctly (softmax, truncate_at_stop) look alike whoever wrote them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .assignment import Assignment, load as load_assignment
from .submission_file import SubmissionFileError, read_submission_bytes

DEFAULT_THRESHOLD = 0.6
DEFAULT_TOP = 10
DEFAULT_OUT = Path("similarity.html")
# copydetect's defaults: a match must span at least 25 characters of tokenized code (about
# a line: "V=V.F(V=V,V=V)" is 14), and with the guarantee equal to it every such match is found.
NOISE_THRESHOLD = 25
GUARANTEE_THRESHOLD = 25
LANGUAGE = "python"  # decoding.py is Python whatever its name says; never guessed from a file name


@dataclass(frozen=True)
class Compared:
    """A student whose file was compared."""

    student: str
    lines: int
    own_tokens: int  # tokenized characters copydetect compares, the skeleton's left out


@dataclass(frozen=True)
class Skipped:
    """A student whose file could not be compared, and why (for the TA)."""

    student: str
    reason: str


@dataclass
class Pair:
    """Two students, as alike as copydetect finds them."""

    a: str
    b: str
    a_in_b: float  # share of a's own code (beyond the skeleton) also found in b
    b_in_a: float
    matched_tokens: int  # tokenized characters of a's code that b also has
    code_a: str | None = None  # copydetect's highlighting: HTML, every character of the file escaped
    code_b: str | None = None

    @property
    def similarity(self) -> float:
        return max(self.a_in_b, self.b_in_a)


@dataclass
class SimilarityResult:
    root: Path
    threshold: float
    boilerplate: list[Path]
    compared: list[Compared]
    skipped: list[Skipped]
    pairs: list[Pair]  # every pair, most similar first
    created: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))

    @property
    def flagged(self) -> list[Pair]:
        return [pair for pair in self.pairs if pair.similarity >= self.threshold]

    def listed(self, top: int) -> list[Pair]:
        """The `top` most similar pairs (all of them for 0)."""
        return self.pairs if top <= 0 else self.pairs[:top]


def _fingerprint(name: str, text: str, boilerplate_hashes):
    from copydetect import CodeFingerprint

    window = GUARANTEE_THRESHOLD - NOISE_THRESHOLD + 1
    return CodeFingerprint(name, NOISE_THRESHOLD, window, boilerplate=boilerplate_hashes, language=LANGUAGE,
                           fp=io.StringIO(text))


def _boilerplate_hashes(paths: Iterable[Path]) -> list:
    """Fingerprints of every k-gram of the boilerplate files (copydetect's own way: window 1)."""
    from copydetect import CodeFingerprint

    hashes = set()
    for path in paths:
        text = Path(path).read_text(encoding="utf-8")
        hashes |= CodeFingerprint(str(path), NOISE_THRESHOLD, 1, language=LANGUAGE, fp=io.StringIO(text)).hashes
    return sorted(hashes)


def _read(path: Path) -> str:
    data = read_submission_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SubmissionFileError(f"{path.name} is not UTF-8 text") from None


def _rank_key(pair: Pair):
    return (-pair.similarity, -min(pair.a_in_b, pair.b_in_a), -pair.matched_tokens, pair.a, pair.b)


def compare_class(root: Path, *, threshold: float = DEFAULT_THRESHOLD, boilerplate: Sequence[Path] | None = None,
                  highlight: int = DEFAULT_TOP, assignment: "str | Path | Assignment | None" = None) -> SimilarityResult:
    """Compare every pair of `assignment`'s submissions below `root` (default
    `assignment.DEFAULT`); reads student files and `boilerplate` (default: the
    assignment's skeleton) only.

    Pairs come most similar first. The `highlight` most similar pairs (all for 0) that are
    at or above `threshold` get copydetect's highlighted code (`Pair.code_a`, `code_b`).
    A student whose file is missing or unreadable is in `skipped`, never an error.
    """
    from copydetect import compare_files
    from copydetect.utils import highlight_overlap

    from .batch import discover  # imports the grader (and torch): only when a report is made

    assignment = load_assignment(assignment)
    root = Path(root)
    boilerplate = tuple(boilerplate) if boilerplate is not None else (assignment.skeleton_path,)
    bp_hashes = _boilerplate_hashes(boilerplate)
    compared, skipped, prints = [], [], {}
    for submission in discover(root, assignment=assignment):
        try:
            text = _read(submission.file)
        except SubmissionFileError as error:
            skipped.append(Skipped(submission.student, str(error)))
            continue
        fingerprint = _fingerprint(assignment.submission_file, text, bp_hashes)
        prints[submission.student] = fingerprint
        compared.append(Compared(submission.student, len(text.splitlines()), int(fingerprint.token_coverage)))

    names = [c.student for c in compared]
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            overlap, (a_in_b, b_in_a), _ = compare_files(prints[a], prints[b])
            pairs.append(Pair(a, b, float(a_in_b), float(b_in_a), int(overlap)))
    pairs.sort(key=_rank_key)

    for pair in pairs if highlight <= 0 else pairs[:highlight]:
        if pair.similarity < threshold or pair.matched_tokens == 0:
            continue
        _, _, (slices_a, slices_b) = compare_files(prints[pair.a], prints[pair.b])
        # escape_html: copydetect escapes every piece of the file; the tags are ours.
        pair.code_a, _ = highlight_overlap(prints[pair.a].raw_code, slices_a, '<mark>', '</mark>', escape_html=True)
        pair.code_b, _ = highlight_overlap(prints[pair.b].raw_code, slices_b, '<mark>', '</mark>', escape_html=True)
    return SimilarityResult(root, threshold, [Path(p) for p in boilerplate], compared, skipped, pairs)


# --- the HTML report ------------------------------------------------------------------------

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Similarity report: {{ root }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.flagged td { background: #fff3cd; }
.note { background: #eef4fb; border-left: 4px solid #4a7fc1; padding: .5em 1em; max-width: 60em; }
.pair { margin: 2em 0; border-top: 2px solid #888; }
.side { display: flex; gap: 1em; }
.side > div { flex: 1; min-width: 0; }
pre { background: #f7f7f7; border: 1px solid #ddd; padding: .5em; overflow-x: auto; font-size: 12px; }
mark { background: #ffb3b3; }
.muted { color: #666; }
</style>
</head>
<body>
<h1>Similarity report</h1>
<p class="note">Evidence for a conversation with the students, never a verdict; it changes no score.
Short functions written correctly look alike whoever wrote them (softmax, truncate_at_stop):
look for long, unusual stretches in common, shared mistakes, odd names or comments.
Code of the skeleton is left out of every comparison.</p>
<p>Class folder: <code>{{ root }}</code> &middot; made {{ created }} &middot; copydetect {{ version }}
(noise threshold {{ noise }}, guarantee threshold {{ guarantee }}) &middot; boilerplate:
{% for path in boilerplate %}<code>{{ path }}</code>{% if not loop.last %}, {% endif %}{% endfor %}</p>
<p>{{ compared|length }} students compared, {{ skipped|length }} skipped, {{ pair_count }} pairs;
<b>{{ flagged_count }}</b> at or above the threshold {{ "%.2f"|format(threshold) }}.
{% if listed|length < pair_count %}Listed: the {{ listed|length }} most similar (<code>--top</code>).{% endif %}
{% if hidden_flagged %}<b>{{ hidden_flagged }} pairs at or above the threshold are not listed: use
<code>--top {{ flagged_count }}</code> (or <code>--top 0</code> for all).</b>{% endif %}</p>

<h2>Pairs, most similar first</h2>
{% if listed %}
<table>
<tr><th>#</th><th>student A</th><th>student B</th><th>A's code found in B</th><th>B's code found in A</th>
<th>tokens in common</th><th></th></tr>
{% for pair in listed %}
<tr{% if pair.similarity >= threshold %} class="flagged"{% endif %}>
<td class="num">{{ loop.index }}</td><td>{{ pair.a }}</td><td>{{ pair.b }}</td>
<td class="num">{{ "%.0f"|format(pair.a_in_b * 100) }}%</td><td class="num">{{ "%.0f"|format(pair.b_in_a * 100) }}%</td>
<td class="num">{{ pair.matched_tokens }}</td>
<td>{% if pair.code_a is not none %}<a href="#pair-{{ loop.index }}">side by side</a>{% elif pair.similarity >= threshold %}at or above threshold{% endif %}</td>
</tr>
{% endfor %}
</table>
{% else %}<p>Fewer than two students could be compared.</p>{% endif %}

{% for pair in listed %}{% if pair.code_a is not none %}
<section class="pair" id="pair-{{ loop.index }}">
<h3>#{{ loop.index }}: {{ pair.a }} and {{ pair.b }}</h3>
<p>{{ "%.0f"|format(pair.a_in_b * 100) }}% of {{ pair.a }}'s code is in {{ pair.b }}'s;
{{ "%.0f"|format(pair.b_in_a * 100) }}% of {{ pair.b }}'s is in {{ pair.a }}'s;
{{ pair.matched_tokens }} tokens in common. <span class="muted">Highlighted: stretches found in both
(names, strings and comments aside).</span></p>
<div class="side">
<div><h4>{{ pair.a }}</h4><pre><code>{{ pair.code_a|safe }}</code></pre></div>
<div><h4>{{ pair.b }}</h4><pre><code>{{ pair.code_b|safe }}</code></pre></div>
</div>
</section>
{% endif %}{% endfor %}

<h2>Students compared</h2>
<table>
<tr><th>student</th><th>lines</th><th>tokens beyond the skeleton</th></tr>
{% for c in compared %}<tr><td>{{ c.student }}</td><td class="num">{{ c.lines }}</td>
<td class="num">{{ c.own_tokens }}{% if c.own_tokens == 0 %} (nothing beyond the skeleton: alike no one){% endif %}</td></tr>
{% endfor %}
</table>
{% if skipped %}
<h2>Skipped</h2>
<table>
<tr><th>student</th><th>why</th></tr>
{% for s in skipped %}<tr><td>{{ s.student }}</td><td>{{ s.reason }}</td></tr>
{% endfor %}
</table>
{% endif %}
</body>
</html>
"""


def render_html(result: SimilarityResult, top: int = DEFAULT_TOP) -> str:
    """The report as HTML. Everything is escaped by jinja2 except copydetect's highlighted
    code, which `highlight_overlap(..., escape_html=True)` escaped already."""
    import copydetect
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    listed = result.listed(top)
    flagged = result.flagged
    return env.from_string(_TEMPLATE).render(
        root=str(result.root), created=result.created, version=copydetect.__version__, noise=NOISE_THRESHOLD,
        guarantee=GUARANTEE_THRESHOLD, boilerplate=[str(p) for p in result.boilerplate], compared=result.compared,
        skipped=result.skipped, pair_count=len(result.pairs), flagged_count=len(flagged), threshold=result.threshold,
        listed=listed, hidden_flagged=max(0, len(flagged) - len(listed)))


def write_report(result: SimilarityResult, out: Path, top: int = DEFAULT_TOP) -> Path:
    """Write the HTML report to `out` (a folder: ``out/similarity.html``), owner-only, atomically."""
    from .report import write_bytes_atomic

    out = Path(out)
    if out.is_dir():
        out = out / DEFAULT_OUT.name
    write_bytes_atomic(out, render_html(result, top).encode("utf-8", "backslashreplace"))
    return out


# --- the terminal -----------------------------------------------------------------------------

def printable(name: str) -> str:
    """`name` for the terminal: control characters (ESC...) and lone surrogates as escapes."""
    return "".join(ch if ch.isprintable() else (f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
                   for ch in name)


def print_summary(result: SimilarityResult, console, top: int = DEFAULT_TOP) -> None:
    from rich.markup import escape
    from rich.table import Table

    listed = result.listed(top)
    table = Table(title=f"Most similar pairs (threshold {result.threshold:.2f})")
    for column in ("#", "student A", "student B", "A in B", "B in A", "tokens"):
        table.add_column(column, justify="right" if column in ("#", "A in B", "B in A", "tokens") else "left")
    for rank, pair in enumerate(listed, 1):
        style = "bold yellow" if pair.similarity >= result.threshold else None
        table.add_row(str(rank), escape(printable(pair.a)), escape(printable(pair.b)), f"{pair.a_in_b:.0%}",
                      f"{pair.b_in_a:.0%}", str(pair.matched_tokens), style=style)
    if listed:
        console.print(table)
    flagged = result.flagged
    console.print(f"{len(result.compared)} students compared, {len(result.pairs)} pairs, "
                  f"{len(flagged)} at or above {result.threshold:.2f}")
    if len(flagged) > len(listed):
        console.print(f"[yellow]{len(flagged) - len(listed)} pairs at or above the threshold are not listed: "
                      f"use --top {len(flagged)} (or --top 0)[/]")
    for s in result.skipped:
        console.print(f"skipped {escape(printable(s.student))}: {escape(printable(s.reason))}")


# --- the command line ---------------------------------------------------------------------------

def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (all) or more, got {text}")
    return value


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, metavar="CLASS_DIR",
                        help="nbgrader's submitted/ (or the course folder) or a folder of student folders, as for grade-all")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the HTML report (default %(default)s)")
    parser.add_argument("--threshold", type=_fraction, default=DEFAULT_THRESHOLD,
                        help="pairs this similar or more (0..1; the larger of both directions) are flagged and shown "
                             "side by side (default %(default)s)")
    parser.add_argument("--top", type=_count, default=DEFAULT_TOP,
                        help="how many of the most similar pairs to list, in the terminal and the report (0: all; "
                             "default %(default)s)")
    parser.add_argument("--boilerplate", type=Path, action="append",
                        help="code every student got, left out of the comparison (repeatable; default the assignment's "
                             "skeleton, e.g. assignments/basic_prompting/decoding.py)")
    parser.add_argument("--assignment", metavar="NAME",
                        help="whose submissions to compare: a name of the course's (default basic_prompting) or a folder "
                             "with an assignment.toml")
    parser.set_defaults(handler=_command)


def add_cli(commands) -> None:
    """Register `similarity` on `python -m autograder`'s subparsers (its handler via set_defaults)."""
    parser = commands.add_parser(
        "similarity", help="a similarity report for TAs (HTML, pairs ranked by similarity); changes no grade",
        description="Compare every pair of submissions with copydetect, the skeleton left out, and write an HTML "
                    "report ranked by similarity. Reads only the submitted files (decoding.py for basic_prompting); "
                    "never reads or writes a grade.",
        epilog="exit status: 0 when the report was written, whatever it finds; 2 when CLASS_DIR is not a folder "
               "or copydetect is not installed")
    _add_arguments(parser)


def _command(args) -> int:
    from rich.console import Console

    console = Console()
    try:
        import copydetect  # noqa: F401 - in the `course` extra
    except ImportError:
        print("error: the similarity report needs copydetect, in the `course` extra: "
              "pip install -c constraints/transformers4.txt -e '.[course]' (or scripts/setup.sh)", file=sys.stderr)
        return 2
    if not args.root.is_dir():
        print(f"error: {args.root} is not a folder", file=sys.stderr)
        return 2
    try:
        assignment = load_assignment(args.assignment)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    boilerplate = args.boilerplate if args.boilerplate is not None else [assignment.skeleton_path]
    for path in boilerplate:
        if not path.is_file():
            print(f"error: boilerplate {path} is not a file", file=sys.stderr)
            return 2
    with console.status("Comparing submissions ..."):
        result = compare_class(args.root, threshold=args.threshold, boilerplate=boilerplate, highlight=args.top,
                               assignment=assignment)
    out = write_report(result, args.out, args.top)
    print_summary(result, console, args.top)
    console.print(f"report: {escape_path(out)} (evidence for a conversation, not a verdict; no score changed)")
    return 0


def escape_path(path: Path) -> str:
    from rich.markup import escape

    return escape(printable(str(path)))


def main(argv: list[str] | None = None) -> int:
    """``python -m autograder.similarity CLASS_DIR ...`` (the same as ``python -m autograder similarity``)."""
    parser = argparse.ArgumentParser(prog="python -m autograder.similarity", description=__doc__.split("\n\n")[0])
    _add_arguments(parser)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
