"""Pool a doc's transformer output into one sentence vector, over wordpieces.

This is the thinc twin of `spacy_threephase.encoder.pool`: masked mean over all wordpieces
(special tokens included, padding excluded) or the first wordpiece ([CLS] / <s>). It reads
the raw `TransformerData` a `TransformerListener` passes on, so no alignment to spaCy tokens
is involved and the vector equals the one phases 1 and 2 trained.
"""

from typing import Callable, List, Optional, Tuple

from spacy_transformers.data_classes import TransformerData
from thinc.api import Model
from thinc.types import Floats2d
from transformers.file_utils import ModelOutput

from ..encoder import check_pooling


def sentence_pooling(mode: str = "mean", grad_factor: float = 1.0) -> Model[List[TransformerData], Floats2d]:
    """grad_factor scales the gradient sent back into the transformer; 0 freezes it."""
    check_pooling(mode)
    return Model(
        "sentence_pooling",
        forward,
        init=init,
        dims={"nO": None},
        attrs={"mode": mode, "grad_factor": grad_factor},
    )


def init(model: Model, X: Optional[List[TransformerData]] = None, Y=None) -> None:
    if X is None:
        return
    for trf_data in X:
        width = _width(trf_data)
        if width:
            model.set_dim("nO", width, force=True)
            return


def _width(trf_data: TransformerData) -> int:
    hidden = trf_data.model_output.get("last_hidden_state") if trf_data.model_output else None
    return int(hidden.shape[-1]) if hidden is not None and hidden.ndim == 3 else 0


def _has_output(trf_data: TransformerData) -> bool:
    hidden = trf_data.model_output.get("last_hidden_state") if trf_data.model_output else None
    return hidden is not None and hidden.size > 0


def forward(model: Model, trf_datas: List[TransformerData], is_train: bool) -> Tuple[Floats2d, Callable]:
    ops = model.ops
    xp = ops.xp
    mode = model.attrs["mode"]
    grad_factor = model.attrs["grad_factor"]
    width = model.get_dim("nO") if model.has_dim("nO") else 0
    if not width:
        width = next((_width(t) for t in trf_datas if _width(t)), 0)
    output = ops.alloc2f(len(trf_datas), width)
    weights: List[Optional[Floats2d]] = []
    for i, trf_data in enumerate(trf_datas):
        if not _has_output(trf_data):
            weights.append(None)
            continue
        hidden = trf_data.model_output["last_hidden_state"]  # (n_spans, seq_len, width)
        if mode == "cls":
            weight = xp.zeros(hidden.shape[:2], dtype=hidden.dtype)
            weight[0, 0] = 1.0
        else:
            mask = xp.asarray(trf_data.wordpieces.attention_mask, dtype=hidden.dtype)
            mask = mask[:, : hidden.shape[1]]
            weight = mask / max(float(mask.sum()), 1e-9)
        output[i] = (hidden * weight[:, :, None]).sum(axis=(0, 1))
        weights.append(weight)

    def backprop(d_output: Floats2d) -> List[TransformerData]:
        d_trf_datas: List[TransformerData] = []
        for i, (trf_data, weight) in enumerate(zip(trf_datas, weights)):
            if weight is None:
                # Empty doc: the transformer produced nothing for it (as in spacy-transformers'
                # trfs2arrays, no gradient entry is sent back for it).
                continue
            d_hidden = weight[:, :, None] * (d_output[i] * grad_factor)[None, None, :]
            d_trf_datas.append(
                TransformerData(
                    model_output=ModelOutput(
                        last_hidden_state=d_hidden.astype(trf_data.model_output["last_hidden_state"].dtype)
                    ),
                    wordpieces=trf_data.wordpieces,
                    align=trf_data.align,
                )
            )
        return d_trf_datas

    return output, backprop
