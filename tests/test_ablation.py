"""The ablation driver on the tiny encoder with tiny budgets: 2 variants x 2 seeds."""
import json

import pytest
from typer.testing import CliRunner

from spacy_threephase.ablation import AblationSettings, parse_variants, run_ablation
from spacy_threephase.cli import app
from spacy_threephase.errors import UserError

from test_contrastive_train import LABELLED

TINY = {"training.progress": False, "training.batch_size": 8, "encoder.max_length": 32, "training.epochs": 1}
TEXTCAT = {"training.max_epochs": 2, "training.eval_frequency": 2, "training.patience": 0, "nlp.batch_size": 8}


def _data(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = LABELLED * 2
    for split, part in (("train", rows), ("dev", LABELLED), ("test", LABELLED)):
        with (raw / f"{split}.jsonl").open("w") as fh:
            for text, label in part:
                fh.write(json.dumps({"text": text, "label": label}) + "\n")
    return raw


def test_parse_variants():
    assert parse_variants(["3-Phase,ft", "Extra Imb.", "cl+ft"]) == ["threephase", "ft", "extra_imb", "cl_ft"]
    assert len(parse_variants(None)) == 7
    with pytest.raises(UserError):
        parse_variants(["nope"])


def test_ablation_two_variants_two_seeds(tmp_path, tiny_encoder_dir):
    s = AblationSettings(
        seeds=[0, 1], variants=["threephase", "ft"], encoder=str(tiny_encoder_dir),
        dae_overrides=dict(TINY), cl_overrides=dict(TINY), textcat_overrides=dict(TEXTCAT),
    )
    out = tmp_path / "abl"
    result = run_ablation(_data(tmp_path), out, s)
    assert {r["name"] for r in result["summary"]} == {"3-Phase", "FT"}
    for row in result["summary"]:
        assert row["seeds"] == [0, 1]
        for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "wall_seconds"):
            assert set(row[key]) == {"mean", "std", "n"} and row[key]["n"] == 2
            assert 0 <= row[key]["mean"] and row[key]["std"] >= 0
    runs = result["runs"]
    assert len(runs) == 4
    three = [r for r in runs if r["variant"] == "threephase"]
    assert set(three[0]["phase_seconds"]) == {"dae", "cl_dae", "ft"}
    assert set(next(r for r in runs if r["variant"] == "ft")["phase_seconds"]) == {"ft"}
    md = (out / "ablation.md").read_text()
    assert "| 3-Phase |" in md and "| FT |" in md and "±" in md
    # models are cleaned up unless --keep-models
    assert not list((out / "work").glob("seed*/textcat-*")) and not list((out / "work").glob("seed*/dae"))


def test_ablate_cli_refuses_existing_output_and_bad_variant(tmp_path):
    out = tmp_path / "abl"
    out.mkdir()
    (out / "x").write_text("x")
    res = CliRunner().invoke(app, ["ablate", str(out), "--variants", "ft"])
    assert res.exit_code == 1 and "--overwrite" in res.output
    res = CliRunner().invoke(app, ["ablate", str(tmp_path / "new"), "--variants", "bogus"])
    assert res.exit_code == 1 and "bogus" in res.output
    res = CliRunner().invoke(app, ["ablate", str(tmp_path / "new2"), "--variants", "ft", "--dae.training.x", "1", "--nope"])
    assert res.exit_code == 1 and "--nope" in res.output
