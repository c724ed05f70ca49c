"""Grading a class on a cluster: the job scripts for Slurm and the manifest for Kubernetes.

Both run the same three steps (see `sharding`):

1. ``prepare``: the reference's answers for every variant, once for the class, into a
   shared folder ($AUTOGRADER_REFERENCE_STORE), which every shard then only reads;
2. K shards side by side, shard I running ``grade-all --shard I/K --out OUT/shards/I``
   (Slurm: one array task each, ``$SLURM_ARRAY_TASK_ID``; Kubernetes: one pod of an
   Indexed Job each, ``$JOB_COMPLETION_INDEX``);
3. ``merge``: one grades.csv for the class, or refusals that name the shards and
   students concerned (it runs even when some shard failed, so that this is seen).

``python -m autograder slurm ROOT --shards K --out OUT`` writes ``OUT/slurm/``
(prepare.sbatch, shards.sbatch, merge.sbatch, submit.sh); ``--submit`` also submits them,
chained with ``--dependency`` (the shards after a successful prepare, the merge after
every shard whatever its end). ``python -m autograder kubernetes ...`` writes the
Indexed Job for step 2.
"""

from __future__ import annotations

import functools
import math
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .assignment import REPO_ROOT, load as load_assignment


# What one shard needs for Qwen3-0.6B-Base in float32 (measured on a 2-core machine:
# ~2.4 GB of weights shared by every process, the grader and one student's worker on
# top, the per-submission memory limit (default 6 GiB) beyond the model, a suite of
# ~8 s per student once the reference is prepared and ~80 s per variant to prepare it).
DEFAULT_CPUS = 4
DEFAULT_MEMORY_GB = 12
# Generous on purpose: a job past its time limit is killed, and a killed shard must be rerun.
FIXED_MINUTES = 15  # start, model load, store load
MINUTES_PER_STUDENT = 1.0  # ~8 s of suite, up to the per-submission budget for slow or hanging code
PREPARE_MINUTES = 60
STORE_ENV_VAR = "AUTOGRADER_REFERENCE_STORE"  # reference_store's (not imported: it loads torch)
MERGE_MINUTES = 15


@dataclass
class ClusterJob:
    """What the three steps run, and with which resources."""

    root: Path  # the submissions
    out: Path  # OUT/shards/I per shard, OUT/merged, OUT/slurm
    shards: int
    students: list[str]
    model: str | None = None
    assignment: str | None = None
    store: Path | None = None  # the shared reference store (default OUT/reference-store)
    max_parallel: int | None = None
    cpus: int = DEFAULT_CPUS
    memory_gb: float = DEFAULT_MEMORY_GB
    minutes_per_student: float = MINUTES_PER_STUDENT
    python: str = sys.executable
    repo: Path = REPO_ROOT
    partition: str | None = None
    account: str | None = None
    extra_options: list[str] = field(default_factory=list)  # more #SBATCH lines, e.g. "--qos=short"
    grade_options: list[str] = field(default_factory=list)  # more grade-all options, e.g. "--test-timeout=30"
    setup: list[str] = field(default_factory=list)  # shell lines before each step, e.g. "module load python/3.11"

    @property
    def store_dir(self) -> Path:
        return self.store or self.out / "reference-store"

    def shard_out(self, index: str | int) -> str:
        return f"{self.out}/shards/{index}"

    @property
    def largest_shard(self) -> int:
        from .sharding import shard_of

        sizes = [0] * self.shards
        for student in self.students:
            sizes[shard_of(student, self.shards)] += 1
        return max(sizes, default=0)

    @property
    def shard_minutes(self) -> int:
        return math.ceil(FIXED_MINUTES + self.minutes_per_student * self.largest_shard)

    def _common(self) -> list[str]:
        options = []
        if self.model:
            options += ["--model", self.model]
        if self.assignment:
            options += ["--assignment", self.assignment]
        return options

    def prepare_command(self) -> list[str]:
        return [self.python, "-m", "autograder", "prepare", *self._common()]

    def shard_command(self, index: str) -> list[str]:
        """`index`: a number, or the shell variable that holds it (quoted as such)."""
        return [self.python, "-m", "autograder", "grade-all", str(self.root), *self._common(), "--shard",
                f"{index}/{self.shards}", "--out", self.shard_out(index), *self.grade_options]

    def merge_command(self) -> list[str]:
        return [self.python, "-m", "autograder", "merge", *(self.shard_out(i) for i in range(self.shards)),
                "--out", f"{self.out}/merged"]

    def environment(self) -> dict[str, str]:
        return {"AUTOGRADER_REFERENCE_STORE": str(self.store_dir)}


