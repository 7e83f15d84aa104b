"""Joint ablation on the tiny encoder: both losses reach the encoder, output, CLI."""

import json
from pathlib import Path

import pytest
import torch
from conftest import quick_phase_args
from test_contrastive_train import LABELLED, write_corpus
from typer.testing import CliRunner

from spacy_threephase.cli import app
from spacy_threephase.joint.train import train_joint

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "joint.cfg"
FAST = {
    "training.progress": False,
    "training.batch_size": 8,
    "training.learning_rate": 1e-3,
    "encoder.max_length": 32,
    "training.patience": 0,  # the tests count epochs
    "training.min_steps": 0,  # nor more epochs than asked
}


def _encoder_grad(tiny_encoder_dir, tmp_path, dae_weight, cl_weight):
    """One Joint step's loss, gradient on the shared encoder and loss parts, built as the driver builds it."""
    from spacy_threephase.encoder import load_encoder
    from spacy_threephase.joint.train import JointPhase
    from spacy_threephase.phase import configure

    torch.manual_seed(0)
    phase = JointPhase(write_corpus(tmp_path / f"corpus-{dae_weight}-{cl_weight}", LABELLED, LABELLED[::2]))
    configure(
        phase,
        CONFIG,
        {**FAST, "joint.dae_weight": dae_weight, "joint.cl_weight": cl_weight, "imbalance.enabled": False},
    )
    phase.setup()
    enc = load_encoder(str(tiny_encoder_dir), max_length=32)
    objective = phase.build(enc)
    objective.eval()  # no dropout: the three runs see exactly the same function (gradients still flow)
    batch = phase.make_batches(0)[0]
    loss = objective(batch)
    loss.backward()
    # the encoder's last layer (the DAE decoder is tied to it, the Siamese branch IS it)
    param = enc.model.encoder.layer[-1].output.dense.weight
    return float(loss.detach()), param.grad.detach().clone(), objective.parts.steps[-1]


def test_both_losses_reach_the_shared_encoder(tiny_encoder_dir, tmp_path):
    l_dae, g_dae, (c_dae, c_cl0) = _encoder_grad(tiny_encoder_dir, tmp_path, 1.0, 0.0)
    l_cl, g_cl, (c_dae0, c_cl) = _encoder_grad(tiny_encoder_dir, tmp_path, 0.0, 1.0)
    l_sum, g_sum, parts = _encoder_grad(tiny_encoder_dir, tmp_path, 0.5, 2.0)
    assert g_dae.abs().sum() > 0 and g_cl.abs().sum() > 0
    assert c_cl0 != c_cl0 and c_dae0 != c_dae0  # nan: the weight-0 loss is not computed
    # same seeds -> same noise and batch: the joint gradient is the weighted sum of the two
    assert parts == pytest.approx((c_dae, c_cl), rel=1e-5)
    assert l_sum == pytest.approx(0.5 * l_dae + 2.0 * l_cl, rel=1e-5)
    assert torch.allclose(g_sum, 0.5 * g_dae + 2.0 * g_cl, atol=1e-6, rtol=1e-4)


def test_train_joint_writes_loadable_encoder_and_both_losses_fall(tmp_path, tiny_encoder_dir):
    corpus = write_corpus(tmp_path / "corpus", LABELLED, LABELLED)
    (corpus / "texts.txt").write_text("\n".join(t for t, _ in LABELLED) + "\n")
    out = tmp_path / "out"
    summary = train_joint(CONFIG, corpus, out, encoder=str(tiny_encoder_dir), overrides={**FAST, "training.epochs": 6})
    assert summary["dae_texts_source"].endswith("texts.txt")
    epochs = summary["epochs"]
    assert len(epochs) == 6  # (4 epochs left the cosine gap 0.0099 above the input's in one CI run: too thin)
    first, last = epochs[0]["extra"], epochs[-1]["extra"]
    # DAE: the reconstruction loss falls; CL: dev same-class vs different-class cosine gap
    # widens (the per-epoch CL loss is noisy here: new pairs every epoch on 12 texts)
    assert last["dae_loss"] < first["dae_loss"], epochs
    gap = lambda m: m["dev_same_cos"] - m["dev_diff_cos"]  # noqa: E731
    assert gap(last) > gap(summary["baseline"]) + 0.01, (summary["baseline"], last)
    assert all(e["extra"]["cl_loss"] > 0 for e in epochs)
    meta = json.loads((out / "threephase.json").read_text())
    assert meta["phase"] == "joint" and meta["pooling"] == "mean" and meta["max_length"] == 32
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model(**tok(["play some jazz"], return_tensors="pt")).last_hidden_state.shape[-1] == 32
    assert not any(k.startswith(("decoder", "cls")) for k in model.state_dict())
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_cli_refuses_overwrite_and_bad_weights(tmp_path, tiny_encoder_dir):
    corpus = write_corpus(tmp_path / "corpus", LABELLED, LABELLED[::2])
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    base = [
        "joint",
        str(CONFIG),
        str(corpus),
        str(out),
        "--encoder",
        str(tiny_encoder_dir),
        "--training.progress",
        "false",
    ]
    res = CliRunner().invoke(app, base)
    assert res.exit_code == 1 and "--overwrite" in res.output and "Traceback" not in res.output
    assert (out / "keep.txt").exists()
    res = CliRunner().invoke(app, base + ["--overwrite", "--joint.dae_weight", "0", "--joint.cl_weight", "0"])
    assert res.exit_code == 1 and "dae_weight" in res.output
    res = CliRunner().invoke(
        app,
        base + ["--overwrite", *quick_phase_args(8, max_length=32)],
    )
    assert res.exit_code == 0, res.output
    assert (out / "model.safetensors").exists() and not (out / "keep.txt").exists()
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["dae_texts_source"].startswith("train texts")
