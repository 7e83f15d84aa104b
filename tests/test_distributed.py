"""Phase 1 with two processes on the CPU (torchrun, gloo): it finishes and rank 0 alone writes."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_TEXTS

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "dae.cfg"


def torchrun():
    exe = Path(sys.executable).parent / "torchrun"
    if exe.exists():
        return [str(exe)]
    if shutil.which("torchrun"):
        return [shutil.which("torchrun")]
    pytest.skip("torchrun is not available")


def test_dae_with_two_processes_writes_one_output(tiny_encoder_dir, tmp_path):
    try:
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_gloo_available():
            pytest.skip("torch.distributed with gloo is not available")
    except ImportError:
        pytest.skip("torch.distributed is not available")
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TINY_TEXTS * 2) + "\n", encoding="utf8")  # 6 batches of 4: 3 per rank
    out = tmp_path / "out"
    cmd = [
        *torchrun(), "--standalone", "--nproc_per_node", "2",
        "-m", "spacy_threephase", "dae", str(CONFIG), str(texts), str(out), "--encoder", str(tiny_encoder_dir),
        "--training.progress", "false", "--training.batch_size", "4", "--training.epochs", "2",
        "--training.min_steps", "0", "--encoder.max_length", "32", "--training.checkpoint_every", "2",
        "--training.torch_threads", "1",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("Saved the phase-1 encoder") == 1  # only rank 0 reports
    assert (out / "model.safetensors").exists()
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert [r["steps"] for r in log] == [3, 3]  # each rank took half of each epoch's 6 batches; one log
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "texts.txt"]  # no checkpoint, no temporary dirs


def test_contrastive_with_two_processes_has_the_same_weights_on_both_ranks(tiny_encoder_dir, tmp_path):
    """Phase 2 under torchrun (accelerate's DDP, gloo on CPU): both ranks end every step with
    identical encoder weights, each took half of every epoch's batches, rank 0 alone writes."""
    from test_contrastive_train import LABELLED, write_corpus

    if not _gloo():
        pytest.skip("torch.distributed with gloo is not available")
    corpus = write_corpus(tmp_path / "corpus", LABELLED, LABELLED[::2])
    out, digests = tmp_path / "out", tmp_path / "digests"
    cmd = [
        *torchrun(), "--standalone", "--nproc_per_node", "2", str(REPO / "tests" / "rank_digest_cli.py"), str(digests),
        "contrastive", str(REPO / "configs" / "contrastive.cfg"), str(corpus), str(out),
        "--encoder", str(tiny_encoder_dir), "--training.progress", "false",
        "--training.batch_size", "4", "--pairs.per_class", "2", "--training.epochs", "2", "--training.min_steps", "0",
        "--training.learning_rate", "0.001", "--encoder.max_length", "32", "--training.torch_threads", "1",
        "--training.select_best", "false",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    rank0, rank1 = (digests / "rank0.txt").read_text(), (digests / "rank1.txt").read_text()
    assert rank0 == rank1  # the same last step, the same weights
    metrics = json.loads((out / "metrics.json").read_text())
    assert int(rank0.split()[0]) == metrics["steps"] == 2 * (metrics["steps_per_epoch"] // 2)
    from safetensors.torch import load_file

    before, after = load_file(str(tiny_encoder_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained
    assert result.stdout.count("Saved the phase-2 encoder") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "digests", "out"]


def _gloo() -> bool:
    try:
        import torch.distributed as dist

        return dist.is_available() and dist.is_gloo_available()
    except ImportError:
        return False
