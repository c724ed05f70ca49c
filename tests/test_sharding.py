"""A class in shards: `grade-all --shard I/K` on each part, `merge` into one set of grades.

The merged output must be what one unsharded `grade-all` writes (apart from timing and
the names of each run's own folders), the
class's prepared reference store must only be read by the shards, and the merge must
refuse, naming who is concerned, every way shards can fail to make one class.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.sharding import MANIFEST, MergeRefused, Shard, check, merge, parse_shard, shard_of

REPO = Path(__file__).resolve().parent.parent
CLASS = REPO / "examples" / "class"
SHARDS = 3
# What differs between two gradings of the same submission by the same grader: when, how
# long, and where that run kept its own folders (its scratch, output and store folders,
# which the sandbox hid, and how many of them existed; its cgroups, by its pid and a count).
TIMING_KEYS = {"execution_time", "graded_at"}
RUN_FOLDER_KEYS = {"hidden_paths"}
RUN_SPECIFIC = [(re.compile(r"autograder-\d+-\d+"), "autograder-PID-N"), (re.compile(r"hidden folders: \d+"), "hidden folders: N")]


def autograder(*args, env: dict | None = None, check_status: bool = True) -> subprocess.CompletedProcess:
    answer = subprocess.run([sys.executable, "-m", "autograder", *map(str, args)], cwd=REPO, env=env or dict(os.environ),
                            capture_output=True, text=True, timeout=1800)
    if check_status:
        assert answer.returncode == 0, f"autograder {' '.join(map(str, args))}: exit {answer.returncode}\n{answer.stdout}\n{answer.stderr}"
    return answer


def store_files(folder: Path) -> dict[str, tuple[int, str]]:
    return {p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """examples/class graded once whole and once in 3 shards, then merged. Shards 0 and 1
    find the class's store (written by the whole run) and may only read it; shard 2 finds
    none and computes its own."""
    root = tmp_path_factory.mktemp("sharding")
    store, empty = root / "store", root / "empty-store"
    env = dict(os.environ, AUTOGRADER_REFERENCE_STORE=str(store))
    whole = autograder("grade-all", CLASS, "--model", "tiny-qwen3", "--out", root / "whole", env=env)
    before = store_files(store)
    shards = [root / f"shard{i}" for i in range(SHARDS)]
    runs = [autograder("grade-all", CLASS, "--model", "tiny-qwen3", "--shard", f"{i}/{SHARDS}", "--out", shards[i],
                       env=env if i < 2 else dict(env, AUTOGRADER_REFERENCE_STORE=str(empty)))
            for i in range(SHARDS)]
    after = store_files(store)
    merged = autograder("merge", *shards, "--out", root / "merged")
    return {"root": root, "whole": root / "whole", "shards": shards, "merged": root / "merged", "runs": runs,
            "whole_run": whole, "merge_run": merged, "store_before": before, "store_after": after, "env": env}


def without_timing(value):
    """`value` less what differs between two runs of one grader (see TIMING_KEYS)."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_KEYS | RUN_FOLDER_KEYS}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    if isinstance(value, str):
        for pattern, replacement in RUN_SPECIFIC:
            value = pattern.sub(replacement, value)
    return value


