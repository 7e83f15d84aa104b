"""The same seed and data give the same result on the CPU, in all three phases."""

import json
from pathlib import Path

import spacy
import torch
from conftest import TINY_LABELLED, TINY_TEXTS, write_docbins
from safetensors.torch import load_file

from spacy_threephase.contrastive.train import train_contrastive
from spacy_threephase.dae.train import train_dae

REPO = Path(__file__).resolve().parents[1]

LABELLED = TINY_LABELLED[:9]


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_phase1_twice_identical_weights(tiny_encoder_dir, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TINY_TEXTS) + "\n", encoding="utf8")
    settings = {"training.progress": False, "training.batch_size": 4, "training.epochs": 2, "encoder.max_length": 32}
    settings["training.min_steps"] = 0
    for name in ("a", "b"):
        train_dae(
            REPO / "configs" / "dae.cfg", texts, tmp_path / name, encoder=str(tiny_encoder_dir), overrides=settings
        )
    assert same_weights(tmp_path / "a", tmp_path / "b")
    assert not same_weights(tmp_path / "a", tiny_encoder_dir)  # it did train


def test_phase2_twice_identical_metrics(tiny_encoder_dir, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = (json.dumps({"text": t, "labels": [y]}) + "\n" for t, y in LABELLED)
    (corpus / "train.jsonl").write_text("".join(lines), encoding="utf8")
    settings = {
        "training.progress": False,
        "training.batch_size": 2,
        "pairs.per_class": 2,
        "training.epochs": 2,
        "training.min_steps": 0,
        "training.learning_rate": 1e-3,
        "encoder.max_length": 32,
        "training.dev_fraction": 0.34,
    }
    metrics = []
    for name in ("a", "b"):
        train_contrastive(
            REPO / "configs" / "contrastive.cfg",
            corpus,
            tmp_path / name,
            encoder=str(tiny_encoder_dir),
            overrides=settings,
        )
        m = json.loads((tmp_path / name / "metrics.json").read_text())
        m.pop("eval_seconds")  # wall-clock times, the only things allowed to differ
        for epoch in m["epochs"]:
            epoch.pop("seconds")
        metrics.append(m)
    assert metrics[0] == metrics[1]
    assert same_weights(tmp_path / "a", tmp_path / "b")


def test_phase3_twice_identical_scores_and_weights(tiny_encoder_dir, tmp_path):
    """Phase 3's own loop (`spacy threephase train`, which the project runs); tests/test_phase3_parity.py
    checks that `spacy train` gives the same steps."""
    import io

    from spacy_threephase.finetune import train_pipeline

    write_docbins(tmp_path, {"train": LABELLED, "dev": LABELLED[::2]})
    overrides = {
        "paths.train": str(tmp_path / "train.spacy"),
        "paths.dev": str(tmp_path / "dev.spacy"),
        "paths.encoder": str(tiny_encoder_dir),
        "training.max_epochs": 3,
        "training.eval_frequency": 2,
        "training.batcher.size": 4,
        "training.optimizer.warmup_steps": 2,
        "components.textcat.model.hidden_width": 8,
    }
    long_text = " ".join(["play some jazz music in the kitchen"] * 40)  # past model_max_length
    probe = ["wake me up at seven", "is it going to snow", long_text]
    runs = []
    for name in ("a", "b"):
        log = io.StringIO()
        train_pipeline(REPO / "configs" / "textcat.cfg", tmp_path / name, overrides=overrides, stdout=log)
        # the console log's rows: epoch, step, losses, scores
        scores = [line.split() for line in log.getvalue().splitlines() if line.strip()[:1].isdigit()]
        out = []
        for model in ("model-last", "model-best"):
            meta = json.loads((tmp_path / name / model / "meta.json").read_text())
            trained = spacy.load(tmp_path / name / model)
            weights = trained.get_pipe("transformer").model.transformer.state_dict()
            out.append((meta["performance"], [doc.cats for doc in trained.pipe(probe)], weights))
        runs.append((scores, out))
    assert len(runs[0][0]) >= 4 and runs[0][0] == runs[1][0]  # the logged losses and scores of every evaluation
    for (perf_a, cats_a, w_a), (perf_b, cats_b, w_b) in zip(runs[0][1], runs[1][1]):
        assert perf_a == perf_b and cats_a == cats_b
        assert w_a.keys() == w_b.keys() and all(torch.equal(w_a[k], w_b[k]) for k in w_a)
    assert all(abs(sum(cats.values()) - 1) < 1e-5 for cats in runs[0][1][0][1])
