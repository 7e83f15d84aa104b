"""The ablation driver on the tiny encoder with tiny budgets: all seven variants x 2 seeds,
and a two-variant run. Checked against what was really run: the phase functions are wrapped
(the real ones still run) to record their calls, the models are kept and evaluated again,
and the imbalance settings are read back from what phase 2 wrote."""

import json
import statistics
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spacy_threephase import ablation
from spacy_threephase.ablation import AblationSettings, parse_variants, run_ablation
from spacy_threephase.cli import app
from spacy_threephase.errors import UserError

TINY = {
    "training.progress": False,
    "training.batch_size": 8,
    "encoder.max_length": 32,
    "training.epochs": 1,
    "training.min_steps": 0,
}
# phase 3: a few real steps (no warm-up, a high head rate), so that seeds and variants differ
TEXTCAT = {
    "training.max_epochs": 3,
    "training.eval_frequency": 2,
    "training.patience": 0,
    "nlp.batch_size": 8,
    "training.batcher.size": 4,
    "training.optimizer.warmup_steps": 0,
    "training.optimizer.learn_rate": 0.01,
    "components.textcat.model.hidden_width": 16,
}
METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1")
# The paper's variants (display name, the encoder-producing runs, in order, under work/seedN/);
# written out here, not read from the module under test.
VARIANTS = {
    "threephase": "3-Phase",
    "joint": "Joint",
    "dae_ft": "DAE+FT",
    "cl_ft": "CL+FT",
    "extra_imb": "Extra Imb.",
    "no_imb": "No Imb.",
    "ft": "FT",
}
RECIPES = {
    "threephase": ["dae", "cl_dae"],  # CL from the DAE encoder
    "joint": ["joint"],  # one L_DAE + L_CL run from the base
    "dae_ft": ["dae"],
    "cl_ft": ["cl_base"],  # CL from the base encoder
    "extra_imb": ["dae", "cl_dae_extra"],
    "no_imb": ["dae", "cl_dae_noimb"],
    "ft": [],  # phase 3 from the base encoder
}

# An imbalanced training set (8 / 4 / 2), so that the three imbalance settings give different
# corrected sets: default (max 4, min 1.5) oversamples only "food" (f(2) = 2.67 -> x3); Extra
# Imb. (max 20) also "weather" (f(4) = 6.67 -> x7; f(2) = 13.3 -> x13); No Imb. none.
TRAIN = [
    *(
        (t, "music")
        for t in [
            "play some jazz music in the kitchen",
            "play the new album by the beatles",
            "add this song to my workout playlist",
            "play a song by the rolling stones",
            "turn up the music in the living room",
            "play my favourite playlist",
            "put on some relaxing piano music",
            "play the latest album of adele",
        ]
    ),
    *(
        (t, "weather")
        for t in [
            "what is the weather like in paris tomorrow",
            "will it rain in london this weekend",
            "how hot will it be on friday",
            "is it going to snow in the mountains",
        ]
    ),
    *((t, "food") for t in ["book a table for two at an italian restaurant", "find me a cheap place to eat sushi"]),
]
DEV = [
    ("play some rock music", "music"),
    ("will it be sunny in rome", "weather"),
    ("reserve a restaurant near me for tonight", "food"),
]
TEST = [
    ("play a song by queen", "music"),
    ("put on the radio in the car", "music"),
    ("what is the forecast for berlin", "weather"),
    ("will it be cold tomorrow morning", "weather"),
    ("book a table at a thai restaurant", "food"),
    ("find a pizza place near the station", "food"),
]
EXPECTED_AFTER = {  # class sizes after the correction, per phase-2 run
    "cl_dae": {"music": 8, "weather": 4, "food": 6},
    "cl_base": {"music": 8, "weather": 4, "food": 6},
    "cl_dae_extra": {"music": 8, "weather": 28, "food": 26},
}


