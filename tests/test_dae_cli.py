"""The `dae` command: config handling, one-line errors, refusing to overwrite."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_TEXTS, quick_phase_args
from typer.testing import CliRunner

from spacy_threephase.cli import app

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "dae.cfg"
FAST = quick_phase_args(4, max_length=32)


@pytest.fixture
def texts_file(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(TINY_TEXTS) + "\n", encoding="utf8")
    return path


def run(*args):
    result = CliRunner().invoke(app, ["dae", *map(str, args)])
    return result.exit_code, result.output  # stdout and stderr together (click >= 8.2)


def one_line_error(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("✘"), output
    return lines[0]


def test_trains_and_refuses_to_overwrite(tiny_encoder_dir, texts_file, tmp_path):
    out = tmp_path / "dae_out"
    code, output = run(CONFIG, texts_file, out, "--encoder", tiny_encoder_dir, *FAST)
    assert code == 0, output
    assert (out / "config.json").exists() and (out / "training_log.jsonl").exists()
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    code, output = run(CONFIG, texts_file, out, "--encoder", tiny_encoder_dir, *FAST)
    assert code == 1
    assert "--overwrite" in one_line_error(output)
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    code, output = run(CONFIG, texts_file, out, "--encoder", tiny_encoder_dir, "--overwrite", *FAST)
    assert code == 0, output
    assert (out / "model.safetensors").stat().st_mtime_ns != stamp
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".dae_out")]  # no temporary leftovers


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--training.epoch", "2"], "unknown setting 'epoch'"),
        (["--training.epochs", "many"], "epochs must be an integer"),
        (["--training.learning_rate", "fast"], "learning_rate must be a number"),
        (["--encoder.pool", "mean"], "unknown setting 'pool'"),
        (["--encoder.pooling", "max"], "unknown pooling 'max'"),
        (["--noise.deletion_ratio", "2"], "deletion_ratio must be between 0 and 1"),
        (["--noise.ratio", "0.5"], "[noise]"),
    ],
)
def test_bad_settings_are_one_line_errors(extra, message, tiny_encoder_dir, texts_file, tmp_path):
    code, output = run(CONFIG, texts_file, tmp_path / "out", "--encoder", tiny_encoder_dir, *FAST, *extra)
    assert code == 1
    assert message in one_line_error(output)
    assert not (tmp_path / "out").exists()


def test_unknown_key_in_config_file(tiny_encoder_dir, texts_file, tmp_path):
    cfg = tmp_path / "dae.cfg"
    cfg.write_text(
        CONFIG.read_text(encoding="utf8").replace("[training]\n", "[training]\nbatchsize = 8\n"), encoding="utf8"
    )
    code, output = run(cfg, texts_file, tmp_path / "out", "--encoder", tiny_encoder_dir)
    assert code == 1
    assert "unknown setting 'batchsize'" in one_line_error(output)


def test_another_noise_function_from_config(tiny_encoder_dir, texts_file, tmp_path):
    import spacy

    seen = []

    @spacy.registry.misc("test_dae_cli.keep_first_word.v1")
    def keep_first_word():
        def noise(text, rng):
            seen.append(text)
            return text.split()[0]

        return noise

    cfg = tmp_path / "dae.cfg"
    text = CONFIG.read_text(encoding="utf8").replace(
        '@misc = "spacy_threephase.word_deletion.v1"\ndeletion_ratio = 0.6\n',
        '@misc = "test_dae_cli.keep_first_word.v1"\n',
    )
    cfg.write_text(text.replace('splitter = "whitespace"\n', ""), encoding="utf8")
    code, output = run(cfg, texts_file, tmp_path / "out", "--encoder", tiny_encoder_dir, *FAST)
    assert code == 0, output
    assert sorted(seen) == sorted(TINY_TEXTS)


def test_missing_and_empty_inputs(tiny_encoder_dir, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf8")
    code, output = run(CONFIG, empty, tmp_path / "out", "--encoder", tiny_encoder_dir)
    assert code == 1 and "no texts" in one_line_error(output)
    code, output = run(CONFIG, tmp_path / "nope.txt", tmp_path / "out", "--encoder", tiny_encoder_dir)
    assert code == 1 and "does not exist" in one_line_error(output)
    code, output = run(tmp_path / "nope.cfg", empty, tmp_path / "out")
    assert code == 1 and "config file does not exist" in one_line_error(output)


def test_gpu_id_without_cuda_is_a_clear_error(tiny_encoder_dir, texts_file, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, output = run(CONFIG, texts_file, tmp_path / "out", "--encoder", tiny_encoder_dir, "--gpu-id", "0", *FAST)
    assert code == 1 and "CUDA is not available" in one_line_error(output)


def test_available_in_spacys_cli():
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "threephase", "dae", "--help"], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert "OUTPUT_DIR" in result.stdout.upper()
