"""Selection in phases 1, 2 (and Joint, same engine): the input encoder is a candidate, the best
candidate's weights are the ones written, phase 1 selects on dev, selection survives resume."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import TINY_TEXTS
from safetensors.torch import load_file
from test_contrastive_train import LABELLED, write_corpus

from spacy_threephase.callbacks import step_callback
from spacy_threephase.contrastive.train import train_contrastive
from spacy_threephase.dae.train import train_dae

REPO = Path(__file__).resolve().parents[1]
DAE_CONFIG = REPO / "configs" / "dae.cfg"
CL_CONFIG = REPO / "configs" / "contrastive.cfg"
CL = {
    "training.progress": False,
    "training.batch_size": 4,
    "training.epochs": 3,
    "training.min_steps": 0,
    "training.learning_rate": 3e-3,
    "encoder.max_length": 32,
    "training.eval_steps": 1,
    "pairs.per_class": 2,
    "training.patience": 0,  # every step evaluated and trained: the tests follow the whole run
}
# the tiny encoder's word embeddings are random and tied to the LM head: trained here, so that a
# huge learning rate really ruins the model (the selection tests below need a phase that harms)
DAE = {
    "training.progress": False,
    "training.batch_size": 4,
    "encoder.max_length": 32,
    "training.epochs": 2,
    "training.min_steps": 0,
    "training.train_word_embeddings": True,
}


def weights(directory: Path) -> dict:
    return load_file(str(directory / "model.safetensors"))


def digest(state: dict) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def test_a_phase_that_only_makes_dev_worse_writes_its_input_unchanged(tiny_encoder_dir, tmp_path, capsys):
    """Phase 1 with a destructive learning rate: every evaluation after training is worse
    than the input's held-out reconstruction loss, so the input's weights are written."""
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TINY_TEXTS * 4) + "\n", encoding="utf8")  # 48 texts: 2 held out
    start = tmp_path / "start"  # the tiny encoder, as an earlier phase that changed it would record
    shutil.copytree(tiny_encoder_dir, start)
    (start / "threephase.json").write_text(json.dumps({"pooling": "mean", "adapted_by": ["joint"]}))
    out = train_dae(
        DAE_CONFIG,
        texts,
        tmp_path / "out",
        encoder=str(start),
        overrides={**DAE, "training.learning_rate": 1.0, "training.epochs": 1, "training.heldout_fraction": 0.1},
    )
    metrics = json.loads((out / "metrics.json").read_text())
    baseline, *later = metrics["evaluations"]
    assert baseline["step"] == 0 and later and all(e["score"] < baseline["score"] for e in later)
    assert metrics["selection"]["kept_input"] is True and metrics["selection"]["best_step"] == 0
    before, after = weights(tiny_encoder_dir), weights(out)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert "writing it unchanged" in capsys.readouterr().err
    meta = json.loads((out / "threephase.json").read_text())
    assert meta["selection"]["kept_input"] is True and meta["adapted_by"] == ["joint"]  # the input's record


def test_phase1_selects_on_dev_and_writes_the_best_steps_weights(tiny_encoder_dir, tmp_path):
    """With a labelled corpus, phase 1 scores dev accuracy (nearest centroid); the weights written are those
    of the best evaluation (recorded after every step by a callback), and re-scoring the
    written encoder gives the recorded best score."""
    from spacy_threephase.contrastive.corpus import read_corpus
    from spacy_threephase.contrastive.dev import dev_evaluator
    from spacy_threephase.encoder import load_encoder
    from spacy_threephase.settings import DAETrainingSection

    corpus = write_corpus(tmp_path / "corpus", LABELLED, LABELLED[::2])
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(t for t, _ in LABELLED) + "\n", encoding="utf8")
    seen = {}
    with step_callback(lambda phase, step, model: seen.__setitem__(step, digest(model.state_dict()))):
        out = train_dae(
            DAE_CONFIG,
            texts,
            tmp_path / "out",
            encoder=str(tiny_encoder_dir),
            overrides={
                **DAE,
                "training.learning_rate": 2e-3,
                "training.eval_steps": 1,
                "training.dev_corpus": str(corpus),
                "training.min_gain_z": 0,  # any gain counts (the check: test_significance.py)
            },
        )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["selection_score"] == "dev centroid_acc" and metrics["heldout_texts"] == 0
    assert [e["step"] for e in metrics["evaluations"]] == list(range(0, metrics["steps"] + 1))
    best = metrics["selection"]
    scores = [e["score"] for e in metrics["evaluations"]]
    assert best["best_score"] == max(scores) and scores.index(max(scores)) == best["best_step"]  # first of equals
    written = digest({k: v for k, v in weights(out).items()})
    if best["best_step"] > 0:
        assert written == seen[best["best_step"]]
    enc = load_encoder(str(out), max_length=32)
    c = read_corpus(corpus)
    score, _, _ = dev_evaluator(enc, "cpu", c.train, c.dev, DAETrainingSection(knn_max_train=10000))()
    assert score == pytest.approx(best["best_score"], abs=1e-6)


def test_phase2_writes_the_best_evaluation_not_the_last(tiny_encoder_dir, tmp_path):
    corpus = write_corpus(tmp_path / "corpus", LABELLED, LABELLED[1::2])
    seen = {}
    with step_callback(lambda phase, step, model: seen.__setitem__(step, digest(model.state_dict()))):
        m = train_contrastive(CL_CONFIG, corpus, tmp_path / "out", encoder=str(tiny_encoder_dir), overrides=CL)
    best = m["selection"]["best_step"]
    scores = {e["step"]: e["score"] for e in m["evaluations"]}
    assert scores[best] == max(scores.values()) and len(scores) == m["steps"] + 1
    written = digest(weights(tmp_path / "out"))
    if best == 0:
        assert all(torch.equal(v, weights(tiny_encoder_dir)[k]) for k, v in weights(tmp_path / "out").items())
    else:
        assert written == seen[best]
        if best != m["steps"]:
            assert written != seen[m["steps"]]


def test_selection_survives_an_interruption(tiny_encoder_dir, tmp_path, monkeypatch):
    """Interrupted after step 5 (checkpoints every 2 steps; evaluations every step), the same
    call resumes with the best-so-far candidate and ends like an uninterrupted run."""
    from faults import Interrupted, interrupt_at
    from test_resume import assert_same_weights

    corpus = write_corpus(tmp_path / "corpus", LABELLED, LABELLED[1::2])
    settings = {**CL, "training.checkpoint_every": 2}
    ref = train_contrastive(CL_CONFIG, corpus, tmp_path / "ref", encoder=str(tiny_encoder_dir), overrides=settings)
    with interrupt_at(5), pytest.raises(Interrupted):
        train_contrastive(CL_CONFIG, corpus, tmp_path / "out", encoder=str(tiny_encoder_dir), overrides=settings)
    again = train_contrastive(CL_CONFIG, corpus, tmp_path / "out", encoder=str(tiny_encoder_dir), overrides=settings)
    assert again["selection"] == ref["selection"]
    assert [e["score"] for e in again["evaluations"]] == [e["score"] for e in ref["evaluations"]]
    assert_same_weights(tmp_path / "out", tmp_path / "ref")


def test_selection_can_be_switched_off(tiny_encoder_dir, tmp_path):
    """select_best = false: no evaluation before training, the last step's weights are written."""
    corpus = write_corpus(tmp_path / "corpus", LABELLED, LABELLED[1::2])
    seen = {}
    with step_callback(lambda phase, step, model: seen.__setitem__(step, digest(model.state_dict()))):
        m = train_contrastive(
            CL_CONFIG,
            corpus,
            tmp_path / "out",
            encoder=str(tiny_encoder_dir),
            overrides={**CL, "training.select_best": False},
        )
    assert m["evaluations"][0]["step"] > 0 and m["selection"]["kept_input"] is False
    assert digest(weights(tmp_path / "out")) == seen[m["steps"]]
    assert json.loads((tmp_path / "out" / "threephase.json").read_text())["adapted_by"] == ["contrastive"]


