"""The course's model loader, shared with students.

The code lives in the student folder (`assignments/basic_prompting/course_model.py`)
so the notebook and public tests load models exactly as the grader does; this module
re-exports it for the grader. See that file for the model names.
"""

from __future__ import annotations

import sys

from .assignment import COURSE_MODEL_PATH, load_module

_course_model = sys.modules.get("course_model") or load_module(COURSE_MODEL_PATH, "course_model")
globals().update({name: value for name, value in vars(_course_model).items() if not name.startswith("__")})