def _shell(command: list[str]) -> str:
    """The command as a shell line; a shard index variable inside an argument stays a variable."""
    parts = []
    for word in command:
        for variable in ("${SLURM_ARRAY_TASK_ID}", "${JOB_COMPLETION_INDEX}"):
            if variable in word:
                parts.append(f'"{variable}"'.join(shlex.quote(piece) if piece else "" for piece in word.split(variable)))
                break
        else:
            parts.append(shlex.quote(word))
    return " ".join(parts)


def _minutes(value: float) -> str:
    minutes = max(1, math.ceil(value))
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def _sbatch(job: ClusterJob, name: str, minutes: float, body: list[str], *, array: str | None = None) -> str:
    logs = f"{job.out}/slurm/logs"
    lines = ["#!/bin/bash", f"#SBATCH --job-name=autograder-{name}", f"#SBATCH --cpus-per-task={job.cpus}",
             f"#SBATCH --mem={math.ceil(job.memory_gb * 1024)}M", f"#SBATCH --time={_minutes(minutes)}",
             f"#SBATCH --output={logs}/{name}-%a.log" if array else f"#SBATCH --output={logs}/{name}.log"]
    if array:
        lines.append(f"#SBATCH --array={array}")
    if job.partition:
        lines.append(f"#SBATCH --partition={job.partition}")
    if job.account:
        lines.append(f"#SBATCH --account={job.account}")
    lines += [f"#SBATCH {option}" for option in job.extra_options]
    lines += ["# written by `python -m autograder slurm`; see docs/TA_GUIDE.md, \"Grading on a Slurm cluster\"",
              "set -euo pipefail", f"cd {shlex.quote(str(job.repo))}"]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in job.environment().items()]
    lines += job.setup
    return "\n".join(lines + body) + "\n"


def slurm_scripts(job: ClusterJob) -> dict[str, str]:
    """prepare.sbatch, shards.sbatch (the array), merge.sbatch and submit.sh, by file name."""
    limit = f"%{job.max_parallel}" if job.max_parallel else ""
    shard_index = "${SLURM_ARRAY_TASK_ID}"
    scripts = {
        "prepare.sbatch": _sbatch(job, "prepare", PREPARE_MINUTES, [_shell(job.prepare_command())]),
        "shards.sbatch": _sbatch(job, "shard", job.shard_minutes, [
            f"echo \"shard {shard_index}/{job.shards} on $(hostname), {job.cpus} CPUs\"",
            _shell(job.shard_command(shard_index))], array=f"0-{job.shards - 1}{limit}"),
        "merge.sbatch": _sbatch(job, "merge", MERGE_MINUTES, [_shell(job.merge_command())]),
    }
    here = shlex.quote(str(job.out / "slurm"))
    scripts["submit.sh"] = "\n".join([
        "#!/bin/bash",
        "# prepare, then the shards (only if prepare succeeded), then the merge (whatever the shards' end,",
        "# so that a failed shard shows in its report). WAIT_FOR_MERGE=1 waits for the merge to end (not",
        "# SBATCH_WAIT: sbatch itself reads that one, and would wait for every job).",
        "set -euo pipefail",
        f"mkdir -p {here}/logs",
        f"prepare=$(sbatch --parsable {here}/prepare.sbatch)",
        f"shards=$(sbatch --parsable --kill-on-invalid-dep=yes --dependency=afterok:$prepare {here}/shards.sbatch)",
        "merge_options=(--parsable --kill-on-invalid-dep=yes --dependency=afterany:$shards)",
        "if [ \"${WAIT_FOR_MERGE:-0}\" = 1 ]; then merge_options+=(--wait); fi",
        "echo \"prepare: job $prepare; shards: array job $shards; merge: after them\"",
        f"merge=$(sbatch \"${{merge_options[@]}}\" {here}/merge.sbatch) || status=$?",
        f"echo \"merge: job ${{merge%%;*}}; grades: {job.out}/merged/grades.csv; logs: {here}/logs/\"",
        "exit ${status:-0}",
    ]) + "\n"
    return scripts


