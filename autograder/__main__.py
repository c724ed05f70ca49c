"""Command line: python -m autograder {demo,prepare,grade,grade-all,nbgrader-sync,nbgrader-autograde,gradescope,similarity,canvas-export} ..."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import models
from .assignment import DEFAULT as DEFAULT_ASSIGNMENT, GRADER_ERROR_EXIT, AssignmentError, available, load as load_assignment
from .sandbox.limits import Limits
from .sharding import shard_argument


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    model_help = (
        f"model to grade with: {models.DEFAULT_MODEL} (default, real weights), {models.TINY_MODEL} (offline), "
        f"{models.SHAPED_MODEL} (offline, real size, benchmarks) or a local folder; "
        f"default: ${models.MODEL_ENV_VAR} or {models.DEFAULT_MODEL}"
    )
    demo = commands.add_parser("demo", help="show the reference solution at work on a model")
    demo.add_argument("--model", help=model_help)

    grade = commands.add_parser(
        "grade", help="grade one submission (a folder holding decoding.py, or the file itself)",
        epilog=f"exit status: 0 when grading worked, whatever the score; 2 when it could not grade (no such folder "
               f"or file, no single decoding.py in the folder: 'not submitted', model missing); {GRADER_ERROR_EXIT} when "
               f"the grader itself failed on some test (see the red lines)")
    grade.add_argument("submission", type=Path,
                       help="the student's folder (its one decoding.py is graded, at any depth; hidden folders and "
                            "caches are not searched) or a .py file to grade as decoding.py")
    grade.add_argument("--model", help=model_help)
    _add_assignment_option(grade)
    grade.add_argument("--results", type=Path, help="write Gradescope's results.json here")
    grade.add_argument("--feedback", type=Path, help="write the student's Markdown feedback here")
    grade.add_argument("--student", help="whose submission it is (default: the folder's name); with the file, it "
                                         "decides the hidden tests' inputs, so give the name grade-all used to reproduce "
                                         "its report")
    grade.add_argument("--inputs-seed", type=int, metavar="N",
                       help="draw the hidden tests' inputs from seed N (a report's 'hidden inputs seed') instead of "
                            "the one derived from the student and the file")
    _add_limit_options(grade)

    grade_all = commands.add_parser(
        "grade-all", help="grade every submission below a folder",
        epilog=f"exit status: 0 when every submission was graded, whatever the scores (students without a single "
               f"decoding.py get the status 'not submitted: ...' and a blank total); 2 when grading could not start; "
               f"{GRADER_ERROR_EXIT} when the grader itself failed for some students (their grades.csv status starts "
               f"with 'grader error', OUT/<student>/grader-error.txt has the details, and a rerun grades them again)")
    grade_all.add_argument("root", type=Path, help="nbgrader's submitted/ (or the course folder) or a folder of student folders")
    grade_all.add_argument("--model", help=model_help)
    _add_assignment_option(grade_all, several=True)
    grade_all.add_argument("--out", type=Path, default=Path("grading-output"), help="where results go (default: grading-output)")
    grade_all.add_argument("--regrade", action="store_true", help="grade again even where results exist and decoding.py is unchanged")
    grade_all.add_argument("--overrides", type=Path, metavar="FILE",
                           help="a TA's manual scores: CSV with the columns student,function,points,reason; they replace "
                                "the autograder's points for that function in grades.csv and feedback.md on every run "
                                "(default: OUT/overrides.csv when it exists)")
    grade_all.add_argument("--shard", type=shard_argument, metavar="I/K",
                           help="grade only shard I of K (I counts from 0: Slurm's $SLURM_ARRAY_TASK_ID, Kubernetes' "
                                "$JOB_COMPLETION_INDEX); students are split by a hash of their id. Give each shard its "
                                "own --out, then `merge` them into one set of grades")
    _add_limit_options(grade_all)

    prepare = commands.add_parser(
        "prepare", help="compute the reference's answers for every variant of the hidden tests, ahead of grading",
        description="Grades the reference solution on every variant of the hidden tests (each submission draws one "
                    "variant of each test: see autograder/hidden_inputs.py). This stores every answer a later batch "
                    "needs from the reference (beside the model cache, or in $AUTOGRADER_REFERENCE_STORE), and checks "
                    "that the reference earns full marks on each variant.",
        epilog=f"exit status: 0 when the reference earned full marks on every variant; 1 when it did not on some (a "
               f"bug in the hidden suite: the lines above say where); 2 when it could not start; {GRADER_ERROR_EXIT} "
               f"when the grader failed")
    prepare.add_argument("--model", help=model_help)
    _add_assignment_option(prepare)

    from . import canvas, cluster, gradescope, nbgrader_course, sharding, similarity

    sharding.add_cli(commands)
    cluster.add_cli(commands)
    nbgrader_course.add_cli(commands)
    gradescope.add_cli(commands)
    similarity.add_cli(commands)
    canvas.add_cli(commands)
    return parser


def _add_assignment_option(parser: argparse.ArgumentParser, several: bool = False) -> None:
    course = ", ".join(available())
    if several:
        parser.add_argument("--assignment", action="append", metavar="NAME",
                            help=f"what to grade: an assignment of the course ({course}; default {DEFAULT_ASSIGNMENT}) or "
                                 f"a folder with an assignment.toml; repeat it to grade several in one run, each into "
                                 f"OUT/NAME/ with its own grades.csv")
    else:
        parser.add_argument("--assignment", metavar="NAME",
                            help=f"what to grade: an assignment of the course ({course}; default {DEFAULT_ASSIGNMENT}) or "
                                 f"a folder with an assignment.toml")


def _add_limit_options(parser: argparse.ArgumentParser) -> None:
    defaults = Limits()
    group = parser.add_argument_group("limits for student code")
    group.add_argument("--test-timeout", type=float, default=defaults.test_seconds, help="the most seconds one call may take; a call gets 20x the reference's time for the same test, at least 10 s (default %(default)s)")
    group.add_argument("--submission-timeout", type=float, default=defaults.submission_seconds,
                       help="seconds for all calls of one submission (default %(default)s)")
    group.add_argument("--memory-limit-gb", type=float, default=defaults.memory_bytes / 2**30,
                       help="memory beyond the shared model, GiB (default %(default)s)")
    group.add_argument("--import-timeout", type=float, default=defaults.import_seconds,
                       help="seconds to import decoding.py (default %(default)s)")
    group.add_argument("--file-limit-mb", type=float, default=defaults.output_bytes / 2**20,
                       help="largest file student code may write, its stdout/stderr included, MiB (default %(default)s)")
    group.add_argument("--max-processes", type=int, default=defaults.processes,
                       help="processes the sandbox user may run at once, where the grader runs as root (default %(default)s)")
    parser.add_argument("--fresh-reference", action="store_true",
                        help="compute every reference answer and every model call afresh: no stored reference answers, "
                             "no answering students' model calls from them (same grades, slower)")


def _limits(args) -> Limits:
    return Limits(test_seconds=args.test_timeout, submission_seconds=args.submission_timeout,
                  memory_bytes=int(args.memory_limit_gb * 2**30), import_seconds=args.import_timeout,
                  output_bytes=int(args.file_limit_mb * 2**20), processes=args.max_processes)


def _check_model(args) -> str:
    """The model's name, once it is known to be there: a missing one fails here, in seconds
    (`models.ModelUnavailableError`, with what to do), before torch or any process starts.
    An offline model is built on first use; a hub model not in the cache is downloaded."""
    name = models.resolve_model_name(args.model)
    models.model_path(name)
    return name


def _load_grader(args, console, name: str | None = None, assignment=None, own_store: Path | None = None):
    from .grading import Grader

    name = name or _check_model(args)
    with console.status(f"Loading {name} ..."):
        return Grader(name, _limits(args), reuse_reference=not args.fresh_reference,
                      inputs_seed=getattr(args, "inputs_seed", None), assignment=assignment or getattr(args, "assignment", None),
                      own_store=own_store)


def _grade(args) -> int:
    import shutil

    from rich.console import Console
    from rich.markup import escape

    from .discovery import find_submission_file, still_plain

    console = Console()
    assignment = load_assignment(args.assignment)
    file_name = assignment.submission_file
    path = args.submission
    temporary = None
    if path.is_file() or path.is_symlink() and not path.is_dir():
        # A file: graded as the submission file (read as the grader reads any submission: no symlink, FIFO or huge file).
        from .submission_file import SubmissionFileError, read_submission_bytes

        try:
            source = read_submission_bytes(path)
        except SubmissionFileError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        from .sandbox import scratch

        folder = temporary = scratch.make("grade")  # pid-tagged: a later run removes it if this one is killed
        (folder / file_name).write_bytes(source)
        student, shown = path.stem if path.name != file_name else path.parent.name or path.stem, str(path)
    elif path.is_dir():
        found = find_submission_file(path, name=file_name)
        if found.path is None:
            return _not_submitted(args, found, console, assignment)
        if not still_plain(found):  # a folder on the way became a symbolic link since the search
            print(f"error: {found.relative} cannot be read safely (a folder on the way is a symbolic link)", file=sys.stderr)
            return 2
        folder, student, shown = found.path.parent, path.name, str(found.path)
    else:
        print(f"error: {path} is not a folder or a file (pass the student's folder, or their {file_name})", file=sys.stderr)
        return 2
    try:
        name = _check_model(args)  # before anything heavy: a missing model fails in seconds
        from . import report
        from .sandbox.client import GraderFailure

        with _load_grader(args, console, name, assignment) as grader:
            try:
                with console.status(f"Grading {escape(shown)} ..."):
                    result = grader.grade(folder, student=args.student or student)
            except GraderFailure as error:
                print(f"error: the grader itself failed ({error}); this is not the student's doing and no grade was "
                      f"written: run the command again", file=sys.stderr)
                return GRADER_ERROR_EXIT
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    result.submission = shown
    console.print(f"graded {escape(shown)}")
    report.print_table(result, console)
    if args.results:
        report.write_json(args.results, report.gradescope_results(result))
        console.print(f"results: {args.results}")
    if args.feedback:
        report.write_text(args.feedback, report.feedback_markdown(result))
        console.print(f"feedback: {args.feedback}")
    for error in result.internal_errors:
        console.print(f"[red]grader error[/]: {error}")
    if result.internal_errors:
        print(f"error: the grader itself failed in {len(result.internal_errors)} place(s) (not the student's fault); "
              f"the tests affected scored 0, so this grade is not final", file=sys.stderr)
        return GRADER_ERROR_EXIT
    return 0


def _not_submitted(args, found, console, assignment) -> int:
    """`grade` on a folder without a single submission file: nothing is graded (no model
    is loaded); --results and --feedback say so, as grade-all's reports do; exit 2."""
    from . import batch, report

    name = models.resolve_model_name(args.model)
    if args.results:
        report.write_json(args.results, batch.not_submitted_results(args.submission.name, found, {"model": {"name": name}},
                                                                      batch.submission_digest(found), assignment.points))
        console.print(f"results: {args.results}")
    if args.feedback:
        report.write_text(args.feedback, batch.not_submitted_markdown(args.submission.name, found.problem, found.wanted))
        console.print(f"feedback: {args.feedback}")
    print(f"error: {batch.NOT_SUBMITTED}: {report.clean_text(found.problem)}", file=sys.stderr)
    return 2


