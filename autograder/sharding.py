"""A class larger than one machine: grade it in K shards, then merge them into one set of grades.

Which shard grades a student is decided by the student's id alone (`shard_of`: a hash,
modulo K), so every machine computes the same split without talking to the others, and
adding students never moves one already placed. Each shard is an ordinary ``grade-all``
(or ``nbgrader-autograde``) run with ``--shard I/K`` and its own ``--out``: it loads the
model once, grades only its own students (a rerun redoes only those that need it, as
any ``grade-all`` rerun), and writes `MANIFEST` beside them: the whole class it saw, its
own students, the model and grader it used, whether it finished.

``python -m autograder merge SHARD_OUT... --out OUT`` (`merge`) checks the shards belong
together and writes what one unsharded run writes (per-student folders, grades.csv, the
class table). It refuses, naming the shards and students concerned, when a shard is
missing, appears twice or did not finish; when a student was graded twice, or by no
shard; and when students were graded with another model, model revision or grader (git
commit, or a digest of the grading code: `version.grader_version`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "shard.json"
MANIFEST_FORMAT = 1
MERGED = "merged.json"  # in a merge's output: which shards it came from
SHARD_STORE = ".reference-store"  # in a shard's output: reference answers it computed itself


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based, as Slurm's SLURM_ARRAY_TASK_ID and Kubernetes' JOB_COMPLETION_INDEX
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, student: str) -> bool:
        return shard_of(student, self.count) == self.index


def shard_of(student: str, count: int) -> int:
    """The shard (0..count-1) that grades `student`: by a hash of the id, stable across
    machines, Python versions and class changes."""
    return int.from_bytes(hashlib.sha256(student.encode("utf-8", "surrogateescape")).digest()[:8], "big") % count


def parse_shard(text: str) -> Shard:
    """``I/K`` (0 <= I < K), for argparse: ``--shard 0/3`` ... ``--shard 2/3``."""
    index, slash, count = str(text).partition("/")
    try:
        shard = Shard(int(index), int(count))
    except ValueError:
        shard = None
    if not slash or shard is None or shard.count < 1 or not 0 <= shard.index < shard.count:
        raise ValueError(f"--shard wants I/K with 0 <= I < K (the shard's number, counted from 0, and how many "
                         f"shards there are), e.g. 0/3; got {text!r}")
    return shard


def shard_argument(text: str) -> Shard:
    """`parse_shard` as an argparse ``type``."""
    import argparse

    try:
        return parse_shard(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--shard ")) from None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def write_manifest(out_dir: Path, shard: Shard, *, assignment, class_students: list[str], metadata: dict,
                   store: str, complete: bool, seconds: dict, started: str) -> None:
    """`MANIFEST` in a shard's output: written when it starts (``complete`` false) and when
    it has graded every one of its students (true). A shard stopped in between (Ctrl-C,
    SIGKILL, a node lost) leaves it false, and `merge` refuses it."""
    from . import report

    model = metadata.get("model") or {}
    report.write_json(Path(out_dir) / MANIFEST, {
        "format": MANIFEST_FORMAT, "shard": shard.index, "shards": shard.count, "assignment": assignment.name,
        "assignment_folder": str(assignment.suite_dir),
        "class": list(class_students), "students": [s for s in class_students if shard.holds(s)],
        "complete": complete, "model": {"name": model.get("name"), "revision": model.get("revision")},
        "grader": metadata.get("grader"), "reference_store": store, "seconds": seconds,
        "started": started, "finished": _now() if complete else None,
    })


class MergeRefused(Exception):
    """The shards do not make one class's grades; the message says why and who is concerned."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("the shards cannot be merged:\n  " + "\n  ".join(problems))


def _names(students, limit: int = 20) -> str:
    students = list(students)
    shown = ", ".join(students[:limit])
    return shown + (f" and {len(students) - limit} more" if len(students) > limit else "")


@dataclass
class _Part:
    folder: Path
    manifest: dict

    @property
    def shard(self) -> Shard:
        return Shard(int(self.manifest["shard"]), int(self.manifest["shards"]))

    def assignment(self):
        """The assignment it graded: a course assignment by name, else the folder it was read from."""
        from .assignment import available, load as load_assignment

        name = self.manifest["assignment"]
        return load_assignment(name if name in available() else self.manifest.get("assignment_folder") or name)