def write_slurm(job: ClusterJob) -> Path:
    folder = job.out / "slurm"
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    for name, text in slurm_scripts(job).items():
        (folder / name).write_text(text, encoding="utf-8")
        (folder / name).chmod(0o755 if name.endswith(".sh") else 0o644)
    return folder


def _pod(job: ClusterJob, name: str, command: list[str], *, image: str, claim: str, mount: str) -> dict:
    command = ["python", *command[1:]]  # the image's environment
    return {
        "restartPolicy": "Never",
        "containers": [{
            "name": name,
            "image": image,
            "workingDir": str(job.repo),
            "command": ["sh", "-c", _shell(command)],
            "env": [{"name": k, "value": v} for k, v in job.environment().items()],
            "resources": {"requests": {"cpu": str(job.cpus), "memory": f"{math.ceil(job.memory_gb)}Gi"},
                          "limits": {"memory": f"{math.ceil(job.memory_gb)}Gi"}},
            "volumeMounts": [{"name": "course", "mountPath": mount}],
        }],
        "volumes": [{"name": "course", "persistentVolumeClaim": {"claimName": claim}}],
    }


def kubernetes_manifests(job: ClusterJob, *, image: str, claim: str, mount: str = "/course") -> dict[str, dict]:
    """prepare, shards and merge as Kubernetes Jobs, by file name. The shards are an
    Indexed Job (`completionMode: Indexed`): each pod's ``JOB_COMPLETION_INDEX`` is its
    shard. All three share one volume (a PersistentVolumeClaim holding the submissions,
    the outputs and the prepared reference store); paths in `job` are as the pods see
    them. Kubernetes does not chain Jobs: ``run.sh`` applies each after the last one ended."""
    def job_of(name: str, spec: dict) -> dict:
        return {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": f"autograder-{name}", "labels": {"app": "autograder"}},
                "spec": {"backoffLimit": 0, **spec}}

    pod = functools.partial(_pod, job, image=image, claim=claim, mount=mount)
    return {
        "prepare.yaml": job_of("prepare", {"template": {"spec": pod("prepare", job.prepare_command())}}),
        "shards.yaml": job_of("shards", {
            "completionMode": "Indexed",
            "completions": job.shards,
            "parallelism": job.max_parallel or job.shards,
            "backoffLimit": job.shards,  # the others run on when one fails; the merge names what is missing
            "template": {"spec": pod("shard", job.shard_command("${JOB_COMPLETION_INDEX}"))},
        }),
        "merge.yaml": job_of("merge", {"template": {"spec": pod("merge", job.merge_command())}}),
    }


