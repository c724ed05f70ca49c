"""Assignment `few_shot_prompting`: prompts that show the task, and answers you can trust.

The lecture's second half prompts a base model three ways: zero-shot (ask directly),
few-shot (show a few solved examples, then the new input) and "make the prompt look like
code". Each time, the model's free-running text had to be cleaned up afterwards: the
few-shot classifier answered ``' bad\\n\\nReview'`` and the code prompt went on to write a
``main`` function. You implement four functions that do better:

* `few_shot_prompt` builds the lecture's few-shot prompt from (input, output) pairs;
* `label_log_probs` asks the model how likely each allowed answer is;
* `classify` picks the likeliest allowed answer: a constrained choice, not free text;
* `complete_function` completes a Python function and stops generating where it ends.

Each docstring is the contract the grader checks: inputs, what to return and which errors
to raise. Keep the names and signatures exactly as they are. Everything runs on the CPU;
wrap model calls in ``torch.no_grad()``.

Useful facts about the model and tokenizer (Qwen/Qwen3-0.6B-Base):

* ``tokenizer(text)["input_ids"]`` is a list of ints; Qwen adds no special token at the
  start, so the ids of ``prompt`` are exactly the tokens of its text.
* ``model(input_ids=ids).logits`` has shape ``(1, sequence_length, vocab_size)`` for
  ``ids`` of shape ``(1, sequence_length)``: row ``i`` holds the scores for the token that
  comes *after* position ``i``.
* ``tokenizer.eos_token_id`` is the id of ``<|endoftext|>``; ``tokenizer.decode(ids)`` turns
  a list of ids back into text.

Use only ``model(input_ids)`` (with the keyword arguments you like: attention_mask,
past_key_values, use_cache, ...), its ``.logits``, ``model.config``, ``model.device`` and
``model.parameters()``. Do not call ``model.generate``: the grader passes stand-in models
that behave like the real one there but have no ``generate`` (calling it raises
AttributeError and the test scores 0).

Run the public tests with ``pytest`` in this folder.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def few_shot_prompt(
    examples: Sequence[tuple[str, str]],
    query: str,
    *,
    input_label: str = "Review",
    output_label: str = "Decision",
) -> str:
    """Build a few-shot prompt in the lecture's format.

    Each example ``(text, answer)`` becomes a block of two lines::

        {input_label}: {text}
        {output_label}: {answer}

    The blocks are separated by one blank line (``"\\n\\n"`` between blocks), and the prompt
    ends with the query's block, whose answer is left for the model to write::

        {input_label}: {query}
        {output_label}:

    For example ``few_shot_prompt([("Loved it.", "good")], "Boring.")`` is
    ``"Review: Loved it.\\nDecision: good\\n\\nReview: Boring.\\nDecision:"``. Nothing
    comes before the first block or after the final colon: no leading or trailing
    newline, and **no space after the last colon**. With no examples at all you get a
    zero-shot prompt: the query block alone.

    Why no trailing space? In the examples, the space in ``"Decision: good"`` is part of
    the answer's token: the tokenizer cuts it as ``':'``, ``' good'`` (remember ``' was'``
    and ``' a'`` in the first lecture). A prompt ending in ``"Decision: "`` forces a split
    the model has almost never seen, a lone ``' '`` token followed by ``'good'`` without
    its space, and the model's predictions after it are worse. So the prompt stops at the
    colon and the answer, space included, is the model's to produce: allowed answers are
    written with their leading space (``" good"``, ``" bad"``). Compare the lecture's
    own query line, ``f"\\nReview:{r}\\nDecision:"``: it has no space after ``Review:``
    although every example has one. Small differences in format like that change what
    the model does.

    The texts (inputs, answers, query) are used exactly as given: nothing is stripped or
    added.

    Args:
        examples: a sequence (list, tuple, ...) of ``(text, answer)`` pairs of strings;
            may be empty.
        query: the input the model is to answer.
        input_label: the name of the input line ("Review", "Question", ...).
        output_label: the name of the answer line ("Decision", "Answer", ...).

    Returns:
        The prompt, a str.

    Raises:
        ValueError: if `input_label` or `output_label` is empty, contains a newline
            (``"\\n"``; it would break the two-line blocks) or ends with ``":"`` (the format
            adds the colon itself: ``"Review:"`` would give ``"Review::"``).
    """
    raise NotImplementedError("few_shot_prompt is not implemented yet")


def label_log_probs(model, tokenizer, prompt: str, labels: Sequence[str]) -> dict[str, float]:
    """How likely each label is as the continuation of `prompt`, as a natural log.

    A label can be several tokens (``" very good"``), and the probability of a sequence of
    tokens is the product of each token's probability given everything before it:

        ln Pr{label | prompt} = sum over the label's tokens t_j of ln Pr{t_j | prompt, t_1 .. t_{j-1}}

    Compute it exactly like this, for each label:

    1. ``ids = tokenizer(prompt)["input_ids"] + tokenizer(label, add_special_tokens=False)["input_ids"]``:
       the prompt and the label are tokenized **separately** and the id lists joined.
       (Tokenizing ``prompt + label`` as one string can merge the prompt's last characters
       with the label's first ones into other tokens, and then you would be scoring
       different tokens.)
    2. One forward pass of the model over `ids`, and ``log_softmax`` over the vocabulary.
    3. Add up the log-probabilities of the label's tokens only, each one read from the
       row of the position *before* it (the row that predicts it). The prompt's own tokens
       are never scored: we want Pr{label | prompt}, not Pr{prompt and label}.

    Labels are usually written with their leading space (``" good"``, ``" bad"``), to
    follow a prompt that ends with a colon (see `few_shot_prompt`).

    Every value is <= 0; exponentiate to get probabilities. They need not sum to 1 over
    the labels: the model may prefer some text that is none of them.

    Args:
        model: a causal language model in eval mode (float32, on the CPU).
        tokenizer: its tokenizer.
        prompt: the text before the label; not empty.
        labels: a sequence of distinct, non-empty strings.

    Returns:
        A dict mapping each label to its log-probability, as a plain Python float (not a
        tensor), with the labels in the order given.

    Raises:
        ValueError: if `prompt` is empty (no position could predict a label's first
            token), if `labels` is empty, if any label is the empty string, or if a label
            appears twice.
    """
    raise NotImplementedError("label_log_probs is not implemented yet")


def classify(model, tokenizer, prompt: str, labels: Sequence[str]) -> str:
    """Constrained choice: the label the model finds most likely after `prompt`.

    In the lecture, the few-shot classifier was left to generate freely and answered
    ``' bad\\n\\nReview'``: the right word, then the start of the next example, which had
    to be cut off afterwards. And nothing stopped it from answering ``' meh'``, or
    ``' Good'`` with a capital G. Instead, compare only the answers you allow: return the
    label with the highest log-probability (`label_log_probs`). The answer is then always
    one of `labels`, and the model decides in a single forward pass per label.

    Compare log-probabilities of whole labels, not just their first tokens: ``" very
    good"`` and ``" very bad"`` start with the same token.

    Args:
        model, tokenizer, prompt, labels: as in `label_log_probs`.

    Returns:
        One of `labels`, exactly as given (a str). On a tie, the one that comes first in
        `labels`.

    Raises:
        ValueError: in the same cases as `label_log_probs`.
    """
    raise NotImplementedError("classify is not implemented yet")


def complete_function(model, tokenizer, header: str, *, max_new_tokens: int) -> str:
    """Greedy completion of a Python function that starts with `header`, stopped where the function ends.

    The lecture made the prompt look like code (``"def factorial("``) and let the model
    write. It wrote ``factorial``, then went on to a ``main`` function and an ``if
    __name__ == "__main__":`` block. Its fix, ``result.split("\\n\\n")[0]``, generates all
    200 tokens first, and cuts a function at its first blank line even when the body goes
    on after it. Here you stop where Python itself says the function is over.

    Generate greedily (the argmax at the last position, every step; write the loop
    yourself), one token at a time. After each new token, decode **all** new ids together
    (``tokenizer.decode(new_ids)``: a character's bytes can be split over two tokens, and
    decoding them one by one would break it) and look at the source so far,
    ``header + completion``, line by line (lines are separated by ``"\\n"``):

    * a *body line* is a non-blank line that starts with a space or a tab (an indented
      line);
    * the function **ends** at the first line that (1) starts in the completion, not in
      the header, (2) is non-blank and starts at column 0, i.e. its first character is not
      whitespace, and (3) comes after at least one body line.

    Blank lines (empty or only whitespace) inside the body do not end it: the body goes on
    if the next non-blank line is indented. The ending line is not part of the function:
    everything from that line's first character on is dropped. As soon as the ending
    line's first character is decoded you know the function is over: **stop generating
    right then**, do not generate `max_new_tokens` tokens and cut afterwards.

    Generation also stops when the model emits ``tokenizer.eos_token_id`` (the eos token is
    not part of the completion: drop it) or after `max_new_tokens` new tokens (then the
    completion is whatever was generated, as far as it goes).

    Returns:
        The completion only, without the header: the decoded new tokens (eos excluded), up
        to the start of the line that ends the function if there is one, with trailing
        whitespace removed (``str.rstrip()``), in every case. So ``header + result`` is the
        function's source without a final newline. ``max_new_tokens=0`` gives ``""``.

        Example: with header ``"def square(x):"`` and greedy tokens that decode to
        ``"\\n    return x * x\\n\\nprint(square(3))\\n"``, the function ends at the line
        ``print(square(3))``, so the result is ``"\\n    return x * x"``, and generation
        stopped at the token that brought the ``p`` of ``print``.

    The rule is made for top-level functions: `header` starts at column 0, like
    ``"def fibonacci(n):"``. It may end mid-line (the lecture's ``"def factorial("``): the
    model's first tokens then finish the header's line.

    Args:
        model: a causal language model in eval mode.
        tokenizer: its tokenizer.
        header: the start of the function's source; not empty.
        max_new_tokens: the most tokens to generate (>= 0).

    Raises:
        ValueError: if `max_new_tokens` < 0 or `header` is empty.
    """
    raise NotImplementedError("complete_function is not implemented yet")