def _grade_all(args) -> int:
    from rich.console import Console

    console = Console()
    if not args.root.is_dir():
        print(f"error: {args.root} is not a folder", file=sys.stderr)
        return 2
    name = _check_model(args)  # before anything heavy: a missing model fails in seconds
    from .batch import OVERRIDES_FILE, OverridesError, load_overrides

    if args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} is a file, not a folder", file=sys.stderr)
        return 2
    chosen = [load_assignment(a) for a in dict.fromkeys(args.assignment or [None])]
    if len({a.name for a in chosen}) < len(chosen):
        print(f"error: two --assignment values name the same assignment ({', '.join(a.name for a in chosen)})", file=sys.stderr)
        return 2
    # One assignment: results in OUT/ as always; several: each in OUT/<name>/, never mixed.
    outs = {a.name: args.out if len(chosen) == 1 else args.out / a.name for a in chosen}
    for assignment in chosen:
        out = outs[assignment.name]
        overrides = args.overrides
        if overrides is not None or (out / OVERRIDES_FILE).is_file():
            try:  # a mistake in it stops us before the model loads
                load_overrides(overrides or out / OVERRIDES_FILE, assignment.points)
            except OverridesError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
    status = 0
    for assignment in chosen:
        if len(chosen) > 1:
            console.rule(f"{assignment.name}: {assignment.title}")
        status = max(status, _grade_all_one(args, console, name, assignment, outs[assignment.name]))
    return status


