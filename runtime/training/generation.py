"""Generating text with a causal language model: the next token, again and again, from a prompt.

A model qualifies when its feature input is tokens ``[N, T]`` (integers), its scored output gives each
position's scores over the vocabulary ``[N, T, V]`` (logits, or probabilities that sum to 1), and position
t's scores depend on tokens 0..t only (causal attention). Each step runs the model on a window of the last
T tokens (shorter at first: the positions after the text hold a filler token, which a causal model cannot
see) and reads the scores at the window's last token; the next token is their arg-max (greedy) or a draw
from softmax(scores / temperature) (``sample``). Every step reruns the window whole: there is no cache of
keys and values, which is fine for gradc's small models (T of a few dozen).

Before the first step with a part-filled window, the model runs twice with different fillers: scores that
change show a model that looks ahead, and generation stops with an error instead of producing nonsense.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from gradc.dsl.diagnostics import DataError

from .data import data_inputs, find_task

if TYPE_CHECKING:
    from ..execution.program import Program

PROBABILITY_TOLERANCE = 1e-4


def tokens_of(program: Program, prompt: str | Sequence[int]) -> list[int]:
    """A prompt as token indices: words of the training data's vocabulary (its class names) separated by
    spaces, or integers."""
    if not isinstance(prompt, str):
        return [int(t) for t in prompt]
    words = prompt.split()
    names = program.class_names
    if names is None:
        try:
            return [int(w) for w in words]
        except ValueError:
            raise DataError(f"prompt {prompt!r}: this model's training data had no vocabulary of words; give "
                            "token indices (integers separated by spaces)") from None
    index = {name: i for i, name in enumerate(names)}
    unknown = [w for w in words if w not in index]
    if unknown:
        raise DataError(f"prompt {prompt!r}: {', '.join(repr(w) for w in unknown)} "
                        f"{'is' if len(unknown) == 1 else 'are'} not in the vocabulary "
                        f"({' '.join(names)})")
    return [index[w] for w in words]


def words_of(program: Program, tokens: Sequence[int]) -> str:
    """Tokens as text: the vocabulary's words separated by spaces, or the indices."""
    names = program.class_names
    return " ".join(names[t] if names is not None and t < len(names) else str(t) for t in tokens)


def generate(program: Program, prompt: str | Sequence[int], tokens: int = 20, sample: bool = False,
             temperature: float = 1.0, seed: int = 0) -> list[int]:
    """The prompt's tokens followed by ``tokens`` generated ones (see the module's docstring)."""
    context = tokens_of(program, prompt)
    feature, output, window, vocabulary = _roles(program)
    if not context:
        raise DataError("the prompt is empty: give at least one token to start from")
    if temperature <= 0.0:
        raise DataError(f"temperature {temperature:g}: it must be positive")
    bad = [t for t in context if not 0 <= t < vocabulary]
    if bad:
        raise DataError(f"prompt token {bad[0]} is out of range: the model scores {vocabulary} tokens (0 to "
                        f"{vocabulary - 1})")
    rng = np.random.default_rng(seed)
    checked = len(context) >= window
    for _ in range(tokens):
        text = context[-window:]
        scores = _scores_after(program, feature, output, text, window, filler=0)
        if not checked:
            if not np.allclose(scores, _scores_after(program, feature, output, text, window, filler=vocabulary - 1),
                               rtol=1e-4, atol=1e-5):
                raise DataError(f"model '{program.name}' is not causal: its scores at a position change with the "
                                "tokens after it, so it cannot generate text (give its attention causal=true)")
            checked = True
        context.append(_next_token(scores, sample, temperature, rng))
    return context


def _roles(program: Program) -> tuple[str, str, int, int]:
    """The token input, the scored output, the window length T and the vocabulary size V."""
    settings = program.train_settings or {}
    task = find_task(program.source, settings.get("label"), settings.get("features"))
    inputs = data_inputs(program.source)
    feature = inputs.get(task.features) if task.features else None
    if (task.kind != "classification" or not task.sequence or feature is None or feature.is_float
            or feature.rank != 2 or not isinstance(feature.shape[1], int) or task.prediction is None):
        raise DataError(f"model '{program.name}' does not generate text: that needs a token input [N, T] "
                        "(integers, T a number) and an output of scores over the vocabulary at every position "
                        "[N, T, V], trained with a class loss on the next token")
    scored = program.source.node(program.source.outputs[task.prediction]).type
    return task.features, task.prediction, feature.shape[1], int(scored.shape[-1])


def _scores_after(program: Program, feature: str, output: str, text: list[int], window: int,
                  filler: int) -> np.ndarray:
    """The scores at the last token of ``text``, the window filled up with ``filler``."""
    row = np.full((1, window), filler, dtype=np.int64)
    row[0, :len(text)] = text
    return np.asarray(program.predict({feature: row})[output], dtype=np.float64)[0, len(text) - 1]


def _next_token(scores: np.ndarray, sample: bool, temperature: float, rng: np.random.Generator) -> int:
    if not sample:
        return int(np.argmax(scores))
    is_distribution = scores.min() >= 0.0 and abs(scores.sum() - 1.0) < PROBABILITY_TOLERANCE
    logits = np.log(np.maximum(scores, 1e-30)) if is_distribution else scores
    z = logits / temperature
    p = np.exp(z - z.max())
    return int(rng.choice(len(p), p=p / p.sum()))
