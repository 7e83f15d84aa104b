"""Imbalance correction (paper sec. 3.2.1): oversample rare classes with stop-word variants.

With N the size of the largest class and n the size of class k, the ratio is
`f(n) = max_ratio * ln(N / n) / ln(N)` (f(1) = max_ratio, f(N) = 0; f = 0 when N == 1).
A class with `f(n) >= min_ratio` grows to `round(f(n)) * n` examples; the extra copies are
variants with a random subset of their stop words deleted (at least one deleted, at least one
word kept; spaCy's stop words for `lang`) or plain copies when a text has none to delete.
Other classes are left alone. For multi-label records the record's class is its rarest label.

Defaults: max_ratio 4, min_ratio 1.5. Ablations: "Extra Imb." min 1.5 / max 20; "No Imb.":
`enabled = false`.
"""

import json
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, FrozenSet, List, Optional, Sequence, Union

import spacy


def ratio(n: int, largest: int, max_ratio: float) -> float:
    """f(n) = max_ratio * ln(N/n) / ln(N); 0 when the largest class has a single example."""
    if largest <= 1 or n <= 0:
        return 0.0
    return max_ratio * math.log(largest / n) / math.log(largest)


def stop_words_for(lang: str) -> FrozenSet[str]:
    try:
        cls = spacy.util.get_lang_class(lang)
    except Exception as err:  # unknown language code
        raise ValueError(f"unknown spaCy language {lang!r} for stop words ({err})") from None
    return frozenset(w.lower() for w in cls.Defaults.stop_words)


def delete_stop_words(text: str, stop_words: FrozenSet[str], rng: random.Random) -> str:
    """Delete a random non-empty subset of the text's stop words, keeping at least one word.

    Each stop word is deleted with probability 0.5 (at least one). Returns the text unchanged
    when it has no stop word or only one word.
    """
    words = text.split()
    if len(words) < 2:
        return text
    candidates = [i for i, w in enumerate(words) if w.lower().strip(".,!?;:\"'()") in stop_words]
    if not candidates:
        return text
    chosen = [i for i in candidates if rng.random() < 0.5] or [rng.choice(candidates)]
    if len(chosen) >= len(words):  # every word is a stop word: keep one
        chosen.remove(rng.choice(chosen))
    drop = set(chosen)
    return " ".join(w for i, w in enumerate(words) if i not in drop)


@dataclass
class CorrectedData:
    texts: List[str]
    labels: List[List[str]]
    source: List[int]  # index of the original example each item comes from
    table: List[Dict] = field(default_factory=list)  # per class: size before/after, ratio

    def format_table(self) -> str:
        if not self.table:
            return "imbalance correction: off"
        width = max(5, *(len(r["class"]) for r in self.table))
        lines = [f"{'class':<{width}}  {'before':>6}  {'f(n)':>6}  {'after':>6}"]
        for r in self.table:
            lines.append(f"{r['class']:<{width}}  {r['before']:>6}  {r['ratio']:>6.3f}  {r['after']:>6}")
        return "\n".join(lines)

    def write(self, path: Union[str, Path], settings: Dict) -> None:
        Path(path).write_text(json.dumps({"settings": settings, "classes": self.table}, indent=2), encoding="utf8")


class ImbalanceCorrection:
    def __init__(
        self,
        enabled: bool = True,
        max_ratio: float = 4.0,
        min_ratio: float = 1.5,
        lang: str = "en",
        stop_word_variants: bool = True,
    ):
        if max_ratio <= 0 or min_ratio <= 0:
            raise ValueError("max_ratio and min_ratio must be > 0")
        self.enabled = enabled
        self.max_ratio = float(max_ratio)
        self.min_ratio = float(min_ratio)
        self.lang = lang
        self.stop_word_variants = stop_word_variants
        self._stop_words: Optional[FrozenSet[str]] = None

    @property
    def settings(self) -> Dict:
        return {
            "enabled": self.enabled,
            "max_ratio": self.max_ratio,
            "min_ratio": self.min_ratio,
            "lang": self.lang,
            "stop_word_variants": self.stop_word_variants,
        }

    @property
    def stop_words(self) -> FrozenSet[str]:
        if self._stop_words is None:
            self._stop_words = stop_words_for(self.lang) if self.stop_word_variants else frozenset()
        return self._stop_words

    def __call__(self, texts: Sequence[str], labels: Sequence[Sequence[str]], seed: int = 0) -> CorrectedData:
        texts, labels = list(texts), [list(x) for x in labels]
        freq = Counter(label for labs in labels for label in set(labs))
        out = CorrectedData(texts[:], [x[:] for x in labels], list(range(len(texts))))
        if not self.enabled or not freq:
            return out
        rng = random.Random(seed)
        # group records by their rarest label (ties: alphabetical)
        groups: Dict[str, List[int]] = {}
        for i, labs in enumerate(labels):
            if labs:
                cls = min(set(labs), key=lambda lab: (freq[lab], lab))
                groups.setdefault(cls, []).append(i)
        largest = max(freq.values())
        ratios = {}
        for cls in sorted(groups):
            f = ratio(freq[cls], largest, self.max_ratio)
            ratios[cls] = f
            if f < self.min_ratio:
                continue
            members = groups[cls]
            extra = (round(f) - 1) * len(members)
            order = members[:]
            for k in range(extra):
                if k % len(order) == 0:
                    rng.shuffle(order)
                i = order[k % len(order)]
                text = delete_stop_words(texts[i], self.stop_words, rng) if self.stop_words else texts[i]
                out.texts.append(text)
                out.labels.append(labels[i][:])
                out.source.append(i)
        after = Counter(label for labs in out.labels for label in set(labs))
        out.table = [
            {
                "class": cls,
                "before": freq[cls],
                "ratio": round(ratio(freq[cls], largest, self.max_ratio), 4),
                "after": after[cls],
                "oversampled": ratios.get(cls, 0.0) >= self.min_ratio,
            }
            for cls in sorted(freq, key=lambda c: (-freq[c], c))
        ]
        return out


@spacy.registry.misc("spacy_threephase.imbalance_correction.v1")
def imbalance_correction(
    enabled: bool = True,
    max_ratio: float = 4.0,
    min_ratio: float = 1.5,
    lang: str = "en",
    stop_word_variants: bool = True,
) -> ImbalanceCorrection:
    """Oversample classes with f(n) >= min_ratio to round(f(n)) * n examples (stop-word variants)."""
    return ImbalanceCorrection(
        enabled=enabled, max_ratio=max_ratio, min_ratio=min_ratio, lang=lang, stop_word_variants=stop_word_variants
    )