def _grade_all_one(args, console, name: str, assignment, out: Path) -> int:
    from .batch import NOT_SUBMITTED, exit_status, grade_all, is_not_submitted, print_summary
    from .report import is_grader_error, print_class_table

    import time

    from .sharding import SHARD_STORE

    # Each assignment its own grader: its own reference, reference store and hidden folders.
    # A shard reads the class's prepared store and keeps what it computes itself apart.
    started = time.monotonic()
    with _load_grader(args, console, name, assignment, out / SHARD_STORE if args.shard else None) as grader:
        if args.shard:
            console.print(grader.store_note)
        rows = grade_all(args.root, out, grader, regrade=args.regrade, console=console, overrides=args.overrides,
                         shard=args.shard, load_seconds=time.monotonic() - started)
    # the table says "not submitted"; what was found is in the lines above and in grades.csv
    print_class_table([dict(row, status=NOT_SUBMITTED) if is_not_submitted(row) else row for row in rows],
                      assignment.points, console)
    print_summary(rows.summary, console)
    console.print(f"{len(rows)} submissions; grades: {out / 'grades.csv'}; per student: {out}/<student>/results.json, feedback.md")
    status = exit_status(rows)
    if status:
        failed = [str(row.get("student")) for row in rows if is_grader_error(row)]
        print(f"error: the grader itself failed for {len(failed)} student(s): {', '.join(failed)}; their grades are not final "
              f"(details: {out}/<student>/grader-error.txt; rerun to grade them again)", file=sys.stderr)
    return status


