"""Helpers for `basic_prompting.ipynb`: friendly messages, small displays, the explorer.

Nothing here implements the assignment: every probability and every generated token you
see in the notebook comes from *your* `decoding.py`. This module only

* turns "this function is still a stub" into one kind line instead of a long traceback
  (`student_code`, `checklist`),
* prints and plots distributions (`top_tokens`, `show_top_tokens`, `bar_chart`, `show`),
* builds the interactive explorer (`Explorer`): a prompt, temperature, top-p and seed,
  a bar chart before and after temperature and nucleus filtering, and a few samples.
  The explorer reloads `decoding.py` whenever you save it (`%autoreload` only reloads
  when a cell runs, not when a slider moves), so it always shows your latest code.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType
from typing import Any

import torch

# The functions of decoding.py, in the order the assignment introduces them.
CONTRACT = (
    "softmax",
    "temperature_distribution",
    "top_p_filter",
    "greedy_decode",
    "sample_decode",
    "truncate_at_stop",
    "generate_text",
)
STUDENT_FILE = "decoding.py"


# -- "not implemented yet", said kindly --------------------------------------------------


def missing_function(error: BaseException) -> str:
    """Which function of decoding.py raised `error`: the innermost one in the traceback.

    When your `sample_decode` works but calls a `top_p_filter` that is still a stub, the
    answer is `top_p_filter`: that is the one to implement next.
    """
    name = None
    for frame in traceback.extract_tb(error.__traceback__):
        if os.path.basename(frame.filename) == STUDENT_FILE and frame.name in CONTRACT:
            name = frame.name
    if name:
        return name
    text = str(error)
    return next((fn for fn in CONTRACT if text.startswith(fn)), "a function of decoding.py")


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


def _tiny_calls(model, tokenizer) -> dict[str, Callable[[ModuleType], Any]]:
    """One quick call per function, to see which ones run."""
    return {
        "softmax": lambda m: m.softmax(torch.tensor([1.0, 2.0])),
        "temperature_distribution": lambda m: m.temperature_distribution(torch.tensor([1.0, 2.0]), 1.0),
        "top_p_filter": lambda m: m.top_p_filter(torch.tensor([0.6, 0.4]), 0.5),
        "greedy_decode": lambda m: m.greedy_decode(model, tokenizer, "Hi", 1),
        "sample_decode": lambda m: m.sample_decode(model, tokenizer, "Hi", 1, generator=torch.Generator().manual_seed(0)),
        "truncate_at_stop": lambda m: m.truncate_at_stop("ab", ["b"]),
        "generate_text": lambda m: m.generate_text(model, tokenizer, "Hi", max_new_tokens=1),
    }


def checklist(student: ModuleType, model, tokenizer, *, quiet: bool = False) -> dict[str, str]:
    """Try every function once on a tiny input; print (and return) what runs.

    Status per function: "runs", "not implemented yet" or the error it raised. "runs"
    only means it returned without an error: `pytest` in this folder checks the answers.
    """
    status: dict[str, str] = {}
    for name, attempt in _tiny_calls(model, tokenizer).items():
        try:
            attempt(student)
            status[name] = "runs"
        except NotImplementedError as error:
            culprit = missing_function(error)
            status[name] = "not implemented yet" if culprit == name else f"waits for `{culprit}`"
        except Exception as error:  # noqa: BLE001 - a student's bug: report it, keep going
            status[name] = f"raised {type(error).__name__}: {error}"
    if not quiet:
        marks = {"runs": "✅", "not implemented yet": "⏳"}
        for name, state in status.items():
            print(f"{marks.get(state, '⚠️')} {name:<26} {state}")
        todo = [name for name, state in status.items() if state != "runs"]
        if not todo:
            print("\nEvery function runs. Now check them with `pytest` in this folder.")
        elif status[todo[0]].startswith("raised"):
            print(f"\nNext to fix: `{todo[0]}` (its traceback shows when you call it in a cell).")
        else:
            print(f"\nNext to implement: `{todo[0]}`.")
    return status


# -- small displays ------------------------------------------------------------------------


def token_text(tokenizer, token_id: int) -> str:
    """A token as readable text: repr() shows its leading space and newlines."""
    return repr(tokenizer.decode([int(token_id)]))


@functools.lru_cache(maxsize=1)
def _drawable_characters() -> frozenset[int] | None:
    """The code points matplotlib's fonts can draw (its default font, plus a CJK font when
    this machine has one: `_fonts`), or None when that cannot be found out."""
    try:
        from matplotlib import font_manager
        from matplotlib.ft2font import FT2Font

        points: set[int] = set()
        for family in _fonts():
            points |= set(FT2Font(font_manager.findfont(family, fallback_to_default=False)).get_charmap())
        return frozenset(points)
    except Exception:  # noqa: BLE001 - a chart without this check still works
        return None


# Fonts that have CJK glyphs, by platform; the first one installed is added after the default.
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei",
             "Droid Sans Fallback", "Microsoft YaHei", "PingFang SC", "Hiragino Sans GB", "Arial Unicode MS")


@functools.lru_cache(maxsize=1)
def _fonts() -> tuple[str, ...]:
    """Font families for token labels: matplotlib's default, then a CJK one if installed."""
    from matplotlib import font_manager, rcParams

    installed = {font.name for font in font_manager.fontManager.ttflist}
    default = rcParams["font.sans-serif"][0] if rcParams["font.sans-serif"] else "DejaVu Sans"
    return (default, *[name for name in CJK_FONTS if name in installed][:1])


