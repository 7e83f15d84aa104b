"""Bad input to phases 1 and 2 ends in one clear line (or a counted warning), never a traceback.

Covered elsewhere: data step (tests/test_data_errors.py: non-UTF-8, malformed JSONL/CSV,
missing columns, empty texts, single class, dev/test labels unseen in train), phase-1 config
errors (tests/test_dae_cli.py), phase-2 config/data errors and single-example classes
(tests/test_contrastive_train.py), missing encoder path / offline hub name
(tests/test_encoder.py), over-long texts in the phase-3 pipeline (tests/test_architecture.py).
"""

import json
from pathlib import Path

import pytest
from conftest import TINY_TEXTS, quick_phase_args
from typer.testing import CliRunner

from spacy_threephase.cli import app

REPO = Path(__file__).resolve().parents[1]
DAE = quick_phase_args(4)
CL = quick_phase_args(8)
LABELLED = [(t, ["music", "weather", "food", "alarm"][i % 4]) for i, t in enumerate(TINY_TEXTS)]


def run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def one_line_error(output: str) -> str:
    """The output ends in exactly one error line (phase 2 may have printed progress before it)."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("✘") and sum(line.startswith("✘") for line in lines) == 1, output
    assert "Traceback" not in output, output
    return lines[-1]


def corpus(path: Path, rows) -> Path:
    path.mkdir()
    (path / "train.jsonl").write_text(
        "".join(json.dumps({"text": t, "labels": [y]}) + "\n" for t, y in rows), encoding="utf8"
    )
    return path


def test_dae_non_utf8_texts(tiny_encoder_dir, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_bytes(b"fine line\ncaf\xe9 latin-1\n")
    code, output = run(
        "dae", REPO / "configs" / "dae.cfg", texts, tmp_path / "out", "--encoder", tiny_encoder_dir, *DAE
    )
    assert code == 1 and "texts.txt:2" in one_line_error(output) and "UTF-8" in output
    assert not (tmp_path / "out").exists()


def test_dae_whitespace_lines_counted_and_long_texts_truncated(tiny_encoder_dir, tmp_path):
    texts = tmp_path / "texts.txt"
    very_long = " ".join(TINY_TEXTS * 30)  # ~2,000 words; the tiny encoder takes 64 wordpieces
    texts.write_text("\n".join(TINY_TEXTS[:6]) + "\n   \n\t\n\n" + very_long + "\n", encoding="utf8")
    # max_length 0 = the model's own limit: the cut must happen there (no position-embedding overflow)
    code, output = run(
        "dae",
        REPO / "configs" / "dae.cfg",
        texts,
        tmp_path / "out",
        "--encoder",
        tiny_encoder_dir,
        *DAE,
        "--encoder.max_length",
        "0",
    )
    assert code == 0, output
    assert "skipped 3 blank or whitespace-only lines; training on 7 texts" in output


def test_contrastive_long_texts_truncated(tiny_encoder_dir, tmp_path):
    rows = LABELLED + [(" ".join([t] * 200), y) for t, y in LABELLED[:4]]
    code, output = run(
        "contrastive",
        REPO / "configs" / "contrastive.cfg",
        corpus(tmp_path / "c", rows),
        tmp_path / "out",
        "--encoder",
        tiny_encoder_dir,
        *CL,
    )
    assert code == 0, output
    assert (tmp_path / "out" / "model.safetensors").exists()


def test_contrastive_non_utf8_corpus(tiny_encoder_dir, tmp_path):
    c = corpus(tmp_path / "c", LABELLED)
    with (c / "train.jsonl").open("ab") as fh:
        fh.write(b'{"text": "caf\xe9", "labels": ["food"]}\n')
    code, output = run(
        "contrastive", REPO / "configs" / "contrastive.cfg", c, tmp_path / "out", "--encoder", tiny_encoder_dir, *CL
    )
    assert code == 1 and f"train.jsonl:{len(LABELLED) + 1}" in one_line_error(output) and "UTF-8" in output


def test_contrastive_single_class_and_whitespace_text(tiny_encoder_dir, tmp_path):
    single = corpus(tmp_path / "single", [(t, "music") for t in TINY_TEXTS])
    code, output = run(
        "contrastive",
        REPO / "configs" / "contrastive.cfg",
        single,
        tmp_path / "out",
        "--encoder",
        tiny_encoder_dir,
        *CL,
    )
    assert code == 1 and "at least two classes" in one_line_error(output)
    blank = corpus(tmp_path / "blank", LABELLED + [("   ", "music")])
    code, output = run(
        "contrastive", REPO / "configs" / "contrastive.cfg", blank, tmp_path / "out", "--encoder", tiny_encoder_dir, *CL
    )
    assert code == 1 and "empty text" in one_line_error(output)


def test_missing_encoder_and_wrong_type_in_both_phases(tiny_encoder_dir, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TINY_TEXTS) + "\n", encoding="utf8")
    c = corpus(tmp_path / "c", LABELLED)
    for cmd, cfg, data in (("dae", "dae.cfg", texts), ("contrastive", "contrastive.cfg", c)):
        code, output = run(
            cmd, REPO / "configs" / cfg, data, tmp_path / "out", "--encoder", tmp_path / "no_such_model", *DAE
        )
        assert code == 1 and "no_such_model" in one_line_error(output), output
        code, output = run(
            cmd,
            REPO / "configs" / cfg,
            data,
            tmp_path / "out",
            "--encoder",
            tiny_encoder_dir,
            "--training.checkpoint_every",
            "often",
        )
        assert code == 1 and "checkpoint_every must be an integer" in one_line_error(output)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["train", str(REPO / "configs" / "textcat.cfg"), "--output", "OUT"],
        ["dae", str(REPO / "configs" / "dae.cfg"), "texts.txt", "OUT"],
        ["contrastive", str(REPO / "configs" / "contrastive.cfg"), "corpus", "OUT"],
        ["joint", str(REPO / "configs" / "joint.cfg"), "corpus", "OUT"],
    ],
)
def test_malformed_config_override_is_one_line(command, tmp_path):
    """A stray word among the `--section.key value` overrides: one line, exit 1, nothing written."""
    args = [str(tmp_path / a) if a in ("OUT", "texts.txt", "corpus") else a for a in command]
    result = CliRunner().invoke(app, args + ["training.epochs", "3"])
    assert result.exit_code == 1, result.output
    assert "cannot parse config overrides 'training.epochs 3'; use --section.key value" in result.output
    assert not (tmp_path / "OUT").exists()
