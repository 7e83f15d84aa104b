"""prefer_final_z: when a run reaches the end of its schedule and an earlier checkpoint scored
best on dev, the final (annealed) weights are written unless the best beats them beyond noise."""

import pytest
import torch
from test_significance import CLEAR, INPUT, NOISE, WORSE, Toy, hits

from spacy_threephase.settings import TrainingSection
from spacy_threephase.training import Trainer

N = 100
# a little below NOISE (2 of its hits lost): within noise of it, above INPUT
NEAR = hits(N, set(range(8, 50)) | set(range(50, 59)))


def fit(tmp_path, evaluations, prefer_final_z, steps=None, **extra):
    """Train the toy for `steps` (default len(evaluations) - 1) steps, scoring after each; returns
    the trainer, the weights written and the weights at every evaluation (the first: the input)."""
    settings = TrainingSection(
        epochs=1, batch_size=1, learning_rate=0.1, warmup_ratio=0, progress=False, eval_steps=1, patience=0
    )
    settings = settings.model_copy(update={"prefer_final_z": prefer_final_z, "checkpoint_every": 0, **extra})
    model = Toy()
    seen, calls = [], iter(evaluations)

    def evaluate():
        seen.append(model.w.detach().clone())
        h = next(calls)
        return float(h.mean()), {"centroid_acc": float(h.mean())}, h

    trainer = Trainer(model, settings, desc="toy", checkpoint_dir=tmp_path / "ckpt", fingerprint="toy")
    steps = len(evaluations) - 1 if steps is None else steps
    trainer.fit(lambda epoch: [[0]] * steps, steps, evaluate)
    return trainer, model.w.detach().clone(), seen


def test_a_best_within_noise_of_the_final_weights_gives_way_to_them(tmp_path, capsys):
    trainer, written, seen = fit(tmp_path, [INPUT, NOISE, NEAR], prefer_final_z=1.645)
    assert torch.equal(written, seen[2]) and not torch.equal(seen[1], seen[2])
    assert trainer.best.step == 2 and not trainer.kept_input
    assert trainer.preferred_final["best_step"] == 1 and trainer.preferred_final["final_step"] == 2
    assert 0 < trainer.preferred_final["z"] < 1.645
    assert "within noise" in capsys.readouterr().err


def test_a_best_clearly_ahead_of_the_final_weights_is_kept(tmp_path, capsys):
    trainer, written, seen = fit(tmp_path, [INPUT, CLEAR, NEAR], prefer_final_z=1.645)
    assert torch.equal(written, seen[1])
    assert trainer.best.step == 1 and trainer.preferred_final["z"] >= 1.645
    assert "beyond noise" in capsys.readouterr().err


def test_off_by_default_the_best_is_written(tmp_path):
    assert TrainingSection().prefer_final_z == 0
    trainer, written, seen = fit(tmp_path, [INPUT, NOISE, NEAR], prefer_final_z=0)
    assert torch.equal(written, seen[1]) and trainer.preferred_final is None


def test_final_weights_no_better_than_the_input_are_not_preferred(tmp_path):
    trainer, written, seen = fit(tmp_path, [INPUT, NOISE, WORSE], prefer_final_z=100.0)
    assert torch.equal(written, seen[1]) and trainer.preferred_final is None


def test_a_run_stopped_before_the_end_of_its_schedule_keeps_its_best(tmp_path):
    """Patience stopped it at step 2 of 3: its last weights were not annealed."""
    trainer, written, seen = fit(tmp_path, [INPUT, NOISE, NEAR, NEAR], prefer_final_z=100.0, patience=1)
    assert len(seen) == 3 and torch.equal(written, seen[1]) and trainer.preferred_final is None


def test_the_final_weights_still_face_the_significance_check(tmp_path):
    """With min_gain_z too, the preferred final weights must beat the input beyond noise."""
    trainer, written, seen = fit(tmp_path, [INPUT, CLEAR, NEAR], prefer_final_z=100.0, min_gain_z=1.645)
    assert torch.equal(written, seen[0]) and trainer.kept_input
    assert trainer.preferred_final["best_step"] == 1 and trainer.significance["best_step"] == 2


def test_the_choice_survives_an_interruption(tmp_path):
    """Killed after step 3 of 4 (checkpoints every 2 steps, the best at step 1), the resumed run
    still has the best's per-text scores: it writes the final weights, as the whole run does."""
    from faults import Interrupted, interrupt_at

    evaluations = [INPUT, NOISE, NEAR, NEAR, NEAR]
    whole, written, _ = fit(tmp_path / "whole", evaluations, prefer_final_z=1.645, checkpoint_every=2)
    assert whole.preferred_final["best_step"] == 1 and whole.best.step == 4
    with interrupt_at(3), pytest.raises(Interrupted):
        fit(tmp_path, evaluations, prefer_final_z=1.645, checkpoint_every=2)
    # the resumed run starts after step 2: it makes evaluations 3 and 4 only
    resumed, again, seen = fit(tmp_path, evaluations[3:], prefer_final_z=1.645, checkpoint_every=2, steps=4)
    assert resumed.resumed_from == 2
    assert torch.equal(again, written) and torch.equal(again, seen[-1])
    assert resumed.preferred_final == whole.preferred_final


def test_the_shipped_configs_prefer_the_final_weights_in_phase_2_only():
    from test_significance import CONFIGS

    from spacy_threephase.config import load_config

    z = {name: load_config(path)["training"].get("prefer_final_z", 0) for name, path in CONFIGS.items()}
    assert z == {"dae": 0, "contrastive": 1.645, "joint": 0}
