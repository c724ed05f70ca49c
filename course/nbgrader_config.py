"""nbgrader configuration of the course `basic_prompting` (run nbgrader commands in this folder).

Environment variables (all optional):

* NBGRADER_EXCHANGE  - the exchange folder shared by TAs and students
                       (default: /srv/nbgrader/exchange, nbgrader's own default)
* NBGRADER_COURSE_ID - the course id in the exchange (default: llm-course)

Students need the same two values in their own nbgrader config (or on the command line:
`--Exchange.root=... --CourseDirectory.course_id=...`); see docs/TA_GUIDE.md.

The assignment's source (source/basic_prompting/) is produced by
`python -m autograder.nbgrader_course sync` from assignments/basic_prompting/; do not edit
it here. Grading: `python -m autograder.nbgrader_course autograde` after `nbgrader collect`
(not `nbgrader autograde`).
"""

import os

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = os.environ.get("NBGRADER_COURSE_ID", "llm-course")
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE", "/srv/nbgrader/exchange")

# Files nbgrader never copies (release, collect, feedback). grading-output/ holds the raw
# results for TAs only.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".pytest_cache", "grading-output"]

# Defence in depth: should anyone run `nbgrader autograde` on this assignment anyway, it must
# not replace the student's decoding.py with the source version (nbgrader#940).
c.Autograde.exclude_overwriting = {"basic_prompting": ["decoding.py"]}
