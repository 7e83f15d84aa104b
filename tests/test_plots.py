"""Plots on the tiny encoder (skipped without matplotlib) and the missing-matplotlib message."""

import pytest
from typer.testing import CliRunner

from spacy_threephase.cli import app

from test_architecture import LABELS, TRAIN, make_nlp
from test_contrastive_train import LABELLED, write_corpus


def _png_size(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def test_plot_projection_and_confusion(tmp_path, tiny_encoder_dir):
    pytest.importorskip("matplotlib")
    from spacy.tokens import DocBin

    corpus = write_corpus(tmp_path / "corpus", LABELLED, LABELLED)
    nlp, _ = make_nlp(tiny_encoder_dir)
    nlp.to_disk(tmp_path / "model")
    db = DocBin()
    for text, label in TRAIN:
        doc = nlp.make_doc(text)
        doc.cats = {l: float(l == label) for l in LABELS}
        db.add(doc)
    db.to_disk(tmp_path / "test.spacy")
    # evaluate writes the confusion-matrix PNG next to metrics.json and prints its path
    res = CliRunner().invoke(app, ["evaluate", str(tmp_path / "model"), str(tmp_path / "test.spacy"), str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "m" / "confusion_matrix.png").exists() and "confusion_matrix.png" in res.output
    res = CliRunner().invoke(app, [
        "plot", str(tmp_path / "plots"), "--corpus", str(corpus), "--base", str(tiny_encoder_dir),
        "--dae", str(tiny_encoder_dir), "--contrastive", str(tmp_path / "missing"),
        "--pipeline", str(tmp_path / "model"), "--metrics", str(tmp_path / "m" / "metrics.json"),
    ])
    assert res.exit_code == 0, res.output
    assert "skipped" in res.output and "missing" in res.output
    w, h = _png_size(tmp_path / "plots" / "projection_pca.png")
    assert w > 2 * h  # three panels side by side
    assert _png_size(tmp_path / "plots" / "confusion_matrix.png")[0] > 200


def test_pipeline_vectors_equal_encoder_vectors(tiny_encoder_dir, tmp_path):
    """The FT panel's vectors are the same function as phases 1-2's (untrained pipeline)."""
    import numpy

    from spacy_threephase.plots import encoder_vectors, pipeline_vectors

    nlp, _ = make_nlp(tiny_encoder_dir)
    nlp.to_disk(tmp_path / "model")
    texts = [t for t, _ in LABELLED]
    a = encoder_vectors(str(tiny_encoder_dir), texts)
    b = pipeline_vectors(tmp_path / "model", texts)
    assert numpy.allclose(a, b, atol=1e-4)


def test_plot_without_matplotlib_is_one_line(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    res = CliRunner().invoke(app, ["plot", str(tmp_path / "p")])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "matplotlib" in lines[0] and "pip install" in lines[0]
