"""Empty texts get a real prediction: the one for a whitespace-only text.

spaCy and spacy-transformers special-case docs without tokens: `TextCategorizer.predict`
returns all-zero scores when every doc of a batch is empty (so `nlp("").cats` sums to 0,
not 1), the `Transformer` component returns empty outputs in that case, and a batch that
mixes empty and non-empty docs crashes in spacy-transformers' alignment code.

The encoder has a well-defined output for an empty text, though: its tokenizer turns "" and
" " alike into the special tokens alone ([CLS] [SEP]). So for our models an empty doc is run
as a one-whitespace-token stand-in, and its pooled vector, and so its class probabilities,
are exactly those of a whitespace-only text. `install()` replaces the two components'
`predict` with versions that send all-empty batches to the model when the model is one of
ours; every other pipeline keeps spaCy's behaviour. It runs when spacy_threephase's
architectures are imported, which loading any pipeline that uses them does.
"""

from typing import Callable, List, Tuple

import numpy
from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Ragged

OUR_TRANSFORMER = "threephase_empty_docs"  # attr set on our TransformerModel
OUR_TEXTCAT = "textcat_mlp"  # name of our classifier model
_installed = False


def allow_empty_docs(model: Model) -> Model:
    """Wrap a spacy-transformers TransformerModel's forward so empty docs run as " "."""
    from spacy_transformers.data_classes import TransformerData

    inner = model._func

    def forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[object, Callable]:
        empty = [i for i, doc in enumerate(docs) if len(doc) == 0]
        if not empty:
            return inner(model, docs, is_train)
        stand_ins = list(docs)
        for i in empty:
            stand_ins[i] = Doc(docs[i].vocab, words=[" "], spaces=[False])
        output, backprop = inner(model, stand_ins, is_train)
        doc_data = output.split_by_doc()
        no_tokens = numpy.zeros((0,), dtype="i")
        for i in empty:  # the original doc has no tokens: nothing is aligned to them
            data = doc_data[i]
            doc_data[i] = TransformerData(
                wordpieces=data.wordpieces, model_output=data.model_output, align=Ragged(no_tokens, no_tokens)
            )
        output.cached_doc_data = doc_data

        def backprop_docs(d_output):
            backprop(d_output)
            return docs

        return output, backprop_docs

    model._func = forward
    model.attrs[OUR_TRANSFORMER] = True
    return model


def install() -> None:
    """Let all-empty batches reach our models (idempotent)."""
    global _installed
    if _installed:
        return
    from spacy.pipeline.textcat import TextCategorizer
    from spacy_transformers.pipeline_component import Transformer

    trf_predict = Transformer.predict
    cat_predict = TextCategorizer.predict

    def transformer_predict(self, docs):
        docs = list(docs)
        if docs and self.model.attrs.get(OUR_TRANSFORMER) and not any(len(doc) for doc in docs):
            return self.model.predict(docs)
        return trf_predict(self, docs)

    def textcat_predict(self, docs):
        docs = list(docs)
        if docs and self.model.name == OUR_TEXTCAT and not any(len(doc) for doc in docs):
            return self.model.ops.asarray(self.model.predict(docs))
        return cat_predict(self, docs)

    transformer_predict.__doc__ = trf_predict.__doc__
    textcat_predict.__doc__ = cat_predict.__doc__
    Transformer.predict = transformer_predict
    TextCategorizer.predict = textcat_predict
    _installed = True
