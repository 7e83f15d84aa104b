"""`training.min_steps`: on small data, phases 1 and 2 (and Joint, same engine) raise their
epochs until the run makes at least min_steps optimizer steps; max_steps still caps it, and
the evaluations stay as many as the configured epochs would have had."""

import json
import math

from conftest import TINY_TEXTS
from test_contrastive_train import LABELLED, write_corpus
from test_selection import CL, CL_CONFIG, DAE, DAE_CONFIG

from spacy_threephase.contrastive.train import train_contrastive
from spacy_threephase.dae.train import train_dae

STRETCH = {**CL, "training.epochs": 1, "training.eval_steps": 0, "training.evals_per_epoch": 2}


def run_phase2(tiny_encoder_dir, tmp_path, name, **settings):
    corpus = write_corpus(tmp_path / "corpus", LABELLED, LABELLED[1::2])
    return train_contrastive(
        CL_CONFIG, corpus, tmp_path / name, encoder=str(tiny_encoder_dir), overrides={**STRETCH, **settings}
    )


def test_phase2_trains_at_least_min_steps_with_as_many_evaluations_as_configured(tiny_encoder_dir, tmp_path, capsys):
    plain = run_phase2(tiny_encoder_dir, tmp_path, "plain")
    per_epoch = plain["steps"]
    assert per_epoch >= 2 and len(plain["epochs"]) == 1
    floor = 3 * per_epoch + 1
    m = run_phase2(tiny_encoder_dir, tmp_path, "floor", **{"training.min_steps": floor})
    epochs = math.ceil(floor / per_epoch)
    assert m["steps"] == epochs * per_epoch >= floor and len(m["epochs"]) == epochs
    # 1 epoch x 2 evaluations, spread over the whole run, plus the input's score (step 0)
    every = math.ceil(m["steps"] / 2)
    steps = [e["step"] for e in m["evaluations"]]
    assert steps == sorted({0, every, m["steps"]})
    err = capsys.readouterr().err
    assert f"fewer than min_steps {floor}: training {epochs} epochs" in err


def test_min_steps_below_the_configured_budget_changes_nothing(tiny_encoder_dir, tmp_path):
    plain = run_phase2(tiny_encoder_dir, tmp_path, "plain")
    m = run_phase2(tiny_encoder_dir, tmp_path, "low", **{"training.min_steps": plain["steps"]})
    assert m["steps"] == plain["steps"] and m["evaluations"] == plain["evaluations"]


def test_max_steps_caps_a_stretched_run(tiny_encoder_dir, tmp_path):
    m = run_phase2(tiny_encoder_dir, tmp_path, "capped", **{"training.min_steps": 50, "training.max_steps": 7})
    assert m["steps"] == 7 and m["evaluations"][-1]["step"] == 7


def test_phase1_honours_min_steps(tiny_encoder_dir, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TINY_TEXTS) + "\n", encoding="utf8")
    out = train_dae(
        DAE_CONFIG,
        texts,
        tmp_path / "out",
        encoder=str(tiny_encoder_dir),
        overrides={**DAE, "training.epochs": 1, "training.min_steps": 20, "training.heldout_fraction": 0.1},
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert 20 <= metrics["steps"] < 20 + metrics["epochs"][0]["steps"]