def label_text(tokenizer, token_id: int) -> str:
    """A token for a chart label: its repr, with characters no installed font can draw
    written as escapes (\\u4e16) instead of boxes, and its id below."""
    text = token_text(tokenizer, token_id)
    drawable = _drawable_characters()
    if drawable is not None:
        text = "".join(c if ord(c) < 128 or ord(c) in drawable else ascii(c)[1:-1] for c in text)
    return f"{text}\n{int(token_id)}"


def top_tokens(tokenizer, probs: torch.Tensor, k: int = 10) -> list[tuple[int, str, float]]:
    """The k most likely tokens as (id, text, probability)."""
    values, ids = torch.topk(probs.detach().float(), min(k, probs.numel()))
    return [(int(i), token_text(tokenizer, i), float(v)) for v, i in zip(values, ids)]


def show_top_tokens(tokenizer, probs: torch.Tensor, k: int = 10, title: str | None = None) -> None:
    """Print the k most likely tokens with their probabilities."""
    if title:
        print(title)
    for rank, (token_id, text, p) in enumerate(top_tokens(tokenizer, probs, k), start=1):
        print(f"{rank:>3}. {text:<20} id {token_id:>6}   p = {p:.4f}")


def bar_chart(tokenizer, distributions: Mapping[str, torch.Tensor], ids: list[int], title: str = ""):
    """A grouped bar chart of several distributions over the same tokens (a matplotlib Figure)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.2))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(distributions))
    shown = []
    for n, (label, probs) in enumerate(distributions.items()):
        heights = [float(probs[i]) for i in ids]
        shown += [h for h in heights if h > 0]
        ax.bar([x + n * width for x in range(len(ids))], heights, width=width, label=label)
    ax.set_xticks([x + width * (len(distributions) - 1) / 2 for x in range(len(ids))])
    ax.set_xticklabels([label_text(tokenizer, i) for i in ids], rotation=45, ha="right", fontsize=8,
                       fontfamily=list(_fonts()))
    if shown and max(shown) > 100 * min(shown):
        # e.g. t = 500 next to t = 1: on a linear axis the flat distribution's bars vanish
        ax.set_yscale("log")
        ax.set_ylim(min(shown) / 2, 1.5)
        ax.set_ylabel("probability (log scale)")
    else:
        ax.set_ylim(0, max(shown, default=1.0) * 1.15)
        ax.set_ylabel("probability")
    if distributions:
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    with _no_missing_glyph_warnings():
        fig.tight_layout()
    return fig


@contextlib.contextmanager
def _no_missing_glyph_warnings() -> Iterator[None]:
    """Tokens in scripts the default font lacks (CJK, Thai, ...) draw as boxes; no need to warn."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
        yield


def show(fig) -> None:
    """Display a matplotlib Figure as a PNG (works with any backend, headless too)."""
    from IPython.display import Image, display

    buffer = io.BytesIO()
    with _no_missing_glyph_warnings():
        fig.savefig(buffer, format="png", dpi=90)
    display(Image(buffer.getvalue()))


def prompt_tail(prompt: str, width: int = 40) -> str:
    """The end of `prompt`, at most `width` characters, cut at a word boundary ("..." first)."""
    if len(prompt) <= width:
        return prompt
    tail = prompt[-(width - 3):]
    cut = tail.find(" ")
    return "..." + (tail[cut:] if 0 <= cut < len(tail) - 1 else tail)


def next_token_logits(model, tokenizer, prompt: str) -> torch.Tensor:
    """The model's scores for the token after `prompt`: shape (vocab_size,), float32."""
    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    with torch.no_grad():
        return model(**inputs, use_cache=False).logits[0, -1].float()


