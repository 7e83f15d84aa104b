"""Noise for the denoising auto-encoder: delete words, on the fly.

A noise function is registered in spaCy's `misc` registry and referenced from the
`[noise]` block of the phase-1 config. The registered factory returns a callable
`(text, rng: random.Random) -> str`; it is called anew every time a text is seen, so
every epoch sees a different corruption, and the whole sequence is reproducible from
the training seed (the trainer owns the `rng`).
"""

import random
from typing import Callable, List

import spacy

NoiseFunction = Callable[[str, random.Random], str]

SPLITTERS = ("whitespace", "treebank")


@spacy.registry.misc("spacy_threephase.word_deletion.v1")
def word_deletion(deletion_ratio: float = 0.6, splitter: str = "whitespace") -> NoiseFunction:
    """Delete each word with probability `deletion_ratio`, keeping at least one word.

    deletion_ratio (float): probability of deleting each word, in [0, 1]. The paper (and
        TSDAE) use 0.6; the paper tunes it between 0.3 and 0.7.
    splitter (str): "whitespace" (split on whitespace, join with single spaces) or
        "treebank" (nltk's Treebank tokenizer/detokenizer, which separate punctuation,
        like TSDAE's `word_tokenize`, and work offline).
    """
    if isinstance(deletion_ratio, bool) or not isinstance(deletion_ratio, (int, float)):
        raise ValueError(f"deletion_ratio must be a number between 0 and 1, got {deletion_ratio!r}")
    if not 0.0 <= deletion_ratio <= 1.0:
        raise ValueError(f"deletion_ratio must be between 0 and 1, got {deletion_ratio}")
    if splitter not in SPLITTERS:
        raise ValueError(f"splitter must be one of {', '.join(SPLITTERS)}, got {splitter!r}")
    split, join = _whitespace() if splitter == "whitespace" else _treebank()
    ratio = float(deletion_ratio)

    def delete_words(text: str, rng: random.Random) -> str:
        if ratio <= 0.0:
            return text
        words = split(text)
        if not words:
            return text
        kept = [w for w in words if rng.random() >= ratio]
        if not kept:
            kept = [words[rng.randrange(len(words))]]
        elif len(kept) == len(words):
            return text
        return join(kept)

    return delete_words


def _whitespace():
    return str.split, " ".join


def _treebank():
    from nltk.tokenize.treebank import TreebankWordDetokenizer, TreebankWordTokenizer

    tokenizer, detokenizer = TreebankWordTokenizer(), TreebankWordDetokenizer()

    def split(text: str) -> List[str]:
        return tokenizer.tokenize(text)

    return split, detokenizer.detokenize