def _read_parts(folders: list[Path], problems: list[str]) -> list[_Part]:
    parts = []
    for folder in folders:
        try:
            manifest = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
            if manifest.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"format {manifest.get('format')!r}, not {MANIFEST_FORMAT}")
            Shard(int(manifest["shard"]), int(manifest["shards"]))
            parts.append(_Part(Path(folder), manifest))
        except FileNotFoundError:
            problems.append(f"{folder} is not a shard's output (no {MANIFEST}: was it graded with --shard I/K?)")
        except (OSError, ValueError, KeyError, TypeError) as error:
            problems.append(f"{folder}/{MANIFEST} cannot be read ({type(error).__name__}: {error})")
    return parts


def _read_results(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _graded_with(results: dict) -> dict | None:
    """(model, revision, grader) a student's results were graded with; None when nothing was graded."""
    extra = results.get("extra_data") or {}
    if extra.get("not_submitted"):
        return None
    metadata = extra.get("metadata") or {}
    model, grader = metadata.get("model") or {}, metadata.get("grader") or {}
    return {"model": model.get("name"), "model revision": model.get("revision"),
            "grader commit": grader.get("commit"), "grader code digest": grader.get("digest")}


def check(folders: list[Path]) -> tuple[list[_Part], list[str], dict[str, tuple[Path, dict]]]:
    """The shards' manifests, the class in order, and each student's (shard folder, results);
    raises `MergeRefused` with every problem found."""
    problems: list[str] = []
    parts = _read_parts(folders, problems)  # an unreadable one is a problem; the others still say who is missing
    if not parts:
        raise MergeRefused(problems or ["no shard outputs given"])
    disagreements = [f"the shards disagree on the {key}: " + "; ".join(f"{p.folder}: {p.manifest.get(key)}" for p in parts)
                     for key in ("assignment", "shards") if len(Counter(str(p.manifest.get(key)) for p in parts)) > 1]
    if disagreements:
        raise MergeRefused(problems + disagreements)
    count = parts[0].shard.count
    by_index: dict[int, list[_Part]] = {}
    for part in parts:
        by_index.setdefault(part.shard.index, []).append(part)
    # the class: every student any shard saw, in the order the first one listed them
    everyone = list(dict.fromkeys(s for p in parts for s in p.manifest.get("class", [])))
    for index, same in sorted(by_index.items()):
        if len(same) > 1:
            problems.append(f"shard {index}/{count} appears {len(same)} times ({', '.join(str(p.folder) for p in same)}): "
                            f"give each shard's output once")
    for index in range(count):
        if index not in by_index:
            own = [s for s in everyone if shard_of(s, count) == index]
            problems.append(f"shard {index}/{count} is missing (not among the outputs given): its students, not graded: "
                            f"{_names(own) or 'none known'}")
    graded: dict[str, tuple[Path, dict]] = {}
    for part in parts:
        own = [s for s in everyone if shard_of(s, count) == part.shard.index]
        missing = []
        for student in own:
            results = _read_results(part.folder / student)
            if results is None or student not in part.manifest.get("students", []):
                missing.append(student)
            elif student in graded and graded[student][0] != part.folder:
                problems.append(f"{student} was graded twice: in {graded[student][0]} and in {part.folder}")
            else:
                graded[student] = (part.folder, results)
        stray = sorted(p.name for p in part.folder.iterdir() if p.is_dir() and (p / "results.json").is_file()
                       and shard_of(p.name, count) != part.shard.index and not p.name.startswith("."))
        if stray:
            problems.append(f"{part.folder} (shard {part.shard}) holds results of students of other shards: {_names(stray)}")
        if not part.manifest.get("complete"):
            problems.append(f"shard {part.shard} ({part.folder}) did not finish (stopped, failed or still running): rerun "
                            f"it; not graded there: {_names(missing) or 'none'}")
        elif missing:
            problems.append(f"shard {part.shard} ({part.folder}) did not grade {_names(missing)} (the submissions changed "
                            f"after it ran?): rerun shard {part.shard}")
    # every graded student with one model, revision and grader
    seen = {s: _graded_with(r) for s, (_, r) in graded.items()}
    for field in ("model", "model revision", "grader commit", "grader code digest"):
        values = Counter(w[field] for w in seen.values() if w is not None)
        if len(values) > 1:
            usual = values.most_common(1)[0][0]
            others = {}
            for student, how in seen.items():
                if how is not None and how[field] != usual:
                    others.setdefault(how[field], []).append(student)
            problems.append(f"students were graded with another {field} than the rest ({usual}): " + "; ".join(
                f"{value}: {_names(students)}" for value, students in others.items()) + " (rerun their shards with the "
                "same checkout and model, with --regrade)")
    if problems:
        raise MergeRefused(problems)
    return parts, everyone, graded


def merge(folders: list[Path], out_dir: Path) -> list[dict]:
    """Write one class's grades from its shards' outputs (see the module's docstring) into
    `out_dir`; returns the grades.csv rows. Raises `MergeRefused` and writes nothing when
    the shards do not fit together."""
    from . import report
    from .batch import results_row

    folders = [Path(f) for f in folders]
    out_dir = Path(out_dir)
    if any(out_dir.resolve() == f.resolve() for f in folders):
        raise MergeRefused([f"--out {out_dir} is one of the shard outputs: merge into a folder of its own"])
    parts, everyone, graded = check(folders)
    assignment = parts[0].assignment()
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    out_dir.chmod(0o700)
    rows = []
    for student in everyone:
        folder, results = graded[student]
        target = out_dir / student
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(folder / student, target, symlinks=True)
        rows.append(results_row(results, assignment.points))
    report.write_grades_csv(out_dir / "grades.csv", rows, assignment.points)
    report.write_json(out_dir / MERGED, {"merged": _now(), "assignment": assignment.name, "shards": [
        {"shard": str(p.shard), "folder": str(p.folder.resolve()), "students": len(p.manifest.get("students", [])),
         "seconds": p.manifest.get("seconds"), "reference_store": p.manifest.get("reference_store")} for p in parts]})
    return rows


# -- command line ---------------------------------------------------------------------------


def _merge_command(args) -> int:
    import sys

    from rich.console import Console

    from . import report
    from .batch import exit_status, is_not_submitted
    from .assignment import GRADER_ERROR_EXIT

    console = Console()
    if args.nbgrader is not None:
        from .nbgrader_course import merge_into_gradebook

        try:
            return merge_into_gradebook(args.nbgrader, args.shards, console=console, feedback=not args.no_feedback)
        except MergeRefused as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    try:
        rows = merge(args.shards, args.out)
    except MergeRefused as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    assignment = _read_parts([Path(args.shards[0])], [])[0].assignment()
    report.print_class_table([dict(r, status="not submitted") if is_not_submitted(r) else r for r in rows],
                             assignment.points, console)
    console.print(f"{len(rows)} students from {len(args.shards)} shards; grades: {args.out / 'grades.csv'}; "
                  f"per student: {args.out}/<student>/results.json, feedback.md")
    status = exit_status(rows)
    if status == GRADER_ERROR_EXIT:
        failed = [str(r.get("student")) for r in rows if report.is_grader_error(r)]
        print(f"error: the grader itself failed for {len(failed)} student(s): {_names(failed)}; their grades are not "
              f"final: rerun their shards, then merge again", file=sys.stderr)
    return status


def add_cli(commands) -> None:
    parser = commands.add_parser(
        "merge", help="merge the outputs of `grade-all --shard I/K` (or `nbgrader-autograde --shard`) into one set of grades",
        description="Checks that the shard outputs make one class (every shard once and finished, every student graded "
                    "once, all with the same model, revision and grader) and writes what one unsharded grade-all "
                    "writes: per-student folders, grades.csv and the class table. With --nbgrader, it is the one step "
                    "that writes the course's gradebook and feedback.",
        epilog="exit status: 0 when merged; 2 when the shards do not fit together (nothing is written; the lines say "
               "which shards and students); 3 when some students hit a grader error in their shard (rerun it)")
    parser.add_argument("shards", nargs="+", type=Path, metavar="SHARD_OUT", help="each shard's --out folder")
    parser.add_argument("--out", type=Path, default=Path("grading-output"), help="where the merged grades go (default: grading-output)")
    parser.add_argument("--nbgrader", type=Path, metavar="COURSE",
                        help="the nbgrader course the shards graded (nbgrader-autograde --shard): write its gradebook, "
                             "autograded/ and feedback from them")
    parser.add_argument("--no-feedback", action="store_true", help="with --nbgrader: do not run nbgrader's feedback generation")
    parser.set_defaults(handler=_merge_command)
