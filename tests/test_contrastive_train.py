"""Phase 2 end to end on the tiny encoder: training effect, outputs, CLI behaviour."""

import json
from pathlib import Path

import pytest
from conftest import quick_phase_args
from typer.testing import CliRunner

from spacy_threephase.cli import app
from spacy_threephase.contrastive.train import train_contrastive

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "contrastive.cfg"

LABELLED = [
    ("play some jazz music in the kitchen", "Music"),
    ("play the new album by the beatles", "Music"),
    ("add this song to my workout playlist", "Music"),
    ("what is the weather like in paris tomorrow", "Weather"),
    ("will it rain in london this weekend", "Weather"),
    ("how hot will it be on friday", "Weather"),
    ("book a table for two at an italian restaurant", "Food"),
    ("reserve a restaurant near me for tonight", "Food"),
    ("find me a cheap place to eat sushi", "Food"),
    ("set an alarm for seven in the morning", "Alarm"),
    ("wake me up at six tomorrow", "Alarm"),
    ("turn off the alarm please", "Alarm"),
]

FAST = {
    "training.progress": False,
    "training.batch_size": 8,
    "training.learning_rate": 1e-3,
    "encoder.max_length": 32,
    "training.patience": 0,  # the tests count epochs
    "training.min_steps": 0,  # nor more epochs than asked
}


def write_corpus(path: Path, rows, dev_rows=None, meta=True):
    path.mkdir(parents=True, exist_ok=True)
    with (path / "train.jsonl").open("w") as fh:
        for text, label in rows:
            fh.write(json.dumps({"text": text, "labels": [label]}) + "\n")
    if dev_rows is not None:
        with (path / "dev.jsonl").open("w") as fh:
            for text, label in dev_rows:
                fh.write(json.dumps({"text": text, "labels": [label]}) + "\n")
    if meta:
        labels = sorted({lab for _, lab in rows})
        (path / "labels.json").write_text(json.dumps({"labels": labels, "multi_label": False, "hierarchical": False}))
    return path


def gap(model_dir, rows):
    from spacy_threephase.contrastive.embedding import encode
    from spacy_threephase.contrastive.selection import class_gap
    from spacy_threephase.encoder import load_encoder

    enc = load_encoder(str(model_dir), max_length=32)
    enc.model.eval()
    vecs = encode(enc, [t for t, _ in rows], "cpu")
    same, diff = class_gap(vecs, [lab for _, lab in rows])
    return same - diff


@pytest.mark.parametrize("sampler", ["class_batches", "paper"])
def test_training_separates_classes(tmp_path, tiny_encoder_dir, paper_cl_config, sampler, monkeypatch):
    """The default (class-aware batches, loss over every in-batch pair) and the paper's shuffled pairs,
    both encoding their batches without padding (packed_encoder.py)."""
    from spacy_threephase.contrastive import task

    packed = []
    own = task.packed_sentence_vectors
    monkeypatch.setattr(task, "packed_sentence_vectors", lambda *a: packed.append(1) or own(*a))
    corpus = write_corpus(tmp_path / "corpus", LABELLED, LABELLED)
    out = tmp_path / "out"
    config, extra = (CONFIG, {}) if sampler == "class_batches" else (paper_cl_config, {"pairs.multiplier": 10})
    summary = train_contrastive(
        config,
        corpus,
        out,
        encoder=str(tiny_encoder_dir),
        overrides={**FAST, "training.epochs": 6, "training.learning_rate": 3e-3, **extra},
    )
    assert summary["sampler"] == ("ClassBatchSampler" if sampler == "class_batches" else "ShuffledPairSampler")
    assert len(packed) >= 6  # every training step
    before, after = gap(tiny_encoder_dir, LABELLED), gap(out, LABELLED)
    # the tiny random encoder starts with all cosines ~0.95 (gap ~0)
    assert after > before + 0.05, (before, after)
    # outputs: HF model dir + pooling + logs
    for name in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "1_Pooling/config.json",
        "threephase.json",
        "imbalance.json",
        "metrics.json",
        "training_log.jsonl",
        "config.cfg",
    ]:
        assert (out / name).exists(), name
    meta = json.loads((out / "threephase.json").read_text())
    assert meta["pooling"] == "mean" and meta["max_length"] == 32 and meta["phase"] == "contrastive"
    metrics = json.loads((out / "metrics.json").read_text())
    assert "knn_acc" in metrics["baseline"] and "spearman" in metrics["baseline"]
    assert metrics["best_epoch"] == summary["best_epoch"] >= 1
    assert len(metrics["epochs"]) == 6
    assert not list(tmp_path.glob(".out.tmp-*"))
    from confection import Config

    assert Config().from_disk(out / "config.cfg")["encoder"]["name"] == str(tiny_encoder_dir)


def test_supcon_and_carved_dev_and_single_example_class(tmp_path, tiny_encoder_dir, paper_cl_config):
    rows = LABELLED + [("tell me a joke about cats", "Joke")]  # a class with one example
    corpus = write_corpus(tmp_path / "corpus", rows, dev_rows=None, meta=False)
    out = tmp_path / "out"
    summary = train_contrastive(
        paper_cl_config,
        corpus,
        out,
        encoder=str(tiny_encoder_dir),
        overrides={
            **FAST,
            "training.epochs": 1,
            "loss.@misc": "spacy_threephase.supcon_loss.v1",
            "loss.temperature": 0.2,
        },
    )
    assert summary["dev_carved_from_train"] and summary["dev_texts"] >= 4
    assert summary["input_kind"] == "texts"
    table = {r["class"]: r for r in json.loads((out / "imbalance.json").read_text())["classes"]}
    assert table["Joke"]["before"] == 1 and table["Joke"]["after"] == 4  # f(1) = max_ratio = 4
    out2 = tmp_path / "out2"
    train_contrastive(CONFIG, corpus, out2, encoder=str(tiny_encoder_dir), overrides={**FAST, "training.epochs": 1})
    assert (out2 / "model.safetensors").exists()


