"""Helpers for `few_shot_prompting.ipynb`: friendly messages and a plain greedy generator.

Nothing here implements the assignment: every prompt, probability, choice and completion
the notebook shows comes from *your* `prompting.py`. This module only

* turns "this function is still a stub" into one kind line instead of a long traceback
  (`student_code`, `checklist`);
* gives the notebook the lecture's free-running `generate_text` (Hugging Face's
  ``model.generate``, greedy), to compare your functions with what the lecture did.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Iterator
from types import ModuleType

import torch

# The functions of prompting.py, in the order the assignment introduces them.
CONTRACT = ("few_shot_prompt", "label_log_probs", "classify", "complete_function")
STUDENT_FILE = "prompting.py"


def missing_function(error: BaseException) -> str:
    """Which function of prompting.py raised `error`: the innermost one in the traceback."""
    name = None
    for frame in traceback.extract_tb(error.__traceback__):
        if os.path.basename(frame.filename) == STUDENT_FILE and frame.name in CONTRACT:
            name = frame.name
    if name:
        return name
    text = str(error)
    return next((fn for fn in CONTRACT if text.startswith(fn)), f"a function of {STUDENT_FILE}")


def not_implemented_message(name: str) -> str:
    return f"⏳ `{name}` is not implemented yet: implement it next in {STUDENT_FILE}, then run this cell again."


@contextlib.contextmanager
def student_code() -> Iterator[None]:
    """Run a block that calls your functions; a stub prints one line instead of a traceback.

    Other errors are real bugs and show their traceback as usual, so you can fix them.
    """
    try:
        yield
    except NotImplementedError as error:
        print(not_implemented_message(missing_function(error)))


def checklist(student: ModuleType, model, tokenizer) -> dict[str, str]:
    """Try every function once on a tiny input; print (and return) what runs.

    "runs" only means it returned without an error: `pytest` in this folder checks the answers.
    """
    attempts = {
        "few_shot_prompt": lambda: student.few_shot_prompt([("Great.", "good")], "Meh."),
        "label_log_probs": lambda: student.label_log_probs(model, tokenizer, "Decision:", [" good", " bad"]),
        "classify": lambda: student.classify(model, tokenizer, "Decision:", [" good", " bad"]),
        "complete_function": lambda: student.complete_function(model, tokenizer, "def f(x):", max_new_tokens=2),
    }
    status: dict[str, str] = {}
    for name, attempt in attempts.items():
        try:
            attempt()
            status[name] = "runs"
        except NotImplementedError as error:
            culprit = missing_function(error)
            status[name] = "not implemented yet" if culprit == name else f"waits for `{culprit}`"
        except Exception as error:  # noqa: BLE001 - a student's bug: report it, keep going
            status[name] = f"raised {type(error).__name__}: {error}"
    marks = {"runs": "✅", "not implemented yet": "⏳"}
    for name, state in status.items():
        print(f"{marks.get(state, '⚠️')} {name:<20} {state}")
    todo = [name for name, state in status.items() if state != "runs"]
    print("\nEvery function runs. Now check them with `pytest` in this folder." if not todo
          else f"\nNext: `{todo[0]}`.")
    return status


def generate_text(model, tokenizer, prompt: str, max_new_tokens: int = 20) -> str:
    """The lecture's helper at temperature 0: greedy continuation with ``model.generate``,
    the new text only (eos kept as ``<|endoftext|>``)."""
    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    with torch.no_grad():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1]:])


def show(fig) -> None:
    """Display a matplotlib Figure as a PNG, whatever the backend (in JupyterLab, and run
    headless too, where plt.show() draws nothing)."""
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    display(Image(buffer.getvalue()))