# -- the explorer --------------------------------------------------------------------------


class Explorer:
    """Temperature and nucleus sampling, live, with your functions.

    `update(prompt, temperature, top_p, seed)` does all the work and returns
    ``(figure, summary)``; the widget only calls it with the sliders' values, so you can
    also call it yourself. The summary dict holds:

    * ``tokens``: for the `top_k` most likely tokens, their probability under
      ``softmax`` (t = 1), after ``temperature_distribution`` and after ``top_p_filter``;
    * ``nucleus_size`` (tokens kept by ``top_p_filter``) and ``nucleus_mass`` (their
      total probability at this temperature, before renormalising: at least top_p);
    * ``samples``: continuations from ``sample_decode`` with seeds seed, seed+1, ...;
    * ``missing``: functions still to implement; ``errors``: functions that raised;
      ``notices``: what to do first (an empty prompt);
    * ``reloaded``: whether this update first reloaded `decoding.py` (it had changed on disk).

    Every update first checks whether the student's file changed since it was last
    loaded and, if so, runs it again (as ``importlib.reload`` does): moving a slider
    after saving `decoding.py` uses the new code, no cell needs to run first.
    """

    def __init__(self, model, tokenizer, student: ModuleType, *, top_k: int = 12, samples: int = 2, max_new_tokens: int = 8):
        self.model, self.tokenizer, self.student = model, tokenizer, student
        self.top_k, self.samples, self.max_new_tokens = top_k, samples, max_new_tokens
        self._logits: dict[str, torch.Tensor] = {}
        self._loaded_version = self._file_version()

    def _file_version(self) -> tuple[int, int] | None:
        """(mtime in ns, size) of the student's file, or None when there is no file to watch."""
        path = getattr(self.student, "__file__", None)
        try:
            info = os.stat(path) if path else None
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size) if info else None

    def reload_if_changed(self) -> bool:
        """Run the student's file again if it changed on disk since it was loaded.

        Returns whether it did. The new code runs in the same module object (as
        ``importlib.reload`` does), so everything that holds the module sees it. The
        source is compiled afresh, not read from a cached .pyc. An error in the edited
        file (a SyntaxError, say) propagates: `update` shows it and keeps going.
        """
        version = self._file_version()
        if version is None or version == self._loaded_version:
            return False
        self._loaded_version = version  # a file that fails to load is not retried until it changes again
        path = self.student.__file__
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
        code = compile(source, path, "exec")
        exec(code, self.student.__dict__)  # noqa: S102 - the student's own file, as `import` would run it
        return True

    def logits(self, prompt: str) -> torch.Tensor:
        if prompt not in self._logits:
            self._logits[prompt] = next_token_logits(self.model, self.tokenizer, prompt)
        return self._logits[prompt]

    def _attempt(self, summary: dict, name: str, *args, **kwargs):
        """Call the student's `name`; on failure note why in `summary` and return None."""
        try:
            return getattr(self.student, name)(*args, **kwargs)
        except NotImplementedError as error:
            culprit = missing_function(error)
            if culprit not in summary["missing"]:
                summary["missing"].append(culprit)
        except Exception as error:  # noqa: BLE001 - show a student's bug, do not crash the widget
            summary["errors"][name] = f"{type(error).__name__}: {error}"
        return None

    def update(self, prompt: str, temperature: float = 1.0, top_p: float = 0.9, seed: int = 0):
        """Compute and draw everything for these slider values; returns (figure, summary)."""
        summary: dict[str, Any] = {
            "prompt": prompt, "temperature": float(temperature), "top_p": float(top_p), "seed": int(seed),
            "tokens": [], "nucleus_size": None, "nucleus_mass": None, "samples": [], "missing": [], "errors": {},
            "notices": [], "reloaded": False,
        }
        try:
            summary["reloaded"] = self.reload_if_changed()
        except Exception as error:  # noqa: BLE001 - a half-edited file: say so, keep the widget alive
            summary["errors"][STUDENT_FILE] = (f"{type(error).__name__}: {error} (fix and save it; until then "
                                               f"the explorer uses the code it loaded before)")
        if not prompt:
            summary["notices"].append("Type a prompt first.")
            return self._draw(summary, {}, []), summary
        logits = self.logits(prompt)
        plain = self._attempt(summary, "softmax", logits)
        heated = self._attempt(summary, "temperature_distribution", logits, float(temperature))
        nucleus = self._attempt(summary, "top_p_filter", heated, float(top_p)) if heated is not None else None
        if heated is not None and nucleus is not None:
            kept = nucleus > 0
            summary["nucleus_size"] = int(kept.sum())
            summary["nucleus_mass"] = float(heated[kept].sum())

        distributions = {}
        if plain is not None:
            distributions["softmax (t = 1)"] = plain
        if heated is not None:
            distributions[f"temperature t = {temperature:.3g}"] = heated
        if nucleus is not None:
            distributions[f"+ nucleus p = {top_p:.2f}"] = nucleus
        ids = torch.topk(logits, min(self.top_k, logits.numel())).indices.tolist()
        for i in ids:
            row = {"id": i, "token": self.tokenizer.decode([i])}
            for key, probs in (("softmax", plain), ("temperature", heated), ("nucleus", nucleus)):
                row[key] = None if probs is None else float(probs[i])
            summary["tokens"].append(row)

        for n in range(self.samples):
            generator = torch.Generator().manual_seed(int(seed) + n)
            new_ids = self._attempt(summary, "sample_decode", self.model, self.tokenizer, prompt, self.max_new_tokens,
                                    temperature=float(temperature), top_p=float(top_p), generator=generator)
            if new_ids is None:
                break
            summary["samples"].append(self.tokenizer.decode(list(new_ids)))
        return self._draw(summary, distributions, ids), summary

    def _draw(self, summary: dict, distributions: dict, ids: list[int]):
        title = f"Next token after {prompt_tail(summary['prompt'])!r}"
        if summary["nucleus_size"] is not None:
            title += f"\nnucleus: {summary['nucleus_size']} token(s) holding {summary['nucleus_mass']:.3f} of the probability"
        fig = bar_chart(self.tokenizer, distributions, ids, title)
        # Plain text: the default font has no emoji.
        notes = list(summary["notices"])
        notes += [f"`{name}` is not implemented yet: implement it next in {STUDENT_FILE}" for name in summary["missing"]]
        notes += [f"{name} raised {message}" for name, message in summary["errors"].items()]
        if notes:
            fig.axes[0].text(0.5, 0.5, "\n".join(notes), transform=fig.axes[0].transAxes, ha="center", va="center",
                             fontsize=9, wrap=True, bbox={"boxstyle": "round", "facecolor": "lightyellow"})
        return fig

    def report(self, summary: dict) -> str:
        """The summary as a few lines of text (shown under the chart)."""
        lines = []
        if summary.get("reloaded"):
            lines.append(f"({STUDENT_FILE} changed on disk: reloaded it before drawing)")
        if summary["nucleus_size"] is not None:
            lines.append(f"nucleus size: {summary['nucleus_size']} token(s), mass {summary['nucleus_mass']:.4f} "
                         f"(top_p = {summary['top_p']:.2f}, t = {summary['temperature']:.3g})")
        for n, text in enumerate(summary["samples"]):
            lines.append(f"sample (seed {summary['seed'] + n}): {summary['prompt']!r} + {text!r}")
        lines += summary["notices"]
        lines += [not_implemented_message(name) for name in summary["missing"]]
        lines += [f"⚠ {name} raised {message}" for name, message in summary["errors"].items()]
        return "\n".join(lines)

    def widget(self, prompt: str = "Shakespeare was a great", temperature: float = 1.0, top_p: float = 0.9, seed: int = 0):
        """The interactive version: a prompt box, temperature and top-p sliders, a seed.

        Returns the widget; make it the last line of a cell to show it.
        """
        import ipywidgets as widgets

        label_width = {"description_width": "initial"}  # the whole word "temperature", not "temperat..."
        controls = {
            "prompt": widgets.Text(value=prompt, description="prompt", continuous_update=False,
                                   layout=widgets.Layout(width="95%")),
            # A log scale reaches both 0.05 (almost greedy) and the lecture's 500 (almost uniform).
            "temperature": widgets.FloatLogSlider(value=temperature, base=10, min=-1.5, max=2.7, step=0.05,
                                                  description="temperature", continuous_update=False, style=label_width),
            "top_p": widgets.FloatSlider(value=top_p, min=0.01, max=1.0, step=0.01, description="top_p",
                                         continuous_update=False, style=label_width),
            "seed": widgets.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="seed", style=label_width),
        }

        def draw(prompt, temperature, top_p, seed):
            fig, summary = self.update(prompt, temperature, top_p, seed)
            show(fig)
            print(self.report(summary))

        output = widgets.interactive_output(draw, controls)
        return widgets.VBox([controls["prompt"], widgets.HBox([controls["temperature"], controls["top_p"], controls["seed"]]), output])
