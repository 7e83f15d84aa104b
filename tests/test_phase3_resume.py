"""Phase 3 (`spacy threephase train`): killed with SIGKILL and started again with the same
command, it continues from its checkpoint and ends with the weights and scores of an
uninterrupted run; an existing output is never touched by a run that does not finish."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import torch
from conftest import TINY_LABELLED, write_docbins
from faults import Interrupted, interrupt_at, kill_after_checkpoint

from spacy_threephase.checkpoints import checkpoint_dir_for
from spacy_threephase.errors import UserError
from spacy_threephase.finetune import train_pipeline
from spacy_threephase.finetune.loop import PHASE

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "textcat.cfg"

LABELLED = TINY_LABELLED
PROBE = ["wake me up at seven", "is it going to snow", "play something by queen"]


def thinc_has_gpu() -> bool:
    from thinc.compat import has_cupy_gpu

    return bool(has_cupy_gpu)


def write_corpus(path: Path) -> Path:
    return write_docbins(path, {"train": LABELLED, "dev": LABELLED[::2]})


def settings(corpus: Path, encoder: Path) -> dict:
    # 12 texts in batches of 4: 3 steps an epoch, 5 epochs = 15 steps (0-14); dev every 2
    return {
        "paths.train": str(corpus / "train.spacy"),
        "paths.dev": str(corpus / "dev.spacy"),
        "paths.encoder": str(encoder),
        "training.max_epochs": 5,
        "training.eval_frequency": 2,
        "training.patience": 0,
        "training.batcher.size": 4,
        "training.batcher.min_batches": 0,  # 3 steps an epoch; the shipped 10 is tested below
        "training.optimizer.warmup_steps": 3,
        "training.optimizer.learn_rate": 0.01,
        "training.optimizer.encoder_learn_rate": 0.001,
        "components.textcat.model.hidden_width": 8,
    }


def cli_args(overrides: dict) -> list:
    out = []
    for key, value in overrides.items():
        out += [f"--{key}", str(value)]
    return out


def digest(directory: Path) -> dict:
    files = (p for p in sorted(directory.rglob("*")) if p.is_file())
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def outcome(model_dir: Path):
    """What a run ends with: its dev scores, its predictions and every transformer weight."""
    nlp = spacy.load(model_dir)
    meta = json.loads((model_dir / "meta.json").read_text())
    cats = [doc.cats for doc in nlp.pipe(PROBE)]
    weights = nlp.get_pipe("transformer").model.transformer.state_dict()
    return meta["performance"], cats, weights


def assert_same_outcome(a: Path, b: Path) -> None:
    perf_a, cats_a, w_a = outcome(a)
    perf_b, cats_b, w_b = outcome(b)
    assert perf_a == perf_b
    for x, y in zip(cats_a, cats_b):
        assert x.keys() == y.keys()
        assert all(abs(x[k] - y[k]) < 1e-6 for k in x), (x, y)
    assert w_a.keys() == w_b.keys()
    for key in w_a:
        assert torch.allclose(w_a[key], w_b[key], atol=1e-6), key


@pytest.fixture(scope="module")
def reference(tiny_encoder_dir, tmp_path_factory):
    """An uninterrupted run (and the data it used)."""
    root = tmp_path_factory.mktemp("phase3")
    corpus = write_corpus(root / "corpus")
    overrides = settings(corpus, tiny_encoder_dir)
    out = train_pipeline(CONFIG, root / "ref", overrides=overrides, checkpoint_every=4)
    return root, overrides, out


def test_uninterrupted_run_writes_both_models_and_no_checkpoint(reference):
    root, overrides, out = reference
    assert (out / "model-best" / "meta.json").exists() and (out / "model-last" / "meta.json").exists()
    assert not checkpoint_dir_for(out).exists()
    assert not [p for p in root.iterdir() if ".tmp-" in p.name]
    nlp = spacy.load(out / "model-best")
    cats = nlp("wake me up at seven").cats
    assert set(cats) == {"alarm", "food", "music", "weather"} and abs(sum(cats.values()) - 1) < 1e-5


def test_killed_then_resumed_equals_uninterrupted(reference, tmp_path):
    root, overrides, ref = reference
    out = tmp_path / "out"
    shutil.copytree(ref, out)  # a good output already in place: the killed --overwrite run must not touch it
    before = digest(out)
    args = ["train", str(CONFIG), "--output", str(out), "--overwrite", "--checkpoint-every", "4", *cli_args(overrides)]
    checkpoint = checkpoint_dir_for(out) / "checkpoint.pt"
    kill_after_checkpoint(args, checkpoint)
    assert digest(out) == before
    saved = torch.load(checkpoint, weights_only=False)
    assert saved["step"] in (3, 7, 11)  # checkpoints after every 4th step
    from typer.testing import CliRunner

    from spacy_threephase.cli import app

    result = CliRunner().invoke(app, args)  # the same command again
    assert result.exit_code == 0, result.output
    assert "resuming from" in result.output
    assert_same_outcome(out / "model-last", ref / "model-last")
    assert_same_outcome(out / "model-best", ref / "model-best")
    assert not checkpoint_dir_for(out).exists()


def test_interrupted_after_a_new_best_resumes_from_the_checkpoint(reference, tmp_path):
    """Stopped at step 10 (last checkpoint after step 7; dev evaluations at 8 and 10 may have
    written newer best-* directories): no output appears, and the same call again ends like
    the uninterrupted run, model-best included."""
    root, overrides, ref = reference
    out = tmp_path / "out"
    with interrupt_at(11, PHASE), pytest.raises(Interrupted):
        train_pipeline(CONFIG, out, overrides=overrides, checkpoint_every=4)
    assert not out.exists()
    ckpt = checkpoint_dir_for(out)
    assert torch.load(ckpt / "checkpoint.pt", weights_only=False)["step"] == 7
    train_pipeline(CONFIG, out, overrides=overrides, checkpoint_every=4)
    assert_same_outcome(out / "model-last", ref / "model-last")
    assert_same_outcome(out / "model-best", ref / "model-best")
    assert not ckpt.exists()


def test_existing_output_needs_overwrite_and_checkpoint_must_match(reference, tmp_path):
    root, overrides, ref = reference
    with pytest.raises(UserError, match="--overwrite"):
        train_pipeline(CONFIG, ref, overrides=overrides)
    out = tmp_path / "out"
    ckpt = checkpoint_dir_for(out)
    ckpt.mkdir()
    torch.save({"fingerprint": "another run"}, ckpt / "checkpoint.pt")
    with pytest.raises(UserError, match="another config or other input files"):
        train_pipeline(CONFIG, out, overrides=overrides, resume=True)
    with pytest.raises(UserError, match="no checkpoint"):
        train_pipeline(CONFIG, tmp_path / "other", overrides=overrides, resume=True)


def test_bad_settings_are_one_line_errors(reference, tmp_path, tiny_encoder_dir):
    root, overrides, ref = reference
    with pytest.raises(UserError, match=r"nothere\.spacy: training data not found \(paths\.train\)"):
        train_pipeline(CONFIG, tmp_path / "a", overrides={**overrides, "paths.train": str(tmp_path / "nothere.spacy")})
    with pytest.raises(UserError, match=r"textcat\.cfg: invalid config: .*max_epochs"):
        train_pipeline(CONFIG, tmp_path / "b", overrides={**overrides, "training.max_epochs": "many"})
    with pytest.raises(UserError, match=r"textcat\.cfg: \[training\] no_such_setting: unknown setting"):
        train_pipeline(CONFIG, tmp_path / "c", overrides={**overrides, "training.no_such_setting": 1})
    with pytest.raises(UserError, match=r"textcat\.cfg: invalid config: .*hidden_widht"):
        train_pipeline(CONFIG, tmp_path / "c", overrides={**overrides, "components.textcat.model.hidden_widht": 8})
    with pytest.raises(UserError, match=r"encoder directory does not exist"):
        train_pipeline(CONFIG, tmp_path / "d", overrides={**overrides, "paths.encoder": str(tmp_path / "no_encoder")})
    with pytest.raises(UserError, match=r"textcat\.cfg: spacy_threephase\.head_first\.v1: .*alone_below must be >= 0"):
        train_pipeline(CONFIG, tmp_path / "e", overrides={**overrides, "training.before_update.alone_below": -1})
    with pytest.raises(UserError, match=r"textcat\.cfg: spacy_threephase\.AdamW\.v1: warmup_steps must be >= 0"):
        train_pipeline(CONFIG, tmp_path / "f", overrides={**overrides, "training.optimizer.warmup_steps": -1})
    assert not any((tmp_path / name).exists() for name in "abcdef")


def test_offline_hub_name_through_spacy_cli_is_one_line(reference, tmp_path):
    """`python -m spacy threephase train` with a hub name that is not cached, offline: exit 1
    and one line saying so and how to point at a local directory (no torch traceback)."""
    root, overrides, ref = reference
    args = cli_args({**overrides, "paths.encoder": "some-org/surely-not-a-cached-model"})
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    cmd = [sys.executable, "-m", "spacy", "threephase", "train", str(CONFIG), "--output", str(tmp_path / "out"), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr.strip().splitlines()
    expected = "✘ some-org/surely-not-a-cached-model: cannot load encoder: offline mode is on"
    assert err[-1].startswith(expected), proc.stderr
    assert "local directory" in err[-1]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_gpu_id_asks_thinc_for_that_gpu_and_a_missing_gpu_is_one_line(reference, tmp_path, monkeypatch):
    """--gpu-id N goes to thinc's require_gpu (as `spacy train --gpu-id N`), before anything is
    built; where spaCy cannot use the GPU, the error names the flag and the fix, and no output
    is written. (At d74f45f phase 3 called spacy.util.require_gpu, which does not exist: every
    GPU run failed with an AttributeError.)"""
    import thinc.api

    root, overrides, ref = reference
    asked = []

    def no_gpu(gpu_id):
        asked.append(gpu_id)
        raise ValueError("GPU is not accessible. Was the library installed correctly?")

    monkeypatch.setattr(thinc.api, "require_gpu", no_gpu)
    with pytest.raises(UserError, match=r"^--gpu-id 1: spaCy cannot use that GPU \(GPU is not accessible.*--gpu-id -1"):
        train_pipeline(CONFIG, tmp_path / "gpu", overrides=overrides, use_gpu=1)
    assert asked == [1]
    assert not (tmp_path / "gpu").exists()


@pytest.mark.skipif(thinc_has_gpu(), reason="this machine has a GPU spaCy can use")
def test_gpu_id_without_a_gpu_through_spacy_cli_is_one_line(reference, tmp_path):
    root, overrides, ref = reference
    cmd = [sys.executable, "-m", "spacy", "threephase", "train", str(CONFIG), "--output", str(tmp_path / "out")]
    proc = subprocess.run([*cmd, "--gpu-id", "0", *cli_args(overrides)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("✘ --gpu-id 0: spaCy cannot use that GPU"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_last_step_is_evaluated_when_runs_are_shorter_than_eval_frequency(reference, tmp_path):
    """6 steps with eval_frequency 50: spaCy's loop would only evaluate step 0 (so its
    model-best would be the untrained pipeline); ours evaluates step 5 as well."""
    import io

    root, overrides, ref = reference
    out = io.StringIO()
    short = {**overrides, "training.max_epochs": 2, "training.eval_frequency": 50}
    train_pipeline(CONFIG, tmp_path / "short", overrides=short, stdout=out)
    rows = [line.split() for line in out.getvalue().splitlines() if line.strip()[:1].isdigit()]
    assert [int(r[1]) for r in rows] == [0, 5], out.getvalue()
    meta = json.loads((tmp_path / "short" / "model-last" / "meta.json").read_text())
    # model-last's meta: step 5's scores
    assert abs(meta["performance"]["cats_score"] * 100 - float(rows[-1][-2])) < 0.01


def test_min_batches_gives_tiny_data_its_steps(reference, tmp_path):
    """12 texts in batches of 4 are 3 steps an epoch; `min_batches 6` tops each epoch up to 6,
    so 2 epochs are 12 steps (0-11), evaluated at 0, 5 and 10 and after the last; the shipped
    default (10) makes 12 an epoch."""
    import io

    root, overrides, ref = reference
    out = io.StringIO()
    topped = {**overrides, "training.max_epochs": 2, "training.eval_frequency": 5, "training.batcher.min_batches": 6}
    train_pipeline(CONFIG, tmp_path / "topped", overrides=topped, stdout=out)
    rows = [line.split() for line in out.getvalue().splitlines() if line.strip()[:1].isdigit()]
    assert [(int(r[0]), int(r[1])) for r in rows] == [(0, 0), (0, 5), (1, 10), (1, 11)], out.getvalue()
    # the shipped textcat.cfg: min_batches 10, so 4 passes make 12 batches an epoch
    out = io.StringIO()
    shipped = {k: v for k, v in topped.items() if k != "training.batcher.min_batches"}
    train_pipeline(CONFIG, tmp_path / "shipped", overrides=shipped, stdout=out)
    rows = [line.split() for line in out.getvalue().splitlines() if line.strip()[:1].isdigit()]
    assert [(int(r[0]), int(r[1])) for r in rows] == [(0, 0), (0, 5), (0, 10), (1, 15), (1, 20), (1, 23)]


DEV_SCORES: list = []  # what test_phase3_resume.scripted_scorer.v1 reports, one value per evaluation


@spacy.registry.scorers("test_phase3_resume.scripted_scorer.v1")
def scripted_scorer():
    def score(examples, **kwargs):
        return {"cats_score": DEV_SCORES.pop(0)}

    return score


def test_step_zero_is_never_model_best_once_a_later_evaluation_exists(reference, tmp_path):
    """A dev set on which the pipeline of step 0 (one update: an untrained head) scores best,
    as on 40 sst5 dev texts: spaCy's loop ships it as model-best and counts patience from it;
    ours takes model-best and patience from the trained evaluations."""
    import io

    from spacy.cli.train import train as spacy_train

    root, overrides, ref = reference
    scripted = {
        **overrides,
        "training.max_epochs": 4,  # 12 steps (0-11), evaluated at 0, 2, ..., 10 and after 11
        "training.patience": 6,
        "components.textcat.scorer": {"@scorers": "test_phase3_resume.scripted_scorer.v1"},
    }
    scores = [0.9, 0.1, 0.3, 0.2, 0.25, 0.28, 0.27, 0.26]
    DEV_SCORES[:] = scores
    spacy_train(CONFIG, tmp_path / "spacy", overrides=scripted)
    DEV_SCORES[:] = scores
    out = io.StringIO()
    train_pipeline(CONFIG, tmp_path / "ours", overrides=scripted, stdout=out)
    rows = [line.split() for line in out.getvalue().splitlines() if line.strip()[:1].isdigit()]

    def best(run):
        return json.loads((tmp_path / run / "model-best" / "meta.json").read_text())["performance"]["cats_score"]

    assert best("spacy") == 0.9  # spaCy: step 0, and patience 6 from step 0 stops it at step 6
    assert best("ours") == 0.3  # step 4's; patience from step 4 stops at step 10
    assert [int(r[1]) for r in rows] == [0, 2, 4, 6, 8, 10], out.getvalue()


@pytest.mark.parametrize("min_batches", [0, 12])
def test_replayed_batches_are_those_of_the_killed_run(min_batches):
    """The batches are replayed from the recorded RNG states although the updates in between
    drew from python's RNG (as spacy-transformers does), with a batch-size schedule (one
    generator for the whole run) and the length-bucketed batcher (also topping up epochs)."""
    import random

    from thinc.api import compounding

    from spacy_threephase.batchers import configure_bucketed_batch
    from spacy_threephase.finetune.loop import _TrainBatches

    texts = [" ".join(["w"] * (1 + i % 9)) + f" {i}" for i in range(40)]
    total, cut = (30, 16) if not min_batches else (60, 33)

    def batches():
        sizes = compounding(2.0, 8.0, 1.3)
        batcher = configure_bucketed_batch(size=sizes, chunk_size=16, seed=0, min_batches=min_batches)
        return _TrainBatches(None, lambda nlp: iter(texts), batcher, max_epochs=0)

    random.seed(0)
    first = batches()
    seen = []
    for n in range(total):
        seen.append(next(first))
        random.random()  # an update
        if n == cut:
            saved, rng = dict(first.rng_states), random.getstate()
    # epochs started (and shuffled) before the checkpoint
    assert len({epoch for epoch, _ in seen}) >= 3 and len(saved) >= 2
    random.seed(123)  # the new process
    second = batches()
    second.replay(saved, cut + 1)
    random.setstate(rng)
    resumed = []
    for _ in range(cut + 1, total):
        resumed.append(next(second))
        random.random()
    assert resumed == seen[cut + 1 :]
