"""The evaluate command on a small trained pipeline (tiny encoder)."""

import json

from test_architecture import LABELS, TRAIN, make_nlp
from typer.testing import CliRunner

from spacy_threephase.cli import app


def test_evaluate_writes_metrics_json_and_table(tiny_encoder_dir, tmp_path):
    from spacy.tokens import DocBin

    nlp, _ = make_nlp(tiny_encoder_dir)
    nlp.to_disk(tmp_path / "model")
    db = DocBin()
    for text, label in TRAIN:
        doc = nlp.make_doc(text)
        doc.cats = {lab: float(lab == label) for lab in LABELS}
        db.add(doc)
    db.to_disk(tmp_path / "test.spacy")
    result = CliRunner().invoke(
        app, ["evaluate", str(tmp_path / "model"), str(tmp_path / "test.spacy"), str(tmp_path / "m")]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["n_examples"] == len(TRAIN)
    assert set(metrics["per_class"]) == set(LABELS)
    assert sum(map(sum, metrics["confusion_matrix"])) == len(TRAIN)
    assert "accuracy" in result.output and "confusion matrix" in result.output


def test_evaluate_missing_model_is_one_line_error(tmp_path):
    result = CliRunner().invoke(
        app, ["evaluate", str(tmp_path / "nope"), str(tmp_path / "t.spacy"), str(tmp_path / "m")]
    )
    assert result.exit_code == 1
    assert "nope" in result.output and "Traceback" not in result.output


def test_evaluate_gpu_id_without_a_usable_gpu_is_one_line_error(tmp_path, monkeypatch):
    """--gpu-id goes to thinc before the pipeline is loaded; where spaCy cannot use the GPU
    the command exits 1 with one line naming the flag (before: thinc's ValueError traceback)."""
    import thinc.api

    def no_gpu(gpu_id):
        raise ValueError("GPU is not accessible. Was the library installed correctly?")

    monkeypatch.setattr(thinc.api, "require_gpu", no_gpu)
    result = CliRunner().invoke(
        app, ["evaluate", str(tmp_path / "nope"), str(tmp_path / "t.spacy"), str(tmp_path / "m"), "--gpu-id", "0"]
    )
    assert result.exit_code == 1
    assert "--gpu-id 0: spaCy cannot use that GPU" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "m").exists()
