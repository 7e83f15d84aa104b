"""Slow: the package installed from a built wheel, without extras, into a fresh virtual
environment (torch, then `pip install . -c constraints.txt`) runs phases 1-3 through its CLI.

This is what proves the declared dependencies are enough (an undeclared import such as
scipy fails here, not on a user's machine) and that the default configs ship inside the
package: every phase reads the config that `default_config_path` finds in the installed
package, not the repository's configs/.
"""

import json
import subprocess
from pathlib import Path

import pytest
from conftest import TINY_LABELLED, build_tiny_encoder, quick_phase_args

pytestmark = pytest.mark.slow

ROWS = TINY_LABELLED[:9]
SMALL = quick_phase_args(4)


def write_data(path: Path) -> Path:
    path.mkdir(parents=True)
    for split, rows in (("train", ROWS * 2), ("dev", ROWS), ("test", ROWS)):
        lines = [json.dumps({"text": text, "label": label}) for text, label in rows]
        (path / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf8")
    return path


def test_phases_1_to_3_without_extras(installed_venv, tmp_path):
    py, env, env_dir = installed_venv.py, installed_venv.env, installed_venv.dir
    work = tmp_path / "work"
    work.mkdir()

    def run(*args, timeout=900):
        proc = subprocess.run([py, *map(str, args)], cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc.stdout

    # no extras: scipy (once an undeclared import of phase 2) is not there
    run("-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('scipy') is not None)")
    configs = json.loads(
        run(
            "-c",
            (
                "import json; from spacy_threephase.configs import NAMES, default_config_path; "
                "print(json.dumps({n: str(default_config_path(n)) for n in NAMES}))"
            ),
        )
    )
    for path in configs.values():
        assert Path(path).is_file() and str(env_dir) in path, path  # from the installed wheel
    encoder = build_tiny_encoder(tmp_path / "encoder")

    run("-m", "spacy_threephase", "data", write_data(tmp_path / "data"), "corpus", "--overwrite")
    assert (work / "corpus" / "texts.txt").exists() and (work / "corpus" / "train.spacy").exists()

    # phase 1 with cls pooling: phases 2 and 3 must carry it on without being told
    run(
        "-m",
        "spacy_threephase",
        "dae",
        configs["dae"],
        "corpus/texts.txt",
        "training/dae",
        "--encoder",
        encoder,
        "--encoder.pooling",
        "cls",
        "--encoder.max_length",
        "32",
        *SMALL,
    )
    assert json.loads((work / "training" / "dae" / "threephase.json").read_text())["pooling"] == "cls"

    run(
        "-m",
        "spacy_threephase",
        "contrastive",
        configs["contrastive"],
        "corpus",
        "training/contrastive",
        "--encoder",
        "training/dae",
        "--encoder.max_length",
        "32",
        *SMALL,
    )
    assert json.loads((work / "training" / "contrastive" / "threephase.json").read_text())["pooling"] == "cls"
    assert (work / "training" / "contrastive" / "model.safetensors").exists()

    run(
        "-m",
        "spacy",
        "threephase",
        "train",
        configs["textcat"],
        "--output",
        "training/textcat",
        "--paths.train",
        "corpus/train.spacy",
        "--paths.dev",
        "corpus/dev.spacy",
        "--paths.encoder",
        "training/contrastive",
        "--training.max_epochs",
        "2",
        "--training.eval_frequency",
        "3",
        "--training.batcher.size",
        "4",
        "--components.textcat.model.hidden_width",
        "8",
    )
    assert (work / "training" / "textcat" / "model-best" / "config.cfg").exists()

    out = run(
        "-c",
        (
            "import json, spacy; nlp = spacy.load('training/textcat/model-best'); "
            "print(json.dumps({'cats': nlp('wake me up at seven').cats, 'empty': nlp('').cats, "
            "'pooling': nlp.get_pipe('textcat').model.attrs['pooling']}))"
        ),
    )
    result = json.loads(out.strip().splitlines()[-1])
    assert set(result["cats"]) == {label for _, label in ROWS}
    assert sum(result["cats"].values()) == pytest.approx(1.0, abs=1e-4)
    assert sum(result["empty"].values()) == pytest.approx(1.0, abs=1e-4)
    assert result["pooling"] == "cls"