KUBERNETES_RUN = """#!/bin/bash
# prepare, then the shards (only if prepare succeeded), then the merge (whatever the shards' end).
set -euo pipefail
cd "$(dirname "$0")"
kubectl apply -f prepare.yaml
kubectl wait --for=condition=complete --timeout={prepare}m job/autograder-prepare
kubectl apply -f shards.yaml
# until the shards' Job is Complete or Failed (some shard failed: the merge says which)
for _ in $(seq {shards_polls}); do
  ended=$(kubectl get job autograder-shards -o jsonpath='{{.status.conditions[?(@.status=="True")].type}}')
  case "$ended" in *Complete*|*Failed*) break;; esac
  sleep 30
done
kubectl apply -f merge.yaml
kubectl wait --for=condition=complete --timeout={merge}m job/autograder-merge
kubectl logs job/autograder-merge
"""


def write_kubernetes(job: ClusterJob, folder: Path, *, image: str, claim: str) -> Path:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    for name, manifest in kubernetes_manifests(job, image=image, claim=claim).items():
        (folder / name).write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    run = folder / "run.sh"
    rounds = math.ceil(job.shards / (job.max_parallel or job.shards))
    run.write_text(KUBERNETES_RUN.format(prepare=PREPARE_MINUTES, shards_polls=job.shard_minutes * rounds * 2, merge=MERGE_MINUTES),
                   encoding="utf-8")
    run.chmod(0o755)
    return folder


# -- command line ---------------------------------------------------------------------------


def _job(args, resolve: bool = True) -> ClusterJob:
    from .batch import discover

    assignment = load_assignment(args.assignment)
    students = [s.student for s in discover(args.root, assignment=assignment)] if args.root.is_dir() else []
    return ClusterJob(root=args.root.resolve() if resolve else args.root, out=args.out.resolve() if resolve else args.out,
                      shards=args.shards, students=students, model=args.model, assignment=args.assignment,
                      # this machine's $AUTOGRADER_REFERENCE_STORE is no path inside a pod
                      store=args.reference_store or (Path(os.environ[STORE_ENV_VAR]) if os.environ.get(STORE_ENV_VAR)
                                                     and resolve else None),
                      max_parallel=args.max_parallel, cpus=args.cpus,
                      memory_gb=args.memory_gb, minutes_per_student=args.minutes_per_student,
                      grade_options=list(args.grade_option or []))


def _check_counts(args) -> str | None:
    if args.shards < 1:
        return f"--shards must be at least 1 (got {args.shards})"
    if args.max_parallel is not None and args.max_parallel < 1:
        return f"--max-parallel must be at least 1 (got {args.max_parallel})"
    return None


def _slurm_command(args) -> int:
    problem = _check_counts(args) or (None if args.root.is_dir() else f"{args.root} is not a folder (the submissions)")
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    job = _job(args)
    job.partition, job.account = args.partition, args.account
    job.extra_options = list(args.sbatch_option or [])
    if args.python:
        job.python = args.python
    job.setup = list(args.setup or [])
    folder = write_slurm(job)
    print(f"{len(job.students)} students in {job.shards} shards (at most {job.largest_shard} in one; "
          f"{job.shard_minutes} min per shard allowed); scripts: {folder}/")
    if not args.submit:
        print(f"submit: {folder}/submit.sh   (grades: {job.out}/merged/grades.csv)")
        return 0
    env = dict(os.environ, WAIT_FOR_MERGE="1" if args.wait else "0")
    env.pop("SBATCH_WAIT", None)  # sbatch's own: it would make every submission wait
    answer = subprocess.run(["bash", str(folder / "submit.sh")], env=env)
    return answer.returncode


