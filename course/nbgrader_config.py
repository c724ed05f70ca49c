"""nbgrader configuration of the course (run nbgrader commands in this folder): one nbgrader
assignment per assignment of the autograder (`basic_prompting`, `few_shot_prompting`, ...).

Environment variables (all optional):

* NBGRADER_EXCHANGE  - the exchange folder shared by TAs and students
                       (default: /srv/nbgrader/exchange, nbgrader's own default)
* NBGRADER_COURSE_ID - the course id in the exchange (default: llm-course)

Students need the same two values in their own nbgrader config (or on the command line:
`--Exchange.root=... --CourseDirectory.course_id=...`); see docs/TA_GUIDE.md.

Each assignment's source (source/NAME/) is generated from assignments/NAME/ (what students
get, plus the points notebook; never the reference or the hidden tests) and is not kept in
git. Loading this file brings them up to date, so any nbgrader command run here
(`nbgrader generate_assignment basic_prompting` in a fresh clone, say) finds them current; it
prints one line when it changed something and never fails the command.
`python -m autograder nbgrader-sync [--check]` does the same by hand. Do not edit source/.

Grading: `python -m autograder nbgrader-autograde` after `nbgrader collect` (not
`nbgrader autograde`).
"""

import os
import sys

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

COURSE_ROOT = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.root = COURSE_ROOT
c.CourseDirectory.course_id = os.environ.get("NBGRADER_COURSE_ID", "llm-course")
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE", "/srv/nbgrader/exchange")

# Files nbgrader never copies (generate_assignment, release, collect, feedback): nbgrader's
# defaults, caches and a virtual environment made inside the assignment folder. grading-output/
# holds the raw results for TAs only. (A student's `nbgrader submit` uses the student's own
# config, not this file; see docs/TA_GUIDE.md.)
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".pytest_cache",
                            ".venv", "venv", ".DS_Store", "grading-output"]

# Defence in depth: should anyone run `nbgrader autograde` on an assignment anyway, it must
# not replace the student's file with the source version (nbgrader#940). Set again below
# from the assignments' own descriptors.
c.Autograde.exclude_overwriting = {"basic_prompting": ["decoding.py"], "few_shot_prompting": ["prompting.py"]}


def _sync_source():
    """Bring source/NAME/ up to date with assignments/NAME/ for every assignment.

    Uses the autograder package of the repository this course folder lives in (else the
    installed one); does nothing but warn when neither can be imported.
    """
    repo = os.path.dirname(COURSE_ROOT)
    try:
        if "autograder" not in sys.modules and os.path.isfile(os.path.join(repo, "autograder", "nbgrader_course.py")):
            sys.path.insert(0, repo)
            try:
                from autograder import nbgrader_course
            finally:
                sys.path.remove(repo)
        else:
            from autograder import nbgrader_course
        nbgrader_course.sync_on_config_load(COURSE_ROOT)
        c.Autograde.exclude_overwriting = nbgrader_course.exclude_overwriting()
    except Exception as error:  # a config file must never break an nbgrader command
        if not os.path.isdir(os.path.join(COURSE_ROOT, "source", "basic_prompting")):
            print(f"[nbgrader_config.py] warning: {COURSE_ROOT}/source/basic_prompting/ is missing and could not be "
                  f"made ({type(error).__name__}: {error}); run `python -m autograder nbgrader-sync` "
                  f"from the repository", file=sys.stderr)


_sync_source()
