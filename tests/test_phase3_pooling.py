"""Phase 3 pools the way phases 1-2 trained the encoder: `pooling = null` (textcat.cfg) reads
it from the encoder directory, a contradicting explicit value is a one-line error, and a
saved pipeline keeps its pooling even when the encoder directory is gone."""

import shutil
from pathlib import Path

import numpy
import pytest
import spacy
import torch
from spacy.training import Example
from spacy.util import load_config, load_model_from_config

from spacy_threephase.encoder import load_encoder, save_encoder, tokenize
from spacy_threephase.errors import UserError

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "textcat.cfg"
TRAIN = [
    ("play some jazz music in the kitchen", "music"),
    ("what is the weather like in paris tomorrow", "weather"),
    ("book a table for two at an italian restaurant", "food"),
]


def saved_encoder(source: Path, out: Path, pooling: str) -> Path:
    """An encoder directory as phases 1-2 write it (threephase.json and 1_Pooling)."""
    enc = load_encoder(source)
    save_encoder(enc.model, enc.tokenizer, out, pooling=pooling, max_length=enc.max_length)
    return out


def examples_for(nlp, rows, labels):
    return [Example.from_dict(nlp.make_doc(t), {"cats": {lab: float(lab == y) for lab in labels}}) for t, y in rows]


def build_pipeline(encoder: Path, factory: str = "textcat", **model_overrides):
    """configs/textcat.cfg as phase 3 builds it, initialized on TRAIN."""
    overrides = {
        "paths.encoder": str(encoder),
        "components.textcat.factory": factory,
        "components.textcat.model.hidden_width": 8,
    }
    overrides.update({f"components.textcat.model.{k}": v for k, v in model_overrides.items()})
    nlp = load_model_from_config(load_config(CONFIG, overrides=overrides, interpolate=True), auto_fill=True)
    examples = examples_for(nlp, TRAIN, sorted({y for _, y in TRAIN}))
    nlp.initialize(lambda: examples)
    return nlp


def pooling_of(nlp) -> str:
    model = nlp.get_pipe("textcat").model
    mode = model.layers[1].attrs["mode"]  # listener -> sentence_pooling -> hidden -> output
    assert model.attrs["pooling"] == mode
    return mode


def cls_vector(encoder: Path, text: str) -> numpy.ndarray:
    enc = load_encoder(encoder, pooling="cls")
    batch = tokenize(enc.tokenizer, [text], enc.max_length)
    with torch.no_grad():
        return enc.model(**batch).last_hidden_state[0, 0].numpy()


def test_null_pooling_follows_a_cls_trained_encoder(tiny_encoder_dir, tmp_path):
    encoder = saved_encoder(tiny_encoder_dir, tmp_path / "cls_encoder", "cls")
    nlp = build_pipeline(encoder)
    assert pooling_of(nlp) == "cls"
    text = "play some jazz music"
    doc = nlp(text)
    pooled = nlp.get_pipe("textcat").model.layers[1].predict([doc._.trf_data])[0]
    numpy.testing.assert_allclose(pooled, cls_vector(encoder, text), rtol=1e-4, atol=1e-5)


def test_null_pooling_defaults_to_mean(tiny_encoder_dir, tmp_path):
    assert pooling_of(build_pipeline(tiny_encoder_dir)) == "mean"  # records no pooling
    assert pooling_of(build_pipeline(saved_encoder(tiny_encoder_dir, tmp_path / "m", "mean"))) == "mean"


def test_explicit_pooling_that_contradicts_the_encoder_is_an_error(tiny_encoder_dir, tmp_path):
    encoder = saved_encoder(tiny_encoder_dir, tmp_path / "cls_encoder", "cls")
    with pytest.raises(UserError) as err:
        build_pipeline(encoder, pooling="mean")
    message = str(err.value)
    assert "\n" not in message and "'mean'" in message and "'cls'" in message and str(encoder) in message
    assert pooling_of(build_pipeline(encoder, pooling="cls")) == "cls"  # agreeing is fine


def test_explicit_pooling_chooses_for_a_plain_encoder(tiny_encoder_dir, tmp_path):
    # 1_Pooling alone (a sentence-transformers directory) is a default, as in phases 1-2
    plain = tmp_path / "plain"
    shutil.copytree(saved_encoder(tiny_encoder_dir, tmp_path / "st", "mean"), plain)
    (plain / "threephase.json").unlink()
    assert pooling_of(build_pipeline(plain)) == "mean"
    assert pooling_of(build_pipeline(plain, pooling="cls")) == "cls"


def test_saved_pipeline_keeps_its_pooling_without_the_encoder(tiny_encoder_dir, tmp_path):
    encoder = saved_encoder(tiny_encoder_dir, tmp_path / "cls_encoder", "cls")
    nlp = build_pipeline(encoder)
    nlp.to_disk(tmp_path / "pipeline")
    expected = nlp("play some jazz music").cats
    shutil.rmtree(encoder)
    loaded = spacy.load(tmp_path / "pipeline")
    assert pooling_of(loaded) == "cls"
    got = loaded("play some jazz music").cats
    assert got == pytest.approx(expected, abs=1e-6)
