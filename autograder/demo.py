"""A tour of the reference solution on a model: tokens, the next-token distribution, decoding."""

from __future__ import annotations

import torch
from rich.console import Console
from rich.table import Table

from . import models
from .assignment import load as load_assignment


def run_demo(model_name: str | None, console: Console | None = None) -> None:
    console = console or Console()
    reference = load_assignment("basic_prompting").load_reference()  # the tour is of the decoding assignment
    with console.status(f"Loading {models.resolve_model_name(model_name)} ..."):
        model, tok, info = models.load_model_with_info(model_name)
    console.print(f"[bold]Model[/] {info.name} (revision {info.revision}), float32, torch {torch.__version__}")

    prompt = "Shakespeare was a"
    ids = tok(prompt)["input_ids"]
    console.print(f"\n[bold]Tokens[/] of {prompt!r}: {ids} = {[tok.decode(i) for i in ids]}")

    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1]
    table = Table(title=f"Next-token distribution after {prompt!r}")
    for column in ("token", "id", "softmax (b=e)", "b=2", "t=0.5", "t=2.0"):
        table.add_column(column, justify="right")
    columns = [
        reference.softmax(logits),
        reference.softmax(logits, base=2),
        reference.temperature_distribution(logits, 0.5),
        reference.temperature_distribution(logits, 2.0),
    ]
    for token_id in torch.topk(logits, 5).indices.tolist():
        table.add_row(repr(tok.decode(token_id)), str(token_id), *(f"{float(c[token_id]):.4f}" for c in columns))
    console.print(table)
    nucleus = reference.top_p_filter(columns[0], 0.9)
    console.print(f"0.9-nucleus: {int((nucleus > 0).sum())} of {logits.numel()} tokens")

    console.print("\n[bold]Greedy[/]:", repr(reference.generate_text(model, tok, "Shakespeare was a great", max_new_tokens=20)))
    for seed in (0, 1):
        text = reference.generate_text(
            model, tok, "Shakespeare was a great", max_new_tokens=20, temperature=0.8, top_p=0.9,
            generator=torch.Generator().manual_seed(seed),
        )
        console.print(f"[bold]Sampled[/] (t=0.8, p=0.9, seed {seed}):", repr(text))
    text = reference.generate_text(model, tok, "def factorial(", max_new_tokens=60, stop=["\n\n", "\ndef"])
    console.print("[bold]With stop sequences[/] ['\\n\\n', '\\ndef']:", repr(text))
