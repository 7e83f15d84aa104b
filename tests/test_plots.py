"""Plots on the tiny encoder (skipped without matplotlib; CI installs the `plots` extra) and
the missing-matplotlib message. The figures are checked for what they show: one point per dev
text in every panel, at the coordinates of the projected vectors, and the confusion counts."""

import json
from collections import Counter

import numpy
import pytest
from conftest import REPO_ROOT
from test_architecture import LABELS, TRAIN, make_nlp
from test_contrastive_train import LABELLED, write_corpus
from typer.testing import CliRunner

from spacy_threephase.cli import app

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png(path):
    """A complete, decodable PNG of nonzero size; returns (width, height)."""
    from PIL import Image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.verify()  # checks the chunks' CRCs: a truncated or corrupt file fails here
    with Image.open(path) as im:
        im.load()  # and the pixel data decodes
        w, h = im.size
        assert w > 0 and h > 0
        # not a blank canvas: the plot drew something
        assert len(numpy.unique(numpy.asarray(im.convert("L")))) > 2
    return w, h


@pytest.fixture
def saved_figures(monkeypatch):
    """Record every figure the plots module writes (figure, path), then save it as usual."""
    from spacy_threephase import plots

    records = []
    real = plots._save

    def spy(fig, path):
        records.append((fig, path))
        return real(fig, path)

    monkeypatch.setattr(plots, "_save", spy)
    return records


def _panels(fig):
    """{panel title: {class label: (n, 2) offsets}} for the scatter panels of a figure."""
    out = {}
    for ax in fig.axes:
        if not ax.collections:
            continue
        out[ax.get_title()] = {c.get_label(): numpy.asarray(c.get_offsets()) for c in ax.collections}
    return out


def _model_and_test_set(tmp_path, tiny_encoder_dir):
    from spacy.tokens import DocBin

    nlp, _ = make_nlp(tiny_encoder_dir)
    nlp.to_disk(tmp_path / "model")
    db = DocBin()
    for text, label in TRAIN:
        doc = nlp.make_doc(text)
        doc.cats = {lab: float(lab == label) for lab in LABELS}
        db.add(doc)
    db.to_disk(tmp_path / "test.spacy")


