"""Registered thinc architectures: the phase-3 classifier head and the encoder loader."""

import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from spacy import registry
from spacy.tokens import Doc
from spacy_transformers.layers import TransformerListener
from thinc.api import Gelu, HardSwish, Linear, Logistic, Mish, Model, Relu, Softmax, Swish, chain
from thinc.layers.chain import forward as chain_forward
from thinc.types import Floats2d

from . import empty_docs
from .encoder import META_FILE, _load_error, adapted_by, check_pooling, loadable_encoder, read_pooling, resolve_encoder
from .errors import SettingError, UserError
from .layers import sentence_pooling

ACTIVATIONS: Dict[str, Callable[..., Model]] = {
    "gelu": Gelu,
    "relu": Relu,
    "swish": Swish,
    "mish": Mish,
    "hard_swish": HardSwish,
}


@registry.architectures("spacy_threephase.TextCatMLP.v1")
def build_textcat_mlp(
    exclusive_classes: bool = True,
    hidden_width: int = 256,
    activation: str = "gelu",
    dropout: float = 0.1,
    pooling: Optional[str] = None,
    freeze_encoder: bool = False,
    grad_factor: float = 1.0,
    upstream: str = "*",
    nO: Optional[int] = None,
    encoder: Optional[str] = None,
) -> Model[List[Doc], Floats2d]:
    """Two-layer MLP over the pooled sentence vector of an upstream `transformer`.

    sentence vector -> Linear(width, hidden_width) -> activation -> dropout ->
    Linear(hidden_width, n_labels) -> softmax (exclusive_classes) or logistic (multi-label).
    With freeze_encoder the transformer still runs, but no gradient is sent back to it, so
    its weights stay as they are (its backward pass and optimizer step are skipped).

    pooling None means: what the encoder directory says (phases 1-2 save it), else mean. A
    fixed "mean" would silently throw away what a cls-trained encoder learned. `encoder` is
    the transformer component's model name (textcat.cfg interpolates it). The pooling is
    resolved when the model is initialized (training), not when it is built: a pipeline
    loaded from disk keeps the pooling it was trained with (it is saved in the model's
    attrs), even where the encoder directory it started from is gone.
    """
    if activation not in ACTIVATIONS:
        raise SettingError(f"TextCatMLP: unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    if not 0.0 <= dropout < 1.0:
        raise SettingError(f"TextCatMLP: dropout must be in [0, 1), got {dropout}")
    hidden = ACTIVATIONS[activation](nO=hidden_width, dropout=dropout, normalize=False)
    if exclusive_classes:
        output_layer = Softmax(nO=nO)
    else:
        output_layer = chain(Linear(nO=nO), Logistic())
    listener = TransformerListener(upstream_name=upstream)
    if freeze_encoder:
        listener = stop_gradient(listener)
    if pooling is not None:
        check_pooling(pooling)
    pooled = sentence_pooling(pooling or "mean", grad_factor=0.0 if freeze_encoder else grad_factor)
    chained = chain(listener, pooled, hidden, output_layer)
    model = Model(
        "textcat_mlp",
        head_first_forward,
        init=chained.init,
        dims={name: chained.maybe_get_dim(name) for name in chained.dim_names},
        layers=chained.layers,
        attrs={"encoder_adapted_by": []},
    )
    model.attrs["multi_label"] = not exclusive_classes
    model.attrs["pooling"] = pooled.attrs["mode"]  # until init resolves a None
    model.attrs["freeze_encoder"] = freeze_encoder
    model.set_ref("output_layer", output_layer if exclusive_classes else output_layer.layers[0])
    chain_init = model.init

    def init(model: Model, X=None, Y=None):
        mode = resolve_pooling(pooling, encoder)
        model.attrs["pooling"] = mode
        pooled.attrs["mode"] = mode
        model.attrs["encoder_adapted_by"] = encoder_adapted_by(encoder)
        return chain_init(model, X=X, Y=Y)

    model.init = init
    empty_docs.install()
    return model


def saved_pooling(encoder: Optional[str]) -> Tuple[Optional[str], Optional[Path], bool]:
    """(pooling, directory, trained) an encoder setting's directory records, if it is local.

    trained: the pooling comes from threephase.json, i.e. phases 1-2 trained the encoder
    with it. A plain sentence-transformers directory (1_Pooling only) gives a default, which
    may be overridden, as phases 1-2 allow with --encoder.pooling.
    """
    if not encoder:
        return None, None, False
    try:
        path = Path(resolve_encoder(encoder))
    except UserError:  # the transformer component reports a bad encoder setting itself
        return None, None, False
    if not path.is_dir():  # a Hugging Face hub name
        return None, None, False
    meta = path / META_FILE
    if meta.exists():
        try:
            trained = json.loads(meta.read_text(encoding="utf8")).get("pooling")
        except (ValueError, AttributeError):
            raise UserError(f"{meta}: not a valid JSON object") from None
        if trained:
            return check_pooling(trained), path, True
    return read_pooling(path), path, False


def resolve_pooling(pooling: Optional[str], encoder: Optional[str]) -> str:
    """The pooling phase 3 uses: the configured one, else the encoder directory's, else mean."""
    saved, path, trained = saved_pooling(encoder)
    if pooling in (None, ""):
        return saved or "mean"
    check_pooling(pooling)
    if trained and saved != pooling:
        raise UserError(
            f"{path}: components.textcat.model.pooling is {pooling!r} but this encoder was trained with {saved!r} "
            f"pooling ({META_FILE}); set the pooling to null (use the encoder's) or to {saved!r}"
        )
    return pooling


HEAD_ONLY: Set[int] = set()  # ids of textcat_mlp models whose next updates train the head alone


def head_first_forward(model: Model, X, is_train: bool):
    """The chain listener >> pooling >> MLP. While the model is in HEAD_ONLY (put there by
    `spacy_threephase.head_first.v1` before an update; not saved with the model), the
    listener's backprop is not called, so the transformer gets no gradient: no backward pass
    through it, and its weights and optimizer moments stay as they are."""
    if model.id not in HEAD_ONLY:
        return chain_forward(model, X, is_train)
    listener, *head = model.layers
    H, _ = listener(X, is_train)
    callbacks = []
    for layer in head:
        H, callback = layer(H, is_train)
        callbacks.append(callback)

    def backprop(dY):
        for callback in reversed(callbacks):
            dY = callback(dY)
        return []

    return H, backprop


def encoder_adapted_by(encoder: Optional[str]) -> List[str]:
    """The phases that changed the encoder setting's weights ([] for a base encoder or hub name)."""
    _, path, _ = saved_pooling(encoder)
    return adapted_by(path) if path is not None else []


def stop_gradient(layer: Model) -> Model:
    """Run `layer` forward; never call its backprop (so upstream weights are not updated)."""

    def forward(model: Model, X, is_train: bool):
        Y, _ = model.layers[0](X, is_train)
        return Y, lambda dY: []

    return Model(f"stop_gradient({layer.name})", forward, layers=[layer], dims={"nO": None})


@registry.architectures("spacy_threephase.TransformerModel.v1")
def build_transformer_model(
    name: str,
    get_spans: Callable,
    tokenizer_config: Dict[str, Any] = {},
    transformer_config: Dict[str, Any] = {},
    mixed_precision: bool = False,
    grad_scaler_config: Dict[str, Any] = {},
) -> Model:
    """spacy-transformers' TransformerModel.v3, with `name` resolved like phases 1-2 do:
    "default" is the offline all-MiniLM-L6-v2 copy, local paths must exist, anything else
    is a Hugging Face hub name. Empty docs are encoded like a whitespace-only text (see
    `empty_docs`)."""
    build = registry.get("architectures", "spacy-transformers.TransformerModel.v3")
    try:
        source = resolve_encoder(name)
    except UserError:
        # A packaged pipeline never needs the source again (its weights are serialized),
        # so a missing path only becomes an error when the model is initialized.
        source = name
    model = build(
        name=source,
        get_spans=get_spans,
        tokenizer_config=dict(tokenizer_config),
        transformer_config=dict(transformer_config),
        mixed_precision=mixed_precision,
        grad_scaler_config=dict(grad_scaler_config),
    )
    hf_init = model.init

    def init(model: Model, X=None, Y=None):
        if model.attrs["has_transformer"]:
            return hf_init(model, X=X, Y=Y)
        model.attrs["name"] = loadable_encoder(model.attrs["name"])
        try:
            return hf_init(model, X=X, Y=Y)
        except OSError as err:  # hub name not reachable / not cached, broken model directory
            raise _load_error(model.attrs["name"], err) from None

    model.init = init
    empty_docs.install()
    return empty_docs.allow_empty_docs(model)
