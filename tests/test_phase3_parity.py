"""Phase 3's loop (`spacy threephase train`) against `spacy train` on one config, data and
seed: the logger sees the same info dicts (same keys; same epochs, steps, words, losses and
scores at every step) and both end with the same weights. See finetune/loop.py for what
differs on purpose (checkpoints, the extra last-step evaluation, where evaluated pipelines
are written)."""

import copy
import io
from pathlib import Path

import pytest
import spacy
import torch
from test_phase3_resume import CONFIG, PROBE, settings, write_corpus

from spacy_threephase.checkpoints import checkpoint_dir_for
from spacy_threephase.finetune import train_pipeline

RECORDED: list = []  # what the recorder logger saw, one entry per log_step call


@spacy.registry.loggers("test_phase3_parity.recorder.v1")
def recorder():
    """Records a copy of every info dict (None on steps without evaluation), and whether the
    directory info["output_path"] names holds a pipeline at that moment."""

    def setup(nlp, stdout, stderr):
        def log_step(info):
            if info is not None:
                info = copy.deepcopy(info)
                if "output_path" in info:
                    info["output_path_exists"] = (Path(info["output_path"]) / "meta.json").is_file()
            RECORDED.append(info)

        return log_step, lambda: None

    return setup


# 12 texts in batches of 4 (3 steps an epoch). "every_step": 3 epochs, dev after every step
# (so each step's loss reaches the logger), two sub-batches a step; "max_steps": no epoch
# limit, dev every 3 steps, stop after step 6.
CASES = {
    "every_step": {"training.max_epochs": 3, "training.eval_frequency": 1, "training.accumulate_gradient": 2},
    "max_steps": {"training.max_epochs": 0, "training.max_steps": 6, "training.eval_frequency": 3},
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("parity") / "corpus")


def run_both(corpus, encoder, tmp_path, case):
    from spacy.cli.train import train as spacy_train

    logger = {"@loggers": "test_phase3_parity.recorder.v1"}
    # parameter averages differ on purpose (spaCy's train() never applies the encoder's)
    averages = {"training.optimizer.use_averages": False}
    overrides = {**settings(corpus, encoder), **CASES[case], **averages, "training.logger": logger}
    runs = {}
    RECORDED.clear()
    spacy_train(CONFIG, tmp_path / "spacy", overrides=overrides)
    runs["spacy"] = list(RECORDED)
    RECORDED.clear()
    train_pipeline(CONFIG, tmp_path / "ours", overrides=overrides, stdout=io.StringIO())
    runs["ours"] = list(RECORDED)
    return runs["spacy"], runs["ours"]


def comparable(info):
    """An info dict without what may differ: timings (seconds, the dev scores' words per
    second) and where the pipeline went."""
    if info is None:
        return None
    out = {k: v for k, v in info.items() if k not in ("seconds", "output_path")}
    out["other_scores"] = {k: v for k, v in out["other_scores"].items() if k != "speed"}
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_info_at_every_step_and_same_weights(corpus, tiny_encoder_dir, tmp_path, case):
    theirs, ours = run_both(corpus, tiny_encoder_dir, tmp_path, case)
    assert len(ours) == len(theirs) > 5
    assert sum(info is not None for info in theirs) >= 3
    for step, (a, b) in enumerate(zip(theirs, ours)):
        assert (a is None) == (b is None), step
        if a is None:
            continue
        assert set(a) == set(b), step  # output_path included
        assert a["output_path"] == str(tmp_path / "spacy" / "model-last")
        assert b["output_path"] == str(checkpoint_dir_for(tmp_path / "ours") / "model-last")
        assert a["output_path_exists"] and b["output_path_exists"], step
        assert comparable(a) == comparable(b), (step, a, b)
    assert ours[-1]["step"] == len(ours) - 1 and ours[-1]["score"] is not None  # the last step was evaluated
    if case == "max_steps":
        assert ours[-1]["step"] == 6 and ours[-1]["epoch"] == 2
    else:
        assert all(info["losses"]["textcat"] > 0 for info in ours)  # every step's own loss reached the logger
    for name in ("model-last", "model-best"):
        a, b = spacy.load(tmp_path / "spacy" / name), spacy.load(tmp_path / "ours" / name)
        assert a.meta["performance"] == b.meta["performance"], name
        assert [d.cats for d in a.pipe(PROBE)] == [d.cats for d in b.pipe(PROBE)], name
        wa, wb = (n.get_pipe("transformer").model.transformer.state_dict() for n in (a, b))
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), name
