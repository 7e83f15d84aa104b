"""Phase 1 with two processes on the CPU (torchrun, gloo): it finishes and rank 0 alone writes."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
        "--encoder.max_length", "32", "--training.checkpoint_every", "2", "--training.torch_threads", "1",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("Saved the phase-1 encoder") == 1  # only rank 0 reports
    assert (out / "model.safetensors").exists()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["steps"] for r in log] == [3, 3]  # each rank took half of each epoch's 6 batches; one log
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "texts.txt"]  # no checkpoint, no temporary dirs