def grades(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [without_timing(row) for row in csv.DictReader(handle)]


def test_shard_of_is_stable_balanced_and_independent_of_the_class():
    students = [f"student{i:04d}" for i in range(3000)]
    placed = {s: shard_of(s, 4) for s in students}
    counts = [list(placed.values()).count(k) for k in range(4)]
    assert all(abs(c - 750) < 120 for c in counts), counts  # about a quarter each
    # a student's shard is a function of the id alone: a new student moves nobody
    assert {s: shard_of(s, 4) for s in students + ["late_student"]}.items() >= placed.items()
    # pinned: changing the rule would move students between shards of a grading under way
    assert {s: shard_of(s, 3) for s in ("alice", "bob", "carol", "dave", "erin")} == {
        "alice": 2, "bob": 2, "carol": 2, "dave": 1, "erin": 0}
    assert Shard(1, 3).holds("bob") == (shard_of("bob", 3) == 1)


@pytest.mark.parametrize("text", ["3/3", "-1/3", "1", "a/b", "1/0", ""])
def test_a_bad_shard_is_refused_with_the_form_it_wants(text):
    with pytest.raises(ValueError, match=r"I/K with 0 <= I < K"):
        parse_shard(text)
    answer = autograder("grade-all", CLASS, "--shard", text, check_status=False)
    assert answer.returncode == 2 and "I/K" in answer.stderr


def test_the_example_class_is_graded_as_each_expected_json_says(graded):
    """The README's main job grades every example student (none "not submitted"), and each
    loses points exactly in the functions its expected.json names."""
    from autograder.assignment import load

    points = load(None).points
    rows = {row["student"]: row for row in grades(graded["whole"] / "grades.csv")}
    assert set(rows) == {p.name for p in CLASS.iterdir() if p.is_dir()}
    for student, row in rows.items():
        assert row["status"] == "graded", (student, row["status"])
        wrong = set(json.loads((CLASS / student / "expected.json").read_text())["wrong"])
        assert {f for f in points if float(row[f]) < points[f] - 1e-9} == wrong, student


def test_each_shard_grades_only_its_own_students(graded):
    for index, folder in enumerate(graded["shards"]):
        manifest = json.loads((folder / MANIFEST).read_text())
        own = sorted(s for s in manifest["class"] if shard_of(s, SHARDS) == index)
        assert manifest["complete"] and manifest["students"] == own
        assert sorted(row["student"] for row in grades(folder / "grades.csv")) == own
        assert sorted(p.name for p in folder.iterdir() if (p / "results.json").is_file()) == own
    assert sorted(s for f in graded["shards"] for s in json.loads((f / MANIFEST).read_text())["students"]) == sorted(
        p.name for p in CLASS.iterdir() if p.is_dir())


def test_merged_shards_are_one_unsharded_run(graded):
    whole, merged = graded["whole"], graded["merged"]
    assert grades(merged / "grades.csv") == grades(whole / "grades.csv")
    students = sorted(p.name for p in whole.iterdir() if p.is_dir())
    assert sorted(p.name for p in merged.iterdir() if p.is_dir()) == students
    for student in students:
        names = sorted(p.name for p in (whole / student).iterdir())
        assert sorted(p.name for p in (merged / student).iterdir()) == names, student
        for name in names:
            if name.endswith(".json"):
                assert without_timing(json.loads((merged / student / name).read_text())) == without_timing(
                    json.loads((whole / student / name).read_text())), (student, name)
            else:
                assert (merged / student / name).read_text() == (whole / student / name).read_text(), (student, name)
    # the class table is the same one
    table = lambda out: [line for line in out.splitlines() if "│" in line]  # noqa: E731
    assert table(graded["merge_run"].stdout) == table(graded["whole_run"].stdout)


def test_shards_only_read_the_prepared_store_and_one_without_it_says_so(graded):
    assert graded["store_after"] == graded["store_before"]  # not a byte, not a timestamp changed
    notes = [json.loads((f / MANIFEST).read_text())["reference_store"] for f in graded["shards"]]
    assert all("prepared store" in n and "read-only" in n for n in notes[:2]), notes
    assert "no prepared reference answers" in notes[2] and "computes its own" in notes[2]
    assert "computes its own" in " ".join(graded["runs"][2].stdout.split())
    assert any((graded["shards"][2] / ".reference-store").iterdir())


def test_a_rerun_shard_regrades_nobody_and_stays_mergeable(graded):
    index = 1
    again = autograder("grade-all", CLASS, "--model", "tiny-qwen3", "--shard", f"{index}/{SHARDS}", "--out",
                       graded["shards"][index], env=graded["env"])
    own = json.loads((graded["shards"][index] / MANIFEST).read_text())["students"]
    assert " ".join(again.stdout.split()).count("(unchanged, not regraded)") == len(own)
    check(graded["shards"])  # still one class


# -- refusals -----------------------------------------------------------------------------------


@pytest.fixture
def copies(graded, tmp_path):
    """Fresh copies of the three shard outputs, to break."""
    folders = []
    for folder in graded["shards"]:
        shutil.copytree(folder, tmp_path / folder.name, symlinks=True)
        folders.append(tmp_path / folder.name)
    return folders


def refused(folders, out: Path) -> str:
    with pytest.raises(MergeRefused) as caught:
        merge(folders, out)
    assert not (out / "grades.csv").exists()  # nothing written
    return str(caught.value)


def students_of(folder: Path) -> list[str]:
    return json.loads((folder / MANIFEST).read_text())["students"]


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_merge_refuses_a_missing_shard_and_names_its_students(copies, tmp_path):
    message = refused(copies[:1] + copies[2:], tmp_path / "out")
    assert "shard 1/3 is missing" in message
    assert all(s in message for s in students_of(copies[1]))


def test_merge_names_the_students_of_a_shard_whose_output_is_unreadable(copies, tmp_path):
    shutil.rmtree(copies[1])
    copies[1].write_text("not a folder")  # e.g. a shard that failed before it wrote anything
    message = refused(copies, tmp_path / "out")
    assert "cannot be read" in message and "shard 1/3 is missing" in message
    assert all(s in message for s in json.loads((copies[0] / MANIFEST).read_text())["class"] if shard_of(s, SHARDS) == 1)


def test_merge_refuses_a_shard_given_twice(copies, tmp_path):
    twin = tmp_path / "twin"
    shutil.copytree(copies[0], twin)
    message = refused([*copies, twin], tmp_path / "out")
    assert "shard 0/3 appears 2 times" in message


def test_merge_refuses_a_shard_that_did_not_finish(copies, tmp_path):
    edit_json(copies[2] / MANIFEST, lambda m: m.update(complete=False))
    message = refused(copies, tmp_path / "out")
    assert "shard 2/3" in message and "did not finish" in message


def test_merge_refuses_a_student_without_results_in_a_finished_shard(copies, tmp_path):
    student = students_of(copies[0])[0]
    (copies[0] / student / "results.json").unlink()
    message = refused(copies, tmp_path / "out")
    assert f"did not grade {student}" in message


def test_merge_refuses_results_of_another_shards_student(copies, tmp_path):
    student = students_of(copies[1])[0]
    shutil.copytree(copies[1] / student, copies[0] / student)
    message = refused(copies, tmp_path / "out")
    assert "students of other shards" in message and student in message


@pytest.mark.parametrize("field,change", [
    ("model revision", lambda m: m["model"].update(revision="0123456789abcdef")),
    ("model", lambda m: m["model"].update(name="some-other-model")),
    ("grader commit", lambda m: m["grader"].update(commit="f" * 40)),
    ("grader code digest", lambda m: m["grader"].update(digest="0" * 16)),
])
def test_merge_refuses_students_graded_with_another_model_or_grader(copies, tmp_path, field, change):
    student = students_of(copies[2])[0]
    edit_json(copies[2] / student / "results.json", lambda r: change(r["extra_data"]["metadata"]))
    message = refused(copies, tmp_path / "out")
    assert f"another {field}" in message and student in message


def test_merge_refuses_shards_of_different_splits_or_assignments(copies, tmp_path):
    edit_json(copies[1] / MANIFEST, lambda m: m.update(shards=4))
    assert "disagree on the shards" in refused(copies, tmp_path / "out")
    edit_json(copies[1] / MANIFEST, lambda m: m.update(shards=3, assignment="few_shot_prompting"))
    assert "disagree on the assignment" in refused(copies, tmp_path / "out")


def test_merge_refuses_a_folder_that_is_no_shard(copies, tmp_path):
    message = refused([*copies, CLASS], tmp_path / "out")
    assert f"{CLASS} is not a shard's output" in message


def test_merge_command_exits_2_with_the_refusal(copies, tmp_path):
    answer = autograder("merge", *copies[:2], "--out", tmp_path / "out", check_status=False)
    assert answer.returncode == 2 and "shard 2/3 is missing" in " ".join(answer.stderr.split())
    assert not (tmp_path / "out").exists()


def test_kubernetes_jobs_are_an_indexed_job_between_prepare_and_merge(tmp_path):
    import yaml

    autograder("kubernetes", "/course/submitted", "--shards", 4, "--max-parallel", 2, "--out", "/course/grading",
               "--image", "registry.example.edu/autograder:fall", "--claim", "course-data", "--manifests", tmp_path)
    shards = yaml.safe_load((tmp_path / "shards.yaml").read_text())
    assert shards["kind"] == "Job" and shards["spec"]["completionMode"] == "Indexed"
    assert shards["spec"]["completions"] == 4 and shards["spec"]["parallelism"] == 2
    pod = shards["spec"]["template"]["spec"]
    command = pod["containers"][0]["command"]
    assert command[:2] == ["sh", "-c"]
    assert '--shard "${JOB_COMPLETION_INDEX}"/4' in command[2] and '--out /course/grading/shards/"${JOB_COMPLETION_INDEX}"' in command[2]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "course-data"
    assert {"name": "AUTOGRADER_REFERENCE_STORE", "value": "/course/grading/reference-store"} in pod["containers"][0]["env"]
    merge_job = yaml.safe_load((tmp_path / "merge.yaml").read_text())["spec"]["template"]["spec"]["containers"][0]
    assert all(f"/course/grading/shards/{i}" in merge_job["command"][2] for i in range(4))
    assert "prepare" in yaml.safe_load((tmp_path / "prepare.yaml").read_text())["spec"]["template"]["spec"]["containers"][0]["command"][2]
    run = (tmp_path / "run.sh").read_text()
    assert run.index("prepare.yaml") < run.index("shards.yaml") < run.index("merge.yaml")
    # what the pods run is a command line the autograder accepts
    line = command[2].replace('"${JOB_COMPLETION_INDEX}"', "0")
    from autograder.__main__ import build_parser
    import shlex

    args = build_parser().parse_args(shlex.split(line)[3:])
    assert args.shard == Shard(0, 4) and str(args.out) == "/course/grading/shards/0"


# -- on a real Slurm cluster --------------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm():
    from .slurm_cluster import Cluster, SlurmUnavailable

    cluster = Cluster()
    try:
        cluster.__enter__()
    except SlurmUnavailable as why:
        print(f"Slurm tests skipped: {why}")
        pytest.skip(f"no Slurm cluster could be started here: {why}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def slurm_run(graded, slurm):
    """`slurm --submit --wait`: prepare, an array of 3 shards (2 at a time on this
    machine's cores), merge after them."""
    out = graded["root"] / "cluster"
    answer = autograder("slurm", CLASS, "--shards", SHARDS, "--max-parallel", 2, "--out", out, "--model", "tiny-qwen3",
                        "--cpus", 1, "--memory-gb", 2, "--submit", "--wait", env=dict(slurm.env, **{
                            "AUTOGRADER_REFERENCE_STORE": graded["env"]["AUTOGRADER_REFERENCE_STORE"]}), check_status=False)
    logs = {p.name: p.read_text(errors="replace") for p in (out / "slurm" / "logs").glob("*.log")}
    return {"out": out, "answer": answer, "logs": logs}


@pytest.mark.slow
def test_slurm_jobs_grade_the_class_in_shards_like_one_run(graded, slurm, slurm_run):
    """The merged grades of the Slurm jobs are the unsharded run's."""
    out, answer, logs = slurm_run["out"], slurm_run["answer"], slurm_run["logs"]
    assert answer.returncode == 0, f"{answer.stdout}\n{answer.stderr}\n{logs}\n{slurm.logs()}"
    script = (out / "slurm" / "shards.sbatch").read_text()
    assert f"#SBATCH --array=0-{SHARDS - 1}%2" in script and "${SLURM_ARRAY_TASK_ID}" in script
    assert sorted(logs) == ["merge.log", "prepare.log", *(f"shard-{i}.log" for i in range(SHARDS))]
    assert "full marks" in logs["prepare.log"]
    assert all("prepared store" in " ".join(logs[f"shard-{i}.log"].split()) for i in range(SHARDS))  # read, not recomputed
    assert grades(out / "merged" / "grades.csv") == grades(graded["whole"] / "grades.csv")


@pytest.mark.slow
def test_slurm_merge_runs_after_a_failed_shard_and_names_its_students(graded, slurm, slurm_run):
    """A shard that fails (here: its output folder cannot be created) does not stop the
    merge job (afterany), and the merge's refusal names that shard's students. The other
    shards, rerun on their earlier output, regrade nobody."""
    out = slurm_run["out"]
    shutil.rmtree(out / "shards" / "1")
    (out / "shards" / "1").write_text("a file where shard 1's folder should be")
    shutil.rmtree(out / "merged")
    answer = subprocess.run(["bash", str(out / "slurm" / "submit.sh")], capture_output=True, text=True, timeout=1800,
                            env=dict(slurm.env, WAIT_FOR_MERGE="1"))
    logs = {p.name: p.read_text(errors="replace")[-1500:] for p in (out / "slurm" / "logs").glob("*.log")}
    assert "merge.log" in logs, f"{answer.stdout}\n{answer.stderr}\n{logs}\n{slurm.logs()}"
    merge_log = " ".join(logs["merge.log"].split())
    assert answer.returncode == 2, answer.stdout + answer.stderr + merge_log
    assert "shard 1/3 is missing" in merge_log and all(s in merge_log for s in students_of(graded["shards"][1]))
    assert not (out / "merged" / "grades.csv").exists()
    assert "(unchanged, not regraded)" in " ".join(logs["shard-2.log"].split())


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) is not installed")
def test_workers_use_the_cpus_the_job_was_given_not_the_nodes():
    """A Slurm job's CPUs are its affinity: a worker with more torch threads than that
    would fight over them (two 2-thread processes on 2 cores run >10x slower)."""
    code = "from autograder.sandbox.limits import usable_cpus; print(usable_cpus())"
    one = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert one.stdout.strip() == "1", one.stderr
    from autograder.sandbox.limits import usable_cpus

    assert usable_cpus() == len(os.sched_getaffinity(0))