def _kubernetes_command(args) -> int:
    problem = _check_counts(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    job = _job(args, resolve=False)  # paths as the pods see them
    job.repo = Path(args.repo_in_image)
    folder = write_kubernetes(job, args.manifests or Path("kubernetes"), image=args.image, claim=args.claim)
    known = f"{len(job.students)} students" if job.students else "students not counted (ROOT is not a folder here)"
    print(f"{known}, {job.shards} shards; manifests: {folder}/ (run.sh applies them in order)")
    return 0


def _add_job_options(parser) -> None:
    parser.add_argument("root", type=Path, help="the submissions (as for grade-all), on storage every node sees")
    parser.add_argument("--shards", type=int, required=True, help="how many shards (K)")
    parser.add_argument("--out", type=Path, default=Path("grading-output"),
                        help="shared output folder: OUT/shards/I per shard, OUT/merged the class (default: grading-output)")
    parser.add_argument("--max-parallel", type=int, help="at most this many shards at once (default: all)")
    parser.add_argument("--model", help="model, as for grade-all (default: $AUTOGRADER_MODEL or Qwen/Qwen3-0.6B-Base)")
    parser.add_argument("--assignment", help="assignment, as for grade-all (default: basic_prompting)")
    parser.add_argument("--reference-store", type=Path,
                        help="shared folder for the prepared reference answers (default: $AUTOGRADER_REFERENCE_STORE "
                             "if set, else OUT/reference-store)")
    parser.add_argument("--cpus", type=int, default=DEFAULT_CPUS, help="CPUs per shard (default %(default)s)")
    parser.add_argument("--memory-gb", type=float, default=DEFAULT_MEMORY_GB, help="memory per shard, GB (default %(default)s)")
    parser.add_argument("--minutes-per-student", type=float, default=MINUTES_PER_STUDENT,
                        help=f"time limit per student of the largest shard, plus {FIXED_MINUTES} min (default %(default)s)")
    parser.add_argument("--grade-option", action="append", metavar="OPTION",
                        help="pass this option on to each shard's grade-all (repeatable), e.g. --grade-option=--regrade")


def add_cli(commands) -> None:
    slurm = commands.add_parser(
        "slurm", help="write (and with --submit, submit) Slurm jobs that grade a class in shards: prepare, an array "
                      "of grade-all --shard, merge",
        description="Writes OUT/slurm/: prepare.sbatch (the reference's answers, once, into the shared store), "
                    "shards.sbatch (an array job: task I runs grade-all --shard I/K --out OUT/shards/I), merge.sbatch "
                    "(merge into OUT/merged) and submit.sh, which submits them chained: the shards after a successful "
                    "prepare, the merge after every shard whatever its end. See docs/TA_GUIDE.md, \"Grading on a Slurm "
                    "cluster\".")
    _add_job_options(slurm)
    slurm.add_argument("--partition", help="#SBATCH --partition")
    slurm.add_argument("--account", help="#SBATCH --account")
    slurm.add_argument("--sbatch-option", action="append", metavar="OPTION", help="one more #SBATCH line, e.g. --qos=short (repeatable)")
    slurm.add_argument("--python", help="the Python (of the environment with the autograder) the jobs run "
                                        "(default: this one, %s)" % sys.executable.replace("%", "%%"))
    slurm.add_argument("--setup", action="append", metavar="LINE",
                       help="a shell line each job runs first, e.g. 'module load python/3.11' (repeatable)")
    slurm.add_argument("--submit", action="store_true", help="submit the jobs now (sbatch must be on PATH)")
    slurm.add_argument("--wait", action="store_true", help="with --submit: return when the merge has ended, with its exit status")
    slurm.set_defaults(handler=_slurm_command)

    kube = commands.add_parser("kubernetes", help="write Kubernetes Jobs that grade a class in shards: prepare, an "
                                                  "Indexed Job of grade-all --shard, merge (paths as the pods see them)")
    _add_job_options(kube)
    kube.add_argument("--image", required=True, help="container image with this repository and its environment")
    kube.add_argument("--claim", required=True, help="PersistentVolumeClaim holding the submissions and outputs")
    kube.add_argument("--repo-in-image", default="/autograder", help="where the repository is in the image (default %(default)s)")
    kube.add_argument("--manifests", type=Path, metavar="FOLDER",
                      help="where to write prepare.yaml, shards.yaml, merge.yaml and run.sh (default: kubernetes)")
    kube.set_defaults(handler=_kubernetes_command)