def test_plot_projection_and_confusion(tmp_path, tiny_encoder_dir, saved_figures):
    pytest.importorskip("matplotlib")
    from spacy_threephase.plots import encoder_vectors, pipeline_vectors, project_2d

    corpus = write_corpus(tmp_path / "corpus", LABELLED, LABELLED)
    _model_and_test_set(tmp_path, tiny_encoder_dir)
    # evaluate writes the confusion-matrix PNG next to metrics.json and prints its path
    res = CliRunner().invoke(
        app, ["evaluate", str(tmp_path / "model"), str(tmp_path / "test.spacy"), str(tmp_path / "m")]
    )
    assert res.exit_code == 0, res.output
    assert "confusion_matrix.png" in res.output
    _check_png(tmp_path / "m" / "confusion_matrix.png")
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    saved_figures.clear()

    res = CliRunner().invoke(
        app,
        [
            "plot",
            str(tmp_path / "plots"),
            "--corpus",
            str(corpus),
            "--base",
            str(tiny_encoder_dir),
            "--dae",
            str(tiny_encoder_dir),
            "--contrastive",
            str(tmp_path / "missing"),
            "--pipeline",
            str(tmp_path / "model"),
            "--metrics",
            str(tmp_path / "m" / "metrics.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "skipped" in res.output and "missing" in res.output
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["confusion_matrix.png", "projection_pca.png"]
    w, h = _check_png(tmp_path / "plots" / "projection_pca.png")
    assert w > 2 * h  # three panels side by side
    assert _check_png(tmp_path / "plots" / "confusion_matrix.png")[0] > 200

    figures = {path.name: fig for fig, path in saved_figures}
    assert set(figures) == {"projection_pca.png", "confusion_matrix.png"}

    # the projection: one panel per existing phase output, one point per dev text, coloured by
    # class, at the PCA coordinates of that phase's vectors
    dev_texts = [t for t, _ in LABELLED]
    dev_labels = [lab for _, lab in LABELLED]
    panels = _panels(figures["projection_pca.png"])
    assert list(panels) == ["base encoder", "after DAE", "after FT (pipeline)"]
    expected_vectors = {
        "base encoder": encoder_vectors(str(tiny_encoder_dir), dev_texts),
        "after DAE": encoder_vectors(str(tiny_encoder_dir), dev_texts),
        "after FT (pipeline)": pipeline_vectors(tmp_path / "model", dev_texts),
    }
    for name, by_class in panels.items():
        assert {c: len(xy) for c, xy in by_class.items()} == dict(Counter(dev_labels)), name
        assert sum(len(xy) for xy in by_class.values()) == len(dev_texts)
        xy = project_2d(expected_vectors[name], "pca")
        for cls, points in by_class.items():
            want = xy[[i for i, lab in enumerate(dev_labels) if lab == cls]]
            numpy.testing.assert_allclose(points, want, atol=1e-4, err_msg=f"{name}/{cls}")
        # the points are spread out, not collapsed onto one spot
        allxy = numpy.concatenate(list(by_class.values()))
        assert numpy.ptp(allxy[:, 0]) > 0 and numpy.ptp(allxy[:, 1]) > 0

    # the confusion matrix: a count annotation for every nonzero cell, in gold x predicted order
    ax = figures["confusion_matrix.png"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == metrics["labels"]
    assert [t.get_text() for t in ax.get_yticklabels()] == metrics["labels"]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): int(t.get_text()) for t in ax.texts}
    cm = metrics["confusion_matrix"]
    assert cells == {(i, j): cm[i][j] for i in range(len(cm)) for j in range(len(cm)) if cm[i][j]}
    assert sum(cells.values()) == len(TRAIN)


def test_tsne_projection_has_one_point_per_dev_text(tmp_path, tiny_encoder_dir, saved_figures):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    from spacy_threephase.plots import plot_run

    corpus = write_corpus(tmp_path / "corpus", LABELLED, LABELLED)
    written = plot_run(
        tmp_path / "plots", corpus, [("base encoder", "encoder", str(tiny_encoder_dir))], method="tsne", limit=10
    )
    assert written["projection"] == tmp_path / "plots" / "projection_tsne.png" and written["skipped"] == []
    _check_png(written["projection"])
    ((fig, _),) = saved_figures
    (by_class,) = _panels(fig).values()
    assert sum(len(xy) for xy in by_class.values()) == 10  # --limit: a seeded sample of 10
    assert numpy.isfinite(numpy.concatenate(list(by_class.values()))).all()


def test_pipeline_vectors_equal_encoder_vectors(tiny_encoder_dir, tmp_path):
    """The FT panel's vectors are the same function as phases 1-2's (untrained pipeline)."""
    from spacy_threephase.plots import encoder_vectors, pipeline_vectors

    nlp, _ = make_nlp(tiny_encoder_dir)
    nlp.to_disk(tmp_path / "model")
    texts = [t for t, _ in LABELLED]
    a = encoder_vectors(str(tiny_encoder_dir), texts)
    b = pipeline_vectors(tmp_path / "model", texts)
    assert a.shape == (len(texts), 32)
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


def test_ci_installs_the_plots_extra():
    """CI runs the README's test command verbatim, and that command installs matplotlib (the
    `plots` extra), so the plot tests above run in CI instead of being skipped."""
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf8")
    command = [ln for ln in ci.splitlines() if "pytest" in ln]
    assert len(command) == 1
    assert command[0] in (REPO_ROOT / "README.md").read_text(encoding="utf8")
    assert '".[minilm,test,plots]"' in command[0]