def _prepare(args) -> int:
    import time

    from rich.console import Console
    from rich.markup import escape

    from .grading import Grader
    from .sandbox.client import GraderFailure

    console = Console()
    name = _check_model(args)
    started = time.monotonic()
    short = []

    def report_variant(index: int, count: int, result) -> None:
        missed = [f"{t.function}: {t.name}" for t in result.tests if t.status != "passed"]
        mark = "[green]full marks[/]" if not missed else f"[red]{result.score:g} / {result.max_score:g}[/]"
        console.print(f"variant {index + 1} of {count}: reference {mark} ({result.execution_time:.0f} s)")
        for line in missed:
            console.print(f"  [red]not passed[/]: {escape(line)}")
        if missed or result.internal_errors:
            short.append(index)

    with console.status(f"Loading {name} ..."):
        grader = Grader(name, assignment=args.assignment)
    with grader:
        try:
            grader.prepare(report_variant)
        except (GraderFailure, RuntimeError) as error:
            print(f"error: the grader itself failed ({error}); run the command again", file=sys.stderr)
            return GRADER_ERROR_EXIT
    console.print(f"prepared in {time.monotonic() - started:.0f} s; stored reference answers: {grader.store.path}")
    if short:
        print(f"error: the reference did not earn full marks on variant(s) {', '.join(str(i + 1) for i in short)}: "
              f"the hidden suite has a bug there (see above)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    from .interrupts import run_stoppable

    args = build_parser().parse_args(argv)
    return run_stoppable(lambda: _run(args))


def _run(args) -> int:
    try:
        if args.command == "demo":
            from .demo import run_demo

            run_demo(args.model)
            return 0
        if args.command == "grade":
            return _grade(args)
        if args.command == "prepare":
            return _prepare(args)
        if args.command == "grade-all":
            return _grade_all(args)
        if getattr(args, "handler", None) is not None:
            return args.handler(args)
    except (models.ModelUnavailableError, AssignmentError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