def test_evaluations_use_bounded_samples_of_train_and_dev(tiny_encoder_dir, tmp_path, paper_cl_config):
    """knn_max_train / knn_max_dev cap what each evaluation encodes (stratified: every class
    keeps a text); the dev pairs of the Spearman tie-break come from the same dev sample."""
    from spacy_threephase.contrastive.corpus import read_corpus
    from spacy_threephase.contrastive.dev import stratified_subset

    corpus = write_corpus(tmp_path / "corpus", LABELLED, LABELLED)
    train = read_corpus(corpus).train
    small = stratified_subset(train, 4, seed=0)
    assert len(small) == 4 and len({k for k in small.keys}) == 4  # one per class
    assert stratified_subset(train, 0, seed=0) is train and stratified_subset(train, 100, seed=0) is train
    for config in (CL_CONFIG, paper_cl_config):
        settings = {k: v for k, v in CL.items() if config == CL_CONFIG or not k.startswith("pairs.")}
        m = train_contrastive(
            config,
            corpus,
            tmp_path / f"out-{config.stem}",
            encoder=str(tiny_encoder_dir),
            overrides={**settings, "training.epochs": 1, "training.knn_max_train": 4, "training.knn_max_dev": 5},
        )
        assert m["evaluations"] and all(0 <= e["metrics"]["knn_acc"] <= 1 for e in m["evaluations"])
        assert "spearman" in m["evaluations"][0]["metrics"]


def test_patience_stops_a_phase_that_stops_improving(tiny_encoder_dir, tmp_path, capsys):
    """With patience 2 and an evaluation every step, a destructive phase 1 stops after the
    second evaluation without a new best (step 2 of 11) and writes its input unchanged."""
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TINY_TEXTS * 4) + "\n", encoding="utf8")
    settings = {**DAE, "training.learning_rate": 1.0, "training.epochs": 1, "training.heldout_fraction": 0.1}
    settings.update({"training.eval_steps": 1, "training.patience": 2})
    out = train_dae(DAE_CONFIG, texts, tmp_path / "out", encoder=str(tiny_encoder_dir), overrides=settings)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 2 and [e["step"] for e in metrics["evaluations"]] == [0, 1, 2]
    assert metrics["selection"]["kept_input"] and len(metrics["epochs"]) == 1 and metrics["epochs"][0]["steps"] == 2
    assert "2 evaluations without a new best: stopping at step 2" in capsys.readouterr().err
    before, after = weights(tiny_encoder_dir), weights(out)
    assert all(torch.equal(before[k], after[k]) for k in before)
