"""Helpers shared by the benchmark scripts: data subsets, phase-3 training, evaluation."""

import json
import os
import platform
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
DEMO = REPO / "assets" / "demo"


def read_jsonl(path: Path) -> List[dict]:
    with path.open(encoding="utf8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl(rows: List[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _sample_per_label(rows: List[dict], seed: int, take) -> List[dict]:
    """`take(group)` rows of each label's group (shuffled with the seed), in a seeded order."""
    by_label: Dict[str, List[dict]] = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    rng = random.Random(seed)
    out = []
    for label in sorted(by_label):
        group = list(by_label[label])
        rng.shuffle(group)
        out.extend(group[: take(group)])
    rng.shuffle(out)
    return out


def stratified_sample(rows: List[dict], per_class: Optional[int], seed: int) -> List[dict]:
    """At most `per_class` rows of each label (all when None), in a seeded order."""
    return _sample_per_label(rows, seed, lambda group: per_class) if per_class else list(rows)


def proportional_sample(rows: List[dict], size: int, seed: int) -> List[dict]:
    """About `size` rows, each label keeping its share (round(size * n_c / N), at least one)."""
    return _sample_per_label(rows, seed, lambda group: max(1, round(size * len(group) / len(rows))))


def prepare_dataset(name: str, work: Path, *, train_per_class=None, test_per_class=None, seed: int = 0) -> Path:
    """Write a (sub-sampled) copy of a data set as train/dev/test jsonl + convert it to a corpus."""
    from spacy_threephase.data.convert import convert_dataset

    src = DEMO if name == "demo" else SHARED / name
    if not src.exists():
        raise SystemExit(f"{src}: data set not found")
    raw = work / "raw" / name
    for split in ("train", "dev", "test"):
        path = src / f"{split}.jsonl"
        if not path.exists():
            continue
        rows = read_jsonl(path)
        if split == "train":
            rows = stratified_sample(rows, train_per_class, seed)
        elif split == "test":
            rows = stratified_sample(rows, test_per_class, seed)
        write_jsonl(rows, raw / f"{split}.jsonl")
    corpus = work / "corpus" / name
    convert_dataset(raw, corpus, seed=seed, overwrite=True)
    return corpus


def train_textcat(config_path: Path, corpus: Path, output: Path, overrides: Dict, config_edit=None) -> float:
    """Run `spacy train`; returns wall seconds. config_edit(config) may change sections."""
    from spacy import util
    from spacy.cli.train import train

    config = util.load_config(config_path, interpolate=False)
    if config_edit is not None:
        config_edit(config)
    edited = output.parent / f"{output.name}.cfg"
    output.parent.mkdir(parents=True, exist_ok=True)
    config.to_disk(edited)
    base = {"paths.train": str(corpus / "train.spacy"), "paths.dev": str(corpus / "dev.spacy")}
    base.update(overrides)
    start = time.time()
    train(edited, output, overrides=base)
    return time.time() - start


def evaluate(model_dir: Path, corpus: Path) -> Dict:
    import spacy

    from spacy_threephase.evaluation import evaluate_pipeline

    nlp = spacy.load(model_dir)
    return evaluate_pipeline(nlp, corpus / "test.spacy")


def load_average() -> str:
    """The 1/5/15-minute load averages, as printed next to every timing."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    import os

    import torch

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}"
    )


def git_commit(repo: Path = REPO) -> str:
    """`git rev-parse HEAD` of the repository (+ " (uncommitted changes)" when tracked files differ), or "unknown"."""
    import subprocess

    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    try:
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        dirty = ""
    return head + (" (uncommitted changes)" if dirty else "")


def device_description(gpu_id: int = -1) -> str:
    """The machine() line plus, for a CUDA device, its name and memory."""
    text = machine()
    if gpu_id >= 0:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(gpu_id)
            text = f"{props.name} ({props.total_memory / 2**30:.0f} GiB), cuda:{gpu_id}; {text}"
        else:
            text = f"cuda:{gpu_id} asked for but torch sees no CUDA device; {text}"
    return text


def run_product_phase(impl, runner, pauses, before) -> None:
    """Train `impl.phase` as the product does (its Trainer, no selection), for the speed
    benchmarks: `before(module, args)` accounts each step's batch, the losses go to
    `impl.losses`, and the interleaving `runner` pauses after the steps in `pauses`."""
    from spacy_threephase.callbacks import step_callback
    from spacy_threephase.training import Trainer

    def after(module, args, loss):
        impl.losses.append(float(loss.detach()))

    def on_step(desc, step, model):
        if desc == impl.name and step in pauses:
            runner.pause()

    hooks = [impl.model.register_forward_pre_hook(before), impl.model.register_forward_hook(after)]
    try:
        trainer = Trainer(impl.model, impl.training, desc=impl.name, selected=impl.enc.model)
        with step_callback(on_step):
            trainer.fit(impl.phase.make_batches, impl.phase.steps_per_epoch, None)
    finally:
        for h in hooks:
            h.remove()


def report_footer(script: str, args, argv, load: tuple, results: dict, machine_desc: str) -> None:
    """The speed benchmarks' closing lines (load, optimizer, machine, versions, command) and,
    with --json, their results in a file."""
    import sys

    import sentence_transformers
    import torch
    import transformers

    from spacy_threephase import __version__

    print(f"load average (1/5/15 min) before: {load[0]}; after: {load[1]}")
    print(f"s-t optimizer: {args.st_optimizer} (ours: spacy_threephase.training.build_optimizer)")
    print(f"machine: {machine_desc}")
    print(
        f"versions: spacy-threephase {__version__}, python {platform.python_version()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, sentence-transformers {sentence_transformers.__version__}"
    )
    print(f"command: python benchmarks/{script} {' '.join(argv if argv is not None else sys.argv[1:])}")
    if args.json:
        payload = {"args": {k: str(v) for k, v in vars(args).items()}, **results, "load": list(load)}
        args.json.write_text(json.dumps(payload, indent=2))
