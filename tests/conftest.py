"""Shared fixtures: a tiny BERT encoder built locally in seconds (no downloads)."""

import os
import shutil
import subprocess
import venv
from pathlib import Path
from types import SimpleNamespace

import pytest

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO_ROOT / "assets" / "demo"


def quick_phase_args(batch_size: int, max_length: int = 0) -> list:
    """Command-line settings for a one-epoch phase-1/2/Joint run on tiny data: no progress bar
    and no step floor (`min_steps` would stretch a few texts to 200 steps)."""
    args = ["--training.progress", "false", "--training.batch_size", str(batch_size)]
    args += ["--training.epochs", "1", "--training.min_steps", "0"]
    return args + (["--encoder.max_length", str(max_length)] if max_length else [])


TINY_TEXTS = [
    "play some jazz music in the kitchen",
    "play the new album by the beatles",
    "what is the weather like in paris tomorrow",
    "will it rain in london this weekend",
    "book a table for two at an italian restaurant",
    "reserve a restaurant near me for tonight",
    "set an alarm for seven in the morning",
    "wake me up at six tomorrow",
    "add this song to my workout playlist",
    "how hot will it be on friday",
    "find me a cheap place to eat sushi",
    "turn off the alarm please",
]

# TINY_TEXTS with a lower-case label each (four intents, three texts each)
TINY_LABELLED = [
    ("play some jazz music in the kitchen", "music"),
    ("play the new album by the beatles", "music"),
    ("add this song to my workout playlist", "music"),
    ("what is the weather like in paris tomorrow", "weather"),
    ("will it rain in london this weekend", "weather"),
    ("how hot will it be on friday", "weather"),
    ("book a table for two at an italian restaurant", "food"),
    ("reserve a restaurant near me for tonight", "food"),
    ("find me a cheap place to eat sushi", "food"),
    ("set an alarm for seven in the morning", "alarm"),
    ("wake me up at six tomorrow", "alarm"),
    ("turn off the alarm please", "alarm"),
]


def write_docbins(path: Path, splits) -> Path:
    """Write {split}.spacy files for textcat from {split: [(text, label), ...]} (one label each)."""
    import spacy
    from spacy.tokens import DocBin

    path.mkdir(parents=True, exist_ok=True)
    nlp = spacy.blank("en")
    labels = sorted({label for rows in splits.values() for _, label in rows})
    for split, rows in splits.items():
        db = DocBin()
        for text, label in rows:
            doc = nlp.make_doc(text)
            doc.cats = {lab: float(lab == label) for lab in labels}
            db.add(doc)
        db.to_disk(path / f"{split}.spacy")
    return path


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run slow end-to-end tests")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or os.environ.get("RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow or RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def tiny_wordpiece_vocab(texts, size: int = 400) -> list:
    """A WordPiece vocabulary for `texts`, the same on every run: the special tokens, every
    character (alone and as a `##` continuation, so any word of these characters can be split),
    then the most frequent words (ties in alphabetical order). `tokenizers`' trainer is not used:
    it breaks ties between merges in hash order, so two builds gave different vocabularies and
    weights, and thresholds in the tests passed or failed with the build."""
    from collections import Counter

    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = Counter(w for t in texts for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(t)))
    chars = sorted({c for w in words for c in w})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + ["##" + c for c in chars]
    known = set(vocab)
    ranked = [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])) if w not in known]
    return vocab + ranked[: max(0, size - len(vocab))]


def build_tiny_encoder(path: Path, texts=TINY_TEXTS, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A 2-layer BERT with a WordPiece vocabulary built from `texts`, saved as an HF directory.
    The same texts and seed give the same files on every run."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = tiny_wordpiece_vocab(texts)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf8")
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True, model_max_length=64)
    tokenizer.save_pretrained(path)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """The tiny encoder of seed 0; TINY_ENCODER_SEED=N runs the suite on another one (to see how
    far a test's threshold is from failing)."""
    seed = int(os.environ.get("TINY_ENCODER_SEED", "0"))
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny_encoder"), seed=seed)


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not SHARED_DATASETS.exists():
        pytest.skip("../shared/datasets is not present on this machine")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def paper_cl_config(tmp_path_factory) -> Path:
    """configs/contrastive.cfg with the paper's shuffled pairs and pair loss (contrastive/paper.py)."""
    from spacy_threephase.config import load_config
    from spacy_threephase.contrastive.paper import with_paper_pairs

    path = tmp_path_factory.mktemp("configs") / "contrastive-paper.cfg"
    with_paper_pairs(load_config(REPO_ROOT / "configs" / "contrastive.cfg", interpolate=False)).to_disk(path)
    return path


@pytest.fixture
def phase_calls(monkeypatch):
    """Wrap train_dae / train_contrastive / train_joint (the real functions still run) and
    record (phase, output directory, start encoder, overrides) for every call."""
    import spacy_threephase.ablation as ablation
    import spacy_threephase.contrastive.train as cl_module
    import spacy_threephase.dae.train as dae_module
    import spacy_threephase.joint.train as joint_module

    calls = []

    def wrap(phase, module, name):
        real = getattr(module, name)

        def spy(config, data, output, *args, **kwargs):
            calls.append(
                {
                    "phase": phase,
                    "output": Path(output),
                    "encoder": kwargs.get("encoder"),
                    "overrides": dict(kwargs.get("overrides") or {}),
                }
            )
            return real(config, data, output, *args, **kwargs)

        monkeypatch.setattr(module, name, spy)
        monkeypatch.setattr(ablation, name, spy, raising=False)  # should ablation import it at module level

    wrap("dae", dae_module, "train_dae")
    wrap("contrastive", cl_module, "train_contrastive")
    wrap("joint", joint_module, "train_joint")
    return calls


def copy_repo(dest: Path) -> Path:
    """The files git would commit (tracked, and new ones not ignored): no .venv, no outputs."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split("\0")
    except (OSError, subprocess.CalledProcessError):
        outputs = ("corpus", "training", "metrics", "packages")
        ignore = shutil.ignore_patterns(".venv", ".git", "*.egg-info", "__pycache__", *outputs)
        return Path(shutil.copytree(REPO_ROOT, dest, ignore=ignore))
    for name in filter(None, listed):
        src = REPO_ROOT / name
        if src.is_file():  # listed but deleted in the working tree: skip
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="session")
def installed_venv(tmp_path_factory) -> SimpleNamespace:
    """A fresh virtual environment with this package installed as a user installs it, without
    extras: torch first (any other torch requirement would fetch a multi-GB CUDA build), then
    `pip install . -c constraints.txt` from a copy of the files git would commit. Shared by the
    slow tests that need an installed package (one install instead of one each).

    py: its python; env: the environment to run it in (offline, one thread, no user site);
    pip: the pip install command line; src: the copy it was installed from; dir: the venv."""
    root = tmp_path_factory.mktemp("installed")
    src = copy_repo(root / "src")
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True)
    py = str(env_dir / "bin" / "python")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONNOUSERSITE="1")
    env["PATH"] = str(env_dir / "bin") + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONPATH", None)
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["torch==2.13.0"], check=True, env=env, timeout=1200)
    subprocess.run(pip + [str(src), "-c", str(src / "constraints.txt")], check=True, env=env, timeout=1200)
    return SimpleNamespace(py=py, env=env, pip=pip, src=src, dir=env_dir)