def _data(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for split, rows in (("train", TRAIN), ("dev", DEV), ("test", TEST)):
        with (raw / f"{split}.jsonl").open("w") as fh:
            for text, label in rows:
                fh.write(json.dumps({"text": text, "label": label}) + "\n")
    return raw


def _run(tmp_path, tiny_encoder_dir, variants, seeds, phase_calls):
    phase3 = []

    def train_textcat(config_path, output, overrides, gpu_id):
        phase3.append({"output": Path(output), "overrides": dict(overrides)})
        ablation._train_phase3(config_path, output, overrides, gpu_id)

    s = AblationSettings(
        seeds=seeds,
        variants=variants,
        encoder=str(tiny_encoder_dir),
        keep_models=True,
        dae_overrides=dict(TINY),
        cl_overrides=dict(TINY),
        joint_overrides=dict(TINY),
        textcat_overrides=dict(TEXTCAT),
    )
    out = tmp_path / "abl"
    result = run_ablation(_data(tmp_path), out, s, train_textcat=train_textcat)
    return out, result, phase3


def _check(out, result, phase3, phase_calls, variants, seeds, encoder):
    import spacy

    from spacy_threephase.evaluation import evaluate_pipeline

    work = out / "work"
    corpus = Path(result["meta"]["corpus"])
    assert json.loads((out / "ablation.json").read_text()) == result

    # every variant, every seed, once
    runs = result["runs"]
    assert sorted((r["variant"], r["seed"]) for r in runs) == sorted((v, s) for v in variants for s in seeds)
    assert [row["variant"] for row in result["summary"]] == variants
    assert [row["name"] for row in result["summary"]] == [VARIANTS[v] for v in variants]

    # the recorded metrics are what evaluating the saved model gives; accuracy in [0, 1] and
    # equal to the confusion matrix's diagonal share
    for r in runs:
        model_dir = work / f"seed{r['seed']}" / f"textcat-{r['variant']}" / "model-best"
        metrics = evaluate_pipeline(spacy.load(model_dir), corpus / "test.spacy")
        for key in METRICS:
            assert 0.0 <= r[key] <= 1.0
            assert r[key] == pytest.approx(metrics[key], abs=1e-12), (r["variant"], r["seed"], key)
        cm = r["confusion_matrix"]
        assert sum(map(sum, cm)) == r["n_test"] == len(TEST)
        assert r["accuracy"] == pytest.approx(sum(cm[i][i] for i in range(len(cm))) / len(TEST))

    # mean and sample standard deviation of the per-seed values
    for row in result["summary"]:
        mine = sorted((r for r in runs if r["variant"] == row["variant"]), key=lambda r: r["seed"])
        assert row["seeds"] == seeds == [r["seed"] for r in mine]
        for key in METRICS + ("wall_seconds",):
            values = [r[key] for r in mine]
            assert row[key]["n"] == len(seeds)
            assert row[key]["mean"] == pytest.approx(statistics.mean(values), abs=1e-12)
            want_std = statistics.stdev(values) if len(values) > 1 else 0.0
            assert row[key]["std"] == pytest.approx(want_std, abs=1e-12)
            if len(values) == 2:  # the sample (n - 1) std of two values: |a - b| / sqrt(2)
                assert row[key]["std"] == pytest.approx(abs(values[0] - values[1]) / 2**0.5, abs=1e-12)
    # not all zero: the std check above compares real spreads (wall times always differ)
    assert any(row["wall_seconds"]["std"] > 0 for row in result["summary"])
    md = (out / "ablation.md").read_text()
    for row in result["summary"]:
        a = row["accuracy"]
        assert f"| {row['name']} | {100 * a['mean']:.2f} ± {100 * a['std']:.2f} |" in md

    # phase 1/2/joint runs: one per needed step and seed, each from the right encoder
    steps = {step for v in variants for step in RECIPES[v]}
    for seed in seeds:
        mine = [c for c in phase_calls if c["output"].parent == work / f"seed{seed}"]
        assert all(c["overrides"]["training.seed"] == seed for c in mine)
        by_step = Counter(c["output"].name for c in mine)
        assert by_step == Counter(steps), by_step  # e.g. ONE dae run serves every DAE variant
        start = {c["output"].name: c["encoder"] for c in mine}
        dae_dir = str(work / f"seed{seed}" / "dae")
        for step in steps:
            expected = {"dae": encoder, "joint": encoder, "cl_base": encoder}.get(step, dae_dir)
            assert start[step] == expected, (step, start[step])
        phases = {c["output"].name: c["phase"] for c in mine}
        assert all(phases[s] == ("contrastive" if s.startswith("cl_") else s) for s in steps)

    # phase 3: once per variant and seed, from the encoder its recipe ends in (FT: the base)
    assert len(phase3) == len(variants) * len(seeds)
    for call in phase3:
        seed_dir = call["output"].parent
        variant = call["output"].name[len("textcat-") :]
        recipe = RECIPES[variant]
        want = str(seed_dir / recipe[-1]) if recipe else encoder
        assert call["overrides"]["paths.encoder"] == want, (variant, call["overrides"]["paths.encoder"])
        assert call["overrides"]["system.seed"] == int(seed_dir.name[len("seed") :])
        # the saved pipeline was built from that encoder
        cfg = spacy.util.load_config(call["output"] / "model-best" / "config.cfg", interpolate=True)
        assert cfg["components"]["transformer"]["model"]["name"] == want

    # wall time: every phase the variant uses, a shared phase counted in full for each variant
    for seed in seeds:
        mine = {r["variant"]: r for r in runs if r["seed"] == seed}
        for variant, r in mine.items():
            assert set(r["phase_seconds"]) == set(RECIPES[variant]) | {"ft"}
            assert r["wall_seconds"] == pytest.approx(sum(r["phase_seconds"].values()))
            assert all(t > 0 for t in r["phase_seconds"].values())
        for step in steps:  # one measurement per shared phase and seed
            times = {mine[v]["phase_seconds"][step] for v in mine if step in RECIPES[v]}
            assert len(times) == 1, (step, times)

    # the imbalance settings phase 2 used, as written next to its encoder
    for seed in seeds:
        for step in steps:
            if not step.startswith("cl_"):
                continue
            written = json.loads((work / f"seed{seed}" / step / "imbalance.json").read_text())
            settings, classes = written["settings"], written["classes"]
            if step == "cl_dae_noimb":
                assert settings["enabled"] is False and classes == []
                continue
            assert settings["enabled"] is True
            want = (1.5, 20.0) if step == "cl_dae_extra" else (1.5, 4.0)
            assert (settings["min_ratio"], settings["max_ratio"]) == want
            assert {c["class"]: c["after"] for c in classes} == EXPECTED_AFTER[step]
            assert {c["class"]: c["before"] for c in classes} == {"music": 8, "weather": 4, "food": 2}


ALL = list(VARIANTS)


def test_parse_variants():
    assert parse_variants(["3-Phase,ft", "Extra Imb.", "cl+ft"]) == ["threephase", "ft", "extra_imb", "cl_ft"]
    assert parse_variants(None) == ALL
    with pytest.raises(UserError):
        parse_variants(["nope"])


@pytest.mark.slow  # about 35 s on 2 CPU cores; the fast test below covers a subset
def test_ablation_all_seven_variants_two_seeds(tmp_path, tiny_encoder_dir, phase_calls):
    out, result, phase3 = _run(tmp_path, tiny_encoder_dir, ALL, [0, 1], phase_calls)
    assert {row["name"] for row in result["summary"]} == {
        "3-Phase",
        "Joint",
        "DAE+FT",
        "CL+FT",
        "Extra Imb.",
        "No Imb.",
        "FT",
    }
    _check(out, result, phase3, phase_calls, ALL, [0, 1], str(tiny_encoder_dir))
    # per seed: 1 DAE, 4 contrastive (from DAE: default, extra, off; from the base), 1 joint
    assert Counter(c["phase"] for c in phase_calls) == {"dae": 2, "contrastive": 8, "joint": 2}


def test_ablation_three_variants_two_seeds_cleans_up(tmp_path, tiny_encoder_dir, phase_calls):
    """Fast subset: 3-Phase and No Imb. share one DAE run per seed; FT starts from the base."""
    variants = ["threephase", "no_imb", "ft"]
    out, result, phase3 = _run(tmp_path, tiny_encoder_dir, variants, [0, 1], phase_calls)
    _check(out, result, phase3, phase_calls, variants, [0, 1], str(tiny_encoder_dir))
    assert Counter(c["phase"] for c in phase_calls) == {"dae": 2, "contrastive": 4}
    # without --keep-models the models are deleted after evaluation
    s = AblationSettings(
        seeds=[0],
        variants=["ft"],
        encoder=str(tiny_encoder_dir),
        textcat_overrides=dict(TEXTCAT),
    )
    res = run_ablation(Path(result["meta"]["corpus"]), tmp_path / "abl2", s)
    assert [r["variant"] for r in res["runs"]] == ["ft"]
    assert not list((tmp_path / "abl2" / "work").glob("seed*/textcat-*"))


def test_ablate_cli_refuses_existing_output_and_bad_variant(tmp_path):
    out = tmp_path / "abl"
    out.mkdir()
    (out / "x").write_text("x")
    res = CliRunner().invoke(app, ["ablate", str(out), "--variants", "ft"])
    assert res.exit_code == 1 and "--overwrite" in res.output
    res = CliRunner().invoke(app, ["ablate", str(out), "--variants", "ft", "--resume"])
    assert res.exit_code == 1 and "not a resumable ablation run" in res.output
    res = CliRunner().invoke(app, ["ablate", str(out), "--variants", "ft", "--resume", "--overwrite"])
    assert res.exit_code == 1 and "give one" in res.output and (out / "x").exists()
    res = CliRunner().invoke(app, ["ablate", str(tmp_path / "new"), "--variants", "bogus"])
    assert res.exit_code == 1 and "bogus" in res.output
    res = CliRunner().invoke(
        app, ["ablate", str(tmp_path / "new2"), "--variants", "ft", "--dae.training.x", "1", "--nope"]
    )
    assert res.exit_code == 1 and "--nope" in res.output
