"""Faults: phases 1 and 2 killed with SIGKILL mid-run resume from their checkpoint and end
with the same weights as an uninterrupted run; a killed run never damages an existing output."""

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_TEXTS
from faults import Interrupted, interrupt_at, kill_after_checkpoint
from safetensors.torch import load_file
from test_contrastive_train import LABELLED
from test_contrastive_train import write_corpus as write_labelled_corpus

from spacy_threephase.checkpoints import checkpoint_dir_for
from spacy_threephase.contrastive.train import train_contrastive
from spacy_threephase.dae.train import train_dae
from spacy_threephase.errors import UserError

REPO = Path(__file__).resolve().parents[1]
DAE_CONFIG = REPO / "configs" / "dae.cfg"
CL_CONFIG = REPO / "configs" / "contrastive.cfg"

DAE_SETTINGS = {
    "training.progress": False,
    "training.batch_size": 4,
    "training.epochs": 2,
    "training.min_steps": 0,
    "encoder.max_length": 32,
    "training.checkpoint_every": 2,
    "training.patience": 0,  # run every step: the interruption must come before the end
}
CL_SETTINGS = {
    "training.progress": False,
    "training.batch_size": 4,  # class batches of 2 x 2 texts: 4 classes x 2 chunks = 4 steps per epoch
    "pairs.per_class": 2,
    "training.epochs": 3,
    "training.min_steps": 0,
    "training.learning_rate": 1e-3,
    "encoder.max_length": 32,
    "training.checkpoint_every": 2,
    "training.patience": 0,  # run every step: the interruption must come before the end
}


def cli_args(settings):
    out = []
    for key, value in settings.items():
        out += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    return out


def write_corpus(path: Path) -> Path:
    return write_labelled_corpus(path, LABELLED, LABELLED[::2])


def digest(directory: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.allclose(wa[key], wb[key], atol=1e-5), key


def run_cli_in_process(cmd):
    """The same command line, run in this process (saves a second interpreter start)."""
    from typer.testing import CliRunner

    from spacy_threephase.cli import app

    assert cmd[1:3] == ["-m", "spacy_threephase"]
    result = CliRunner().invoke(app, cmd[3:])
    assert result.exit_code == 0, result.output
    return result.output


def test_dae_killed_then_resumed_equals_uninterrupted(tiny_encoder_dir, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TINY_TEXTS * 2) + "\n", encoding="utf8")  # 6 steps per epoch
    ref = train_dae(DAE_CONFIG, texts, tmp_path / "ref", encoder=str(tiny_encoder_dir), overrides=DAE_SETTINGS)
    assert not checkpoint_dir_for(ref).exists()  # removed after the final write
    # a good output already in place: the killed --overwrite run must not touch it
    out = tmp_path / "out"
    shutil.copytree(tiny_encoder_dir, out)
    before = digest(out)
    cmd = [
        sys.executable,
        "-m",
        "spacy_threephase",
        "dae",
        str(DAE_CONFIG),
        str(texts),
        str(out),
        "--encoder",
        str(tiny_encoder_dir),
        "--overwrite",
        *cli_args(DAE_SETTINGS),
    ]
    checkpoint = checkpoint_dir_for(out) / "checkpoint.json"
    kill_after_checkpoint(cmd[3:], checkpoint)
    assert digest(out) == before  # no half-written model where the good one was
    assert checkpoint.exists()
    stderr = run_cli_in_process(cmd)  # the same command again
    assert "resuming from" in stderr
    assert_same_weights(out, ref)
    assert len((out / "training_log.jsonl").read_text().splitlines()) == 2  # both epochs logged
    assert not checkpoint_dir_for(out).exists()
    assert not [
        p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp-")
    ]  # the killed run's leftovers are cleaned


def checkpoint_step(out: Path) -> int:
    return json.loads((checkpoint_dir_for(out) / "checkpoint.json").read_text())["step"]


def test_contrastive_interrupted_then_resumed_equals_uninterrupted(tiny_encoder_dir, tmp_path, monkeypatch, capsys):
    """In-process (the SIGKILL path is covered for phase 1 above): an interruption after step 7
    (epoch 2; last checkpoint: step 6, after epoch 1's dev evaluation) leaves no output and no
    temporary directory; the same call again
    resumes and gives the weights and metrics of an uninterrupted run."""
    corpus = write_corpus(tmp_path / "corpus")
    train_contrastive(CL_CONFIG, corpus, tmp_path / "ref", encoder=str(tiny_encoder_dir), overrides=CL_SETTINGS)
    out = tmp_path / "out"
    with interrupt_at(7), pytest.raises(Interrupted):
        train_contrastive(CL_CONFIG, corpus, out, encoder=str(tiny_encoder_dir), overrides=CL_SETTINGS)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp-")]
    assert checkpoint_step(out) == 6
    capsys.readouterr()
    train_contrastive(CL_CONFIG, corpus, out, encoder=str(tiny_encoder_dir), overrides=CL_SETTINGS)
    assert "resuming from" in capsys.readouterr().err
    assert_same_weights(out, tmp_path / "ref")
    strip = lambda m: {
        **{k: v for k, v in m.items() if k != "eval_seconds"},
        "epochs": [{k: v for k, v in e.items() if k != "seconds"} for e in m["epochs"]],
    }
    assert strip(json.loads((out / "metrics.json").read_text())) == strip(
        json.loads((tmp_path / "ref" / "metrics.json").read_text())
    )
    assert not checkpoint_dir_for(out).exists()