def _cli(args):
    return CliRunner().invoke(app, args)


def test_cli_refuses_overwrite_and_reports_bad_keys(tmp_path, tiny_encoder_dir):
    corpus = write_corpus(tmp_path / "corpus", LABELLED, LABELLED[::2])
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    base = [
        "contrastive",
        str(CONFIG),
        str(corpus),
        str(out),
        "--encoder",
        str(tiny_encoder_dir),
        "--training.progress",
        "false",
    ]
    res = _cli(base)
    assert res.exit_code == 1
    assert "--overwrite" in res.output and "Traceback" not in res.output
    assert (out / "keep.txt").exists()
    res = _cli(base + ["--overwrite", "--training.nonsense", "3"])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "nonsense" in lines[0], res.output
    res = _cli(base + ["--overwrite", *quick_phase_args(8, max_length=32)])
    assert res.exit_code == 0, res.output
    assert (out / "model.safetensors").exists() and not (out / "keep.txt").exists()


def test_hierarchical_and_multilabel_corpora_train(tmp_path, tiny_encoder_dir):
    hier = [
        (t, {"Music": "Media/Music", "Weather": "Info/Weather", "Food": "Info/Food", "Alarm": "Media/Alarm"}[lab])
        for t, lab in LABELLED
    ]
    corpus = write_corpus(tmp_path / "hier", hier, hier)
    (corpus / "labels.json").write_text(
        json.dumps({"labels": sorted({lab for _, lab in hier}), "multi_label": False, "hierarchical": True})
    )
    summary = train_contrastive(
        CONFIG, corpus, tmp_path / "out_h", encoder=str(tiny_encoder_dir), overrides={**FAST, "training.epochs": 1}
    )
    assert (
        summary["input_kind"] == "texts" and summary["steps_per_epoch"] == 2
    )  # 4 paths x 3 texts: 4 chunks of 4, 2 per batch
    multi = tmp_path / "multi"
    multi.mkdir()
    with (multi / "train.jsonl").open("w") as fh:
        for i, (t, lab) in enumerate(LABELLED):
            fh.write(json.dumps({"text": t, "labels": [lab, "Extra"] if i % 3 == 0 else [lab]}) + "\n")
    summary = train_contrastive(
        CONFIG, multi, tmp_path / "out_m", encoder=str(tiny_encoder_dir), overrides={**FAST, "training.epochs": 1}
    )
    assert summary["dev_carved_from_train"]


def test_cli_bad_data_is_one_line(tmp_path, tiny_encoder_dir):
    corpus = write_corpus(tmp_path / "corpus", LABELLED)
    with (corpus / "train.jsonl").open("a") as fh:
        fh.write('{"text": "no labels here"}\n')
    res = _cli(["contrastive", str(CONFIG), str(corpus), str(tmp_path / "out"), "--encoder", str(tiny_encoder_dir)])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "train.jsonl:13" in lines[0], res.output
    assert not (tmp_path / "out").exists()


def test_ordered_labels_reach_phase_2(tmp_path, tiny_encoder_dir, monkeypatch):
    """labels.json's label_order gives the in-batch loss ordinal targets (labels.py)."""
    import numpy

    from spacy_threephase.contrastive import task

    order = ["Alarm", "Food", "Weather", "Music"]  # any order: the scores follow it
    corpus = write_corpus(tmp_path / "ordered", LABELLED, LABELLED)
    meta = json.loads((corpus / "labels.json").read_text())
    (corpus / "labels.json").write_text(json.dumps({**meta, "label_order": order}))
    seen = []
    own = task.ContrastiveTask.loss

    def spy(self, encoder, pooling, batch):
        seen.append(self.index.score_matrix(numpy.asarray(batch)))
        return own(self, encoder, pooling, batch)

    monkeypatch.setattr(task.ContrastiveTask, "loss", spy)
    summary = train_contrastive(
        CONFIG, corpus, tmp_path / "out", encoder=str(tiny_encoder_dir), overrides={**FAST, "training.epochs": 1}
    )
    assert summary["label_scores"] == "ordinal" and summary["label_order"] == order
    assert {round(float(x), 4) for m in seen for x in m.ravel()} <= {0.0, 0.3333, 0.6667, 1.0}
    assert any(0 < x < 1 for m in seen for x in m.ravel())  # neighbours on the scale are partly alike


def test_run_says_whether_positives_are_sorted(tmp_path, tiny_encoder_dir, capsys):
    """The shipped sampler draws the positives of a small corpus at random and says so in the
    run's description; with `random_below = 0` the same run sorts them by length."""
    corpus = write_corpus(tmp_path / "corpus", LABELLED, LABELLED)
    quick = {**FAST, "training.epochs": 1}
    train_contrastive(CONFIG, corpus, tmp_path / "out", encoder=str(tiny_encoder_dir), overrides=quick)
    said = capsys.readouterr().err
    assert f"positives at random ({len(LABELLED)} examples, fewer than random_below = 1000)" in said, said
    overrides = {**quick, "pairs.random_below": 0}
    train_contrastive(CONFIG, corpus, tmp_path / "out0", encoder=str(tiny_encoder_dir), overrides=overrides)
    said = capsys.readouterr().err
    assert "positives sorted by length" in said and "positives at random" not in said, said
