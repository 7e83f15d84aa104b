"""The project's `ft` and `joint` workflows on the tiny encoder and a tiny corpus.

The fast tests run every step's command line exactly as project.yml writes it (vars
substituted, with the data, the encoder and small-budget configs passed as vars, as
`spacy project run WORKFLOW . --vars.NAME VALUE` would), in-process through the same CLI
apps (`python -m spacy_threephase` and `python -m spacy threephase`). A slow test runs the
two workflows with `spacy project run` itself."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import srsly
from conftest import REPO_ROOT
from test_ablation import DEV, TEST, TRAIN
from typer.testing import CliRunner

PROJECT = srsly.read_yaml(REPO_ROOT / "project.yml")
LABELS = sorted({label for _, label in TRAIN})
# small budgets, written into copies of the project's configs
TEXTCAT_BUDGET = {
    "training.max_epochs": 3,
    "training.eval_frequency": 4,
    "training.patience": 0,
    "training.batcher.size": 4,
    "training.optimizer.warmup_steps": 0,
    "components.textcat.model.hidden_width": 16,
    "nlp.batch_size": 8,
}
# select_best off: the trained weights are written even where the input encoder scores as well
JOINT_BUDGET = {
    "training.epochs": 1,
    "training.min_steps": 0,
    "training.batch_size": 8,
    "training.progress": False,
    "encoder.max_length": 32,
    "training.select_best": False,
}


def _tiny_config(src: Path, dest: Path, overrides) -> Path:
    config = spacy.util.load_config(src, overrides=overrides, interpolate=False)
    config.to_disk(dest)
    return dest


def _setup(root: Path, encoder: Path):
    """A project directory with a tiny raw data set and small-budget configs; returns the vars."""
    raw = root / "raw"
    raw.mkdir(parents=True)
    for split, rows in (("train", TRAIN), ("dev", DEV), ("test", TEST)):
        with (raw / f"{split}.jsonl").open("w", encoding="utf8") as fh:
            for text, label in rows:
                fh.write(json.dumps({"text": text, "label": label}) + "\n")
    (root / "tiny_configs").mkdir()
    textcat = _tiny_config(REPO_ROOT / "configs" / "textcat.cfg", root / "tiny_configs" / "textcat.cfg", TEXTCAT_BUDGET)
    joint = _tiny_config(REPO_ROOT / "configs" / "joint.cfg", root / "tiny_configs" / "joint.cfg", JOINT_BUDGET)
    return {
        "data": str(raw),
        "encoder": str(encoder),
        "textcat_config": str(textcat),
        "joint_config": str(joint),
        "head_learn_rate": 0.01,  # train-* pass it on the command line
    }


def _commands(workflow: str, variables):
    """(name, argv, outputs) of each step of a workflow, with the vars substituted."""
    values = {**PROJECT["vars"], **variables}
    subst = lambda s: re.sub(r"\$\{vars\.(\w+)\}", lambda m: str(values[m.group(1)]), s)
    commands = {c["name"]: c for c in PROJECT["commands"]}
    out = []
    for name in PROJECT["workflows"][workflow]:
        command = commands[name]
        (script,) = command["script"]
        out.append((name, shlex.split(subst(script)), [subst(o) for o in command.get("outputs", [])]))
    return out


def _run_in_process(workflow: str, root: Path, variables, monkeypatch):
    from spacy.cli._util import app as spacy_app

    import spacy_threephase.cli.spacy_commands  # noqa: F401  (registers `spacy threephase`)
    from spacy_threephase.cli import app

    monkeypatch.chdir(root)
    runner = CliRunner()
    steps = _commands(workflow, variables)
    for name, argv, outputs in steps:
        assert argv[:2] == ["python", "-m"], argv
        cli = {"spacy_threephase": app, "spacy": spacy_app}[argv[2]]
        res = runner.invoke(cli, argv[3:])
        assert res.exit_code == 0, (name, res.output[-3000:], res.exception)
        for output in outputs:  # what project.yml says the step writes
            assert (root / output).exists(), (name, output)
    return steps


def _check_corpus(root: Path):
    meta = json.loads((root / "corpus" / "labels.json").read_text(encoding="utf8"))
    assert meta["labels"] == LABELS and meta["multi_label"] is False
    texts = (root / "corpus" / "texts.txt").read_text(encoding="utf8").splitlines()
    assert sorted(texts) == sorted(t for t, _ in TRAIN)


def _check_pipeline_and_metrics(root: Path, model_dir: str, metrics_dir: str, encoder: Path):
    """The pipeline was trained from `encoder`, predicts a distribution over the labels, and
    the metrics file holds what evaluating it on the test split gives."""
    from spacy_threephase.evaluation import evaluate_pipeline

    model = root / model_dir / "model-best"
    assert (root / model_dir / "model-last").exists()
    cfg = spacy.util.load_config(model / "config.cfg", interpolate=True)
    name = cfg["components"]["transformer"]["model"]["name"]
    assert (root / name).resolve() == encoder.resolve(), name
    nlp = spacy.load(model)
    assert type(nlp.get_pipe("textcat")).__name__ == "TextCategorizer"
    for text, _ in TEST:
        cats = nlp(text).cats
        assert sorted(cats) == LABELS and sum(cats.values()) == pytest.approx(1.0, abs=1e-5)
    metrics = json.loads((root / metrics_dir / "metrics.json").read_text(encoding="utf8"))
    assert (
        metrics["n_examples"] == len(TEST)
        and metrics["labels"] == sorted(metrics["labels"])
        and sorted(metrics["labels"]) == LABELS
    )
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1"):
        assert 0.0 <= metrics[key] <= 1.0
    cm = metrics["confusion_matrix"]
    assert sum(map(sum, cm)) == len(TEST)
    assert [sum(row) for row in cm] == [sum(lab == label for _, lab in TEST) for label in metrics["labels"]]
    assert metrics["accuracy"] == pytest.approx(sum(cm[i][i] for i in range(len(cm))) / len(TEST))
    again = evaluate_pipeline(nlp, root / "corpus" / "test.spacy")
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "confusion_matrix"):
        assert metrics[key] == again[key], key
    assert (root / metrics_dir / "metrics.txt").exists()
    return metrics


def test_ft_workflow(tmp_path, tiny_encoder_dir, monkeypatch):
    variables = _setup(tmp_path, tiny_encoder_dir)
    steps = _run_in_process("ft", tmp_path, variables, monkeypatch)
    assert [name for name, _, _ in steps] == ["data", "train-ft", "evaluate-ft"]
    _check_corpus(tmp_path)
    # plain fine-tuning: phase 3 straight from the base encoder, no phase 1/2 output anywhere
    _check_pipeline_and_metrics(tmp_path, "training/textcat-ft", "metrics/ft", tiny_encoder_dir)
    assert sorted(p.name for p in (tmp_path / "training").iterdir()) == ["textcat-ft"]


def test_joint_workflow(tmp_path, tiny_encoder_dir, monkeypatch):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel

    variables = _setup(tmp_path, tiny_encoder_dir)
    steps = _run_in_process("joint", tmp_path, variables, monkeypatch)
    assert [name for name, _, _ in steps] == ["data", "joint-encoder", "train-joint", "evaluate-joint"]
    _check_corpus(tmp_path)
    joint = tmp_path / "training" / "joint"
    meta = json.loads((joint / "threephase.json").read_text(encoding="utf8"))
    assert meta["phase"] == "joint" and meta["pooling"] == "mean"
    model = AutoModel.from_pretrained(joint)
    assert model.config.hidden_size == 32
    before, after = load_file(str(tiny_encoder_dir / "model.safetensors")), load_file(str(joint / "model.safetensors"))
    assert set(before) == set(after)  # an encoder only: no decoder weights saved
    assert any(not torch.equal(before[k], after[k]) for k in before)  # and it was trained
    # phase 3 started from the Joint encoder
    _check_pipeline_and_metrics(tmp_path, "training/textcat-joint", "metrics/joint", joint)


@pytest.mark.slow
def test_ft_and_joint_with_spacy_project_run(tmp_path, tiny_encoder_dir):
    """The same two workflows through `spacy project run` (subprocesses; one to two minutes)."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO_ROOT / "project.yml", root / "project.yml")
    shutil.copytree(REPO_ROOT / "configs", root / "configs")
    variables = _setup(root, tiny_encoder_dir)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    args = [arg for key, value in variables.items() for arg in (f"--vars.{key}", str(value))]
    for workflow in ("ft", "joint"):
        proc = subprocess.run(
            [sys.executable, "-m", "spacy", "project", "run", workflow, str(root), *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _check_corpus(root)
    _check_pipeline_and_metrics(root, "training/textcat-ft", "metrics/ft", tiny_encoder_dir)
    _check_pipeline_and_metrics(root, "training/textcat-joint", "metrics/joint", root / "training" / "joint")
