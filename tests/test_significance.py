"""min_gain_z: the best checkpoint replaces the input encoder only when its per-text dev gain
over the input is significant (a paired z test; McNemar's for 0/1 correctness)."""

import json
import math

import numpy
import pytest
import torch
from test_contrastive_train import LABELLED, write_corpus
from test_selection import CL, CL_CONFIG, DAE_CONFIG, weights

from spacy_threephase.contrastive.train import train_contrastive
from spacy_threephase.settings import DAETrainingSection, TrainingSection
from spacy_threephase.significance import paired_z
from spacy_threephase.training import Trainer

CONFIGS = {name: DAE_CONFIG.parent / f"{name}.cfg" for name in ("dae", "contrastive", "joint")}


def hits(n: int, right: set) -> numpy.ndarray:
    return numpy.array([i in right for i in range(n)])


def test_paired_z_on_correctness_is_mcnemars_test():
    """b texts lost, c gained, n texts: z = (c - b) / sqrt(b + c) up to sqrt((n - 1) / (n - (c - b)^2 / (b + c)))."""
    n, before = 200, hits(200, set(range(100)))
    after = hits(200, set(range(10, 100)) | set(range(100, 130)))  # b = 10 lost, c = 30 gained
    b, c = 10, 30
    mcnemar = (c - b) / math.sqrt(b + c)
    factor = math.sqrt((n - 1) / (n - (c - b) ** 2 / (b + c)))
    assert paired_z(before, after) == pytest.approx(mcnemar * factor, rel=1e-12)
    assert paired_z(after, before) == pytest.approx(-mcnemar * factor, rel=1e-12)
    assert paired_z(before, before) == 0.0
    assert paired_z(before, after) > 1.645 > paired_z(before, hits(200, set(range(3, 100)) | {150, 151, 152, 153, 154}))
    assert paired_z(hits(4, set()), hits(4, {0, 1, 2, 3})) == math.inf  # every text gained
    with pytest.raises(ValueError, match="200 scores before, 4 after"):
        paired_z(before, hits(4, set()))


class Toy(torch.nn.Module):
    """A model whose weights move at every step (towards 1), so each step's weights differ."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3))

    def forward(self, batch):
        return ((self.w - 1.0) ** 2).sum()


def scripted(per_evaluation, with_items=True):
    """An evaluator returning the given per-text 0/1 scores, one list per evaluation, in order."""
    calls = iter(per_evaluation)

    def evaluate():
        h = next(calls)
        metrics = {"centroid_acc": float(h.mean())}
        return (float(h.mean()), metrics, h) if with_items else (float(h.mean()), metrics)

    return evaluate


N = 100
INPUT = hits(N, set(range(50)))
NOISE = hits(N, set(range(8, 50)) | set(range(50, 61)))  # 8 lost, 11 gained: +3 texts, z ~0.7
CLEAR = hits(N, set(range(2, 50)) | set(range(50, 72)))  # 2 lost, 22 gained: z ~4.5
WORSE = hits(N, set(range(40)))


def fit(tmp_path, evaluations, min_gain_z, with_items=True, **extra):
    settings = TrainingSection(
        epochs=1, batch_size=1, learning_rate=0.1, warmup_ratio=0, progress=False, eval_steps=1, patience=0
    )
    settings = settings.model_copy(update={"min_gain_z": min_gain_z, "checkpoint_every": 0, **extra})
    model = Toy()
    trainer = Trainer(model, settings, desc="toy", checkpoint_dir=tmp_path / "ckpt", fingerprint="toy")
    trainer.fit(lambda epoch: [[0]] * (len(evaluations) - 1), len(evaluations) - 1, scripted(evaluations, with_items))
    return trainer, model.w.detach().clone()


def test_a_gain_within_noise_writes_the_input_and_says_so(tmp_path, capsys):
    trainer, w = fit(tmp_path, [INPUT, WORSE, NOISE, WORSE], min_gain_z=1.645)
    assert torch.equal(w, torch.zeros(3)) and trainer.kept_input
    assert trainer.significance["best_step"] == 2 and not trainer.significance["kept"]
    assert 0 < trainer.significance["z"] < 1.645
    assert "step 2's dev gain over the input is within noise" in capsys.readouterr().err


def test_without_the_check_the_same_gain_is_kept(tmp_path):
    trainer, w = fit(tmp_path, [INPUT, WORSE, NOISE, WORSE], min_gain_z=0)
    assert not trainer.kept_input and trainer.best.step == 2 and trainer.significance is None
    assert not torch.equal(w, torch.zeros(3))


def test_a_clear_gain_is_kept(tmp_path, capsys):
    """The best checkpoint (step 3) is written even though an earlier, noisy one would have
    been rejected: the check is made once, on the best."""
    trainer, w = fit(tmp_path, [INPUT, NOISE, WORSE, CLEAR], min_gain_z=1.645)
    ref, w_ref = fit(tmp_path / "ref", [INPUT, NOISE, WORSE, CLEAR], min_gain_z=0)
    assert trainer.best.step == 3 and trainer.significance["kept"] and trainer.significance["z"] > 4
    assert torch.equal(w, w_ref)
    assert "step 3's dev gain over the input is significant" in capsys.readouterr().err


def test_an_evaluator_without_per_text_scores_is_not_checked(tmp_path):
    """Phase 1's held-out reconstruction loss gives one number: any gain counts there."""
    trainer, w = fit(tmp_path, [INPUT, NOISE, WORSE], min_gain_z=1.645, with_items=False)
    assert trainer.best.step == 1 and trainer.significance is None and not torch.equal(w, torch.zeros(3))