JOINT_CONFIG = REPO / "configs" / "joint.cfg"


def test_joint_interrupted_then_resumed_equals_uninterrupted(tiny_encoder_dir, tmp_path, monkeypatch):
    """Joint (both losses, its own DAE batch stream and noise RNG): interrupted in epoch 2
    after the checkpoint at step 6, the same call resumes and ends with the weights and
    per-epoch losses of an uninterrupted run."""
    from spacy_threephase.joint.train import train_joint

    corpus = write_corpus(tmp_path / "corpus")
    (corpus / "texts.txt").write_text(
        "\n".join(TINY_TEXTS * 2) + "\n", encoding="utf8"
    )  # 24 DAE texts: rounds span epochs
    settings = {**CL_SETTINGS, "joint.dae_batch_size": 5}
    train_joint(JOINT_CONFIG, corpus, tmp_path / "ref", encoder=str(tiny_encoder_dir), overrides=settings)
    out = tmp_path / "out"
    with interrupt_at(7), pytest.raises(Interrupted):
        train_joint(JOINT_CONFIG, corpus, out, encoder=str(tiny_encoder_dir), overrides=settings)
    assert not out.exists()
    assert checkpoint_step(out) == 6
    train_joint(JOINT_CONFIG, corpus, out, encoder=str(tiny_encoder_dir), overrides=settings)
    assert_same_weights(out, tmp_path / "ref")
    strip = lambda m: [{k: v for k, v in e.items() if k != "seconds"} for e in m["epochs"]]
    assert strip(json.loads((out / "metrics.json").read_text())) == strip(
        json.loads((tmp_path / "ref" / "metrics.json").read_text())
    )
    assert not checkpoint_dir_for(out).exists()


def test_checkpoint_of_other_inputs_is_not_used(tiny_encoder_dir, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TINY_TEXTS) + "\n", encoding="utf8")
    out = tmp_path / "out"
    ckpt = checkpoint_dir_for(out)
    ckpt.mkdir()
    (ckpt / "checkpoint.json").write_text('{"fingerprint": "something else"}')
    with pytest.raises(UserError, match="another config or other input files"):
        train_dae(DAE_CONFIG, texts, out, encoder=str(tiny_encoder_dir), overrides=DAE_SETTINGS, resume=True)
    assert not out.exists()
    train_dae(DAE_CONFIG, texts, out, encoder=str(tiny_encoder_dir), overrides=DAE_SETTINGS)  # auto: starts again
    assert out.exists() and not ckpt.exists()
    with pytest.raises(UserError, match="no checkpoint"):
        train_dae(
            DAE_CONFIG, texts, tmp_path / "out2", encoder=str(tiny_encoder_dir), overrides=DAE_SETTINGS, resume=True
        )


def test_resume_never_replaces_a_finished_output_without_overwrite(tiny_encoder_dir, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TINY_TEXTS) + "\n", encoding="utf8")
    out = train_dae(DAE_CONFIG, texts, tmp_path / "out", encoder=str(tiny_encoder_dir), overrides=DAE_SETTINGS)
    before = digest(out)
    with pytest.raises(UserError, match="--overwrite"):
        train_dae(DAE_CONFIG, texts, out, encoder=str(tiny_encoder_dir), overrides=DAE_SETTINGS, resume=True)
    assert digest(out) == before


def test_no_resume_discards_the_checkpoint(tiny_encoder_dir, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TINY_TEXTS) + "\n", encoding="utf8")
    out = tmp_path / "out"
    ckpt = checkpoint_dir_for(out)
    ckpt.mkdir()
    (ckpt / "checkpoint.json").write_bytes(b"not a checkpoint")  # would be a clear error if read
    train_dae(DAE_CONFIG, texts, out, encoder=str(tiny_encoder_dir), overrides=DAE_SETTINGS, resume=False)
    assert (out / "model.safetensors").exists() and not ckpt.exists()


def test_atomic_output_dir_keeps_the_old_output_on_error(tmp_path):
    from spacy_threephase.outputs import atomic_output_dir

    out = tmp_path / "model"
    out.mkdir()
    (out / "weights.bin").write_bytes(b"good")
    with pytest.raises(UserError, match="--overwrite"):
        with atomic_output_dir(out):
            pass
    with pytest.raises(RuntimeError):
        with atomic_output_dir(out, overwrite=True) as tmp:
            (tmp / "weights.bin").write_bytes(b"half")
            raise RuntimeError("crash while writing")
    assert (out / "weights.bin").read_bytes() == b"good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary directory left
    with atomic_output_dir(out, overwrite=True) as tmp:
        (tmp / "weights.bin").write_bytes(b"new")
    assert (out / "weights.bin").read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
