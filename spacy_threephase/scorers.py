"""The phase-3 dev score that follows the classifier's kind, so model-best is chosen right.

spaCy's `textcat` and `textcat_multilabel` factories each default to their own scorer, but a
config that switches the factory on the command line (the project's multi-label variables)
keeps the scorer and threshold written in the file. This scorer reads the kind from the model
setting the switch does change (`exclusive_classes`, interpolated in configs/textcat.cfg):
exclusive classes are scored by the top class (any threshold the component passes, 0.0 in the
config), multi-label by every label above `multi_label_threshold`.
"""

from typing import Any, Callable, Dict, Iterable

from spacy import registry
from spacy.scorer import Scorer
from spacy.training import Example


@registry.scorers("spacy_threephase.textcat_scorer.v1")
def textcat_scorer(exclusive_classes: bool = True, multi_label_threshold: float = 0.5) -> Callable[..., Dict[str, Any]]:
    def score(examples: Iterable[Example], **kwargs) -> Dict[str, Any]:
        if not exclusive_classes:
            kwargs["threshold"] = multi_label_threshold
        return Scorer.score_cats(examples, "cats", multi_label=not exclusive_classes, **kwargs)

    return score