def test_the_check_survives_an_interruption(tmp_path):
    """Killed after step 3 (checkpoints every 2 steps), the resumed run still has the input's
    weights and per-text scores: it writes the input, as the uninterrupted run does."""
    from faults import Interrupted, interrupt_at

    evaluations = [INPUT, NOISE, WORSE, WORSE, WORSE]
    ref, w_ref = fit(tmp_path / "ref", evaluations, min_gain_z=1.645, checkpoint_every=2)
    assert torch.equal(w_ref, torch.zeros(3))
    with interrupt_at(3), pytest.raises(Interrupted):
        fit(tmp_path, evaluations, min_gain_z=1.645, checkpoint_every=2)
    # the resumed run starts after step 2: it makes evaluations 3 and 4 only
    settings = TrainingSection(
        epochs=1, batch_size=1, learning_rate=0.1, warmup_ratio=0, progress=False, eval_steps=1, patience=0
    ).model_copy(update={"min_gain_z": 1.645, "checkpoint_every": 2})
    model = Toy()
    trainer = Trainer(model, settings, desc="toy", checkpoint_dir=tmp_path / "ckpt", fingerprint="toy")
    trainer.fit(lambda epoch: [[0]] * 4, 4, scripted([WORSE, WORSE]))
    assert trainer.resumed_from == 2 and trainer.significance == ref.significance
    assert torch.equal(model.w.detach(), torch.zeros(3))


def test_the_shipped_configs_check_phase_1_only():
    from spacy_threephase.config import load_config

    z = {name: load_config(config)["training"].get("min_gain_z") for name, config in CONFIGS.items()}
    assert z == {"dae": 1.645, "contrastive": 0, "joint": 0}
    assert DAETrainingSection().min_gain_z == 1.645 and TrainingSection().min_gain_z == 0


def test_a_phase_whose_best_checkpoint_gains_only_on_the_tie_break_writes_its_input(tiny_encoder_dir, tmp_path):
    """Phase 2 on the tiny corpus: without the check, step 6 is selected for a better dev-pair
    Spearman at the same dev accuracy (the same texts right): no gain by the paired test. With
    it, the input's weights are written, and metrics.json and threephase.json say why."""
    corpus = write_corpus(tmp_path / "corpus", LABELLED, LABELLED[1::2])
    free = train_contrastive(
        CL_CONFIG, corpus, tmp_path / "free", encoder=str(tiny_encoder_dir), overrides={**CL, "training.min_gain_z": 0}
    )
    best = free["selection"]["best_step"]
    assert best > 0 and free["selection"]["significance"] is None
    scores = {e["step"]: e["metrics"]["centroid_acc"] for e in free["evaluations"]}
    assert scores[best] == scores[0]  # the same accuracy: only the Spearman tie-break moved
    out = tmp_path / "checked"
    checked = train_contrastive(
        CL_CONFIG, corpus, out, encoder=str(tiny_encoder_dir), overrides={**CL, "training.min_gain_z": 1.645}
    )
    assert [e["score"] for e in checked["evaluations"]] == [e["score"] for e in free["evaluations"]]
    assert checked["selection"]["significance"] == {"best_step": best, "z": 0.0, "min_gain_z": 1.645, "kept": False}
    assert checked["selection"]["kept_input"] and checked["selection"]["best_step"] == 0
    before, after = weights(tiny_encoder_dir), weights(out)
    assert all(torch.equal(before[k], after[k]) for k in before)
    meta = json.loads((out / "threephase.json").read_text())
    assert meta["selection"]["significance"]["kept"] is False and "contrastive" not in meta.get("adapted_by", [])
