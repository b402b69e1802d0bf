"""A small English-like grammar: the built-in ``grammar`` dataset's sentences, and a check of whether a text
is made of its sentences (how a language model's generated text is judged).

    sentence  = subject[n] verb_phrase[n] "."          n: singular or plural, the same on both sides
    subject[n] = noun_phrase[n] ("near" noun_phrase[any])?
    noun_phrase[sg] = ("the" | "a") adjective? noun[sg]        noun_phrase[pl] = ("the" | "some") adjective? noun[pl]
    verb_phrase[n] = transitive[n] noun_phrase[any] | intransitive[n]

The agreement between a subject and its verb ("the cat near the dogs sees", never "... see") reaches across
a prepositional phrase, so a model must carry the subject's number over up to five tokens. The sentences are
generated from the seed; each choice is uniform except the optional parts (an adjective with probability
0.3, a prepositional phrase 0.25, a transitive verb 0.6).
"""

from __future__ import annotations

import re

import numpy as np

WORDS: dict[str, tuple[str, ...]] = {  # word class -> its words
    "det_sg": ("a",), "det_pl": ("some",), "det": ("the",),
    "adjective": ("big", "small", "red"),
    "noun_sg": ("cat", "dog", "bird"), "noun_pl": ("cats", "dogs", "birds"),
    "transitive_sg": ("sees", "likes", "chases"), "transitive_pl": ("see", "like", "chase"),
    "intransitive_sg": ("sleeps", "runs"), "intransitive_pl": ("sleep", "run"),
    "near": ("near",), "end": (".",),
}
VOCABULARY: tuple[str, ...] = tuple(w for words in WORDS.values() for w in words)
WORD_CLASS = {w: c for c, words in WORDS.items() for w in words}
ADJECTIVE, PREPOSITION, TRANSITIVE = 0.3, 0.25, 0.6


def _noun_phrase(n: str) -> str:
    """A regular expression over word classes (each followed by a space) for a noun phrase of number n."""
    return f"(?:det |det_{n} )(?:adjective )?noun_{n} "


_ANY_NOUN_PHRASE = f"(?:{_noun_phrase('sg')}|{_noun_phrase('pl')})"
_SENTENCE = "|".join(f"{_noun_phrase(n)}(?:near {_ANY_NOUN_PHRASE})?(?:transitive_{n} {_ANY_NOUN_PHRASE}|"
                     f"intransitive_{n} )end " for n in ("sg", "pl"))
_TEXT = re.compile(f"(?:{_SENTENCE})*")


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def _generate_noun_phrase(rng: np.random.Generator, n: str) -> list[str]:
    words = [_pick(rng, WORDS["det"] + WORDS[f"det_{n}"])]
    if rng.random() < ADJECTIVE:
        words.append(_pick(rng, WORDS["adjective"]))
    return [*words, _pick(rng, WORDS[f"noun_{n}"])]


def sentence(rng: np.random.Generator) -> list[str]:
    """One sentence of the grammar, as words."""
    n = _pick(rng, ("sg", "pl"))
    words = _generate_noun_phrase(rng, n)
    if rng.random() < PREPOSITION:
        words += ["near", *_generate_noun_phrase(rng, _pick(rng, ("sg", "pl")))]
    if rng.random() < TRANSITIVE:
        words += [_pick(rng, WORDS[f"transitive_{n}"]), *_generate_noun_phrase(rng, _pick(rng, ("sg", "pl")))]
    else:
        words.append(_pick(rng, WORDS[f"intransitive_{n}"]))
    return [*words, "."]


def is_grammatical(words: list[str]) -> bool:
    """Whether ``words`` is one or more whole sentences of the grammar."""
    if not words or any(w not in WORD_CLASS for w in words):
        return False
    return _TEXT.fullmatch("".join(WORD_CLASS[w] + " " for w in words)) is not None


def sentences_of(words: list[str]) -> list[list[str]]:
    """The whole sentences in ``words`` (each ending at "."); a trailing unfinished one is left out."""
    out, current = [], []
    for w in words:
        current.append(w)
        if w == ".":
            out.append(current)
            current = []
    return out


def token_stream(rng: np.random.Generator, length: int) -> np.ndarray:
    """At least ``length`` tokens (indices into VOCABULARY) of sentences one after another."""
    index = {w: i for i, w in enumerate(VOCABULARY)}
    tokens: list[int] = []
    while len(tokens) < length:
        tokens += [index[w] for w in sentence(rng)]
    return np.array(tokens, dtype=np.int64)
