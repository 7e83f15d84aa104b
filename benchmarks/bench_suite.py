"""Benchmark suite: 3-Phase vs FT vs Joint on snips, sst5, sst2 and an imbalanced snips.

For each data set and seed: test accuracy and macro-F1 of each method, per-phase training
wall time and throughput (examples/s of the training epochs, from the phase logs; phase 3:
train docs x epochs logged / wall time, a lower bound), peak memory per phase (each phase runs in its own
process: peak RSS = VmHWM; on CUDA also torch's peak allocated memory), and inference docs/s of the
trained pipeline (`nlp.pipe`) vs plain transformers (tokenizer + AutoModel + pooling, no
spaCy) on the same test texts and batch size.

Data sets (../shared/datasets):
  snips      7 intents, full train (13,084) / dev (700) / test (700)
  sst5       full train (8,544) / dev (1,101) / test (2,210)
  sst2       train SUBSET: --sst2-train-per-class (default 2,500 per class = 5,000 of 67,349;
             seeded stratified sample); no dev split in the source: 10% of that subset is
             carved off as dev (stratified, seed 0); test = GLUE dev (872)
  snips_imb  snips with three classes (AddToPlaylist, RateBook, SearchCreativeWork) down-
             sampled to 5% of their train size (seeded, at least 2 examples); dev/test as snips

Full sizes are meant for a GPU; on a CPU use subsets, e.g. (a smoke run):
    python benchmarks/bench_suite.py --datasets snips sst5 sst2 snips_imb \
        --train-per-class 20 --test-per-class 20 --dev-per-class 10 --seeds 0 \
        --dae-epochs 1 --cl-epochs 1 --joint-epochs 1 --max-epochs 2
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional

from _common import REPO, SHARED, machine, read_jsonl, stratified_sample, write_jsonl

DATASETS = ("snips", "sst5", "sst2", "snips_imb")
IMBALANCED = ("AddToPlaylist", "RateBook", "SearchCreativeWork")
METHODS = ("threephase", "ft", "joint")
CONFIGS = REPO / "configs"

# Run a module in this child process and write its peak memory to a JSON file at exit.
_CHILD = (
    "import atexit, json, resource, runpy, sys\n"
    "out = sys.argv[1]; sys.argv = sys.argv[2:]\n"
    "def _report():\n"
    # VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss across fork+exec, so it would
    # report the (larger) benchmark process's RSS at fork time instead of this process's peak
    "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
    "    kb = int(hwm[0].split()[1]) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "    peak = {'max_rss_mb': kb / 1024}\n"
    "    torch = sys.modules.get('torch')\n"
    "    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():\n"
    "        peak['cuda_peak_mb'] = torch.cuda.max_memory_allocated() / 2**20\n"
    "    open(out, 'w').write(json.dumps(peak))\n"
    "atexit.register(_report)\n"
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
)


def prepare(name: str, work: Path, args) -> Path:
    """Write raw/<name>/{train,dev,test}.jsonl (subsets as asked) and convert to a corpus."""
    from spacy_threephase.data.convert import convert_dataset

    src = SHARED / ("snips" if name == "snips_imb" else name)
    if not src.exists():
        raise SystemExit(f"{src}: data set not found")
    raw = work / "raw" / name
    per_train = args.train_per_class or (args.sst2_train_per_class if name == "sst2" else None)
    for split in ("train", "dev", "test"):
        path = src / f"{split}.jsonl"
        if not path.exists():
            continue
        rows = read_jsonl(path)
        per = {"train": per_train, "dev": args.dev_per_class, "test": args.test_per_class}[split]
        rows = stratified_sample(rows, per or None, args.data_seed)
        if name == "snips_imb" and split == "train":
            rows = downsample(rows, IMBALANCED, 0.05, args.data_seed)
        write_jsonl(rows, raw / f"{split}.jsonl")
    corpus = work / "corpus" / name
    convert_dataset(raw, corpus, seed=0, overwrite=True)
    return corpus


def downsample(rows: List[dict], classes, share: float, seed: int) -> List[dict]:
    rng = random.Random(seed)
    by = defaultdict(list)
    for r in rows:
        by[r["label"]].append(r)
    keep = []
    for label in sorted(by):
        group = by[label]
        if label in classes:
            group = list(group)
            rng.shuffle(group)
            group = group[: max(2, round(share * len(group)))]
        keep.extend(group)
    rng.shuffle(keep)
    return keep


def run_child(module_args: List[str], peak_file: Path, log: Path) -> Dict:
    start = time.time()
    with log.open("w") as fh:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(peak_file)] + module_args, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO
        )
    seconds = time.time() - start
    if proc.returncode != 0:
        raise SystemExit(
            f"failed ({proc.returncode}): {' '.join(module_args)}; see {log}:\n"
            + "".join(log.read_text().splitlines(True)[-15:])
        )
    peak = json.loads(peak_file.read_text()) if peak_file.exists() else {}
    return {"seconds": seconds, **peak}


def _epochs_throughput(records: List[dict]) -> Optional[float]:
    ex = sum(r.get("examples", 0) for r in records)
    sec = sum(r.get("seconds", 0.0) for r in records)
    return ex / sec if sec else None


def encoder_phase(kind: str, corpus: Path, out: Path, encoder: str, seed: int, args) -> Dict:
    common = [
        "--encoder",
        encoder,
        "--gpu-id",
        str(args.gpu_id),
        "--training.seed",
        str(seed),
        "--training.progress",
        "false",
        "--overwrite",
    ]
    if kind == "dae":
        cmd = ["spacy_threephase", "dae", str(CONFIGS / "dae.cfg"), str(corpus / "texts.txt"), str(out)] + common
        if args.dae_epochs:
            cmd += ["--training.epochs", str(args.dae_epochs)]
    elif kind == "contrastive":
        cmd = ["spacy_threephase", "contrastive", str(CONFIGS / "contrastive.cfg"), str(corpus), str(out)] + common
        if args.cl_epochs:
            cmd += ["--training.epochs", str(args.cl_epochs)]
    else:
        cmd = ["spacy_threephase", "joint", str(CONFIGS / "joint.cfg"), str(corpus), str(out)] + common
        if args.joint_epochs:
            cmd += ["--training.epochs", str(args.joint_epochs)]
    res = run_child(cmd, out.parent / f"{out.name}.peak.json", out.parent / f"{out.name}.log")
    if kind == "dae":
        records = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines() if line.strip()]
    else:
        records = json.loads((out / "metrics.json").read_text())["epochs"]
    res["examples_per_s"] = _epochs_throughput(records)
    res["unit"] = "texts" if kind == "dae" else "pairs (joint: + one DAE batch each)" if kind == "joint" else "pairs"
    return res


def phase3(corpus: Path, out: Path, encoder: str, seed: int, args) -> Dict:
    cmd = [
        "spacy_threephase",
        "train",
        str(CONFIGS / "textcat.cfg"),
        "--output",
        str(out),
        "--overwrite",
        "--paths.train",
        str(corpus / "train.spacy"),
        "--paths.dev",
        str(corpus / "dev.spacy"),
        "--paths.encoder",
        encoder,
        "--system.seed",
        str(seed),
        "--gpu-id",
        str(args.gpu_id),
    ]
    if args.max_epochs:
        cmd += ["--training.max_epochs", str(args.max_epochs)]
    res = run_child(cmd, out.parent / f"{out.name}.peak.json", out.parent / f"{out.name}.log")
    # spaCy's console log: "E    #   LOSS ..." rows; the first column is the epoch
    epochs = 0
    for line in (out.parent / f"{out.name}.log").read_text().splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[0].isdigit() and parts[1].isdigit():
            epochs = max(epochs, int(parts[0]) + 1)
    n_train = len(read_jsonl(corpus / "train.jsonl"))
    res["epochs_run"] = epochs
    res["examples_per_s"] = n_train * epochs / res["seconds"] if epochs else None
    # a lower bound: spaCy logs a row per dev evaluation (every eval_frequency steps), none at the end
    res["unit"] = "docs, lower bound: epochs up to the last logged evaluation; wall time incl. evaluation and loading"
    return res


def inference(
    model_dir: Path, encoder_dir: str, texts: List[str], batch_size: int, gpu_id: int, repeats: int = 2
) -> Dict:
    """docs/s of nlp.pipe vs tokenizer + AutoModel + mean pooling on the same texts / batch size."""
    import spacy
    import torch

    from spacy_threephase.encoder import load_encoder, pool, tokenize

    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    nlp = spacy.load(model_dir)
    list(nlp.pipe(texts[:batch_size], batch_size=batch_size))  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _doc in nlp.pipe(texts, batch_size=batch_size):
            pass
        best = min(best, time.perf_counter() - t)
    ours = len(texts) / best
    enc = load_encoder(encoder_dir)
    device = torch.device(f"cuda:{gpu_id}" if gpu_id >= 0 else "cpu")
    model = enc.model.to(device).eval()

    def plain():
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                feats = {
                    k: v.to(device)
                    for k, v in tokenize(enc.tokenizer, texts[i : i + batch_size], enc.max_length).items()
                }
                pool(model(**feats).last_hidden_state, feats["attention_mask"], enc.pooling).cpu()

    plain()
    best_plain = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        plain()
        best_plain = min(best_plain, time.perf_counter() - t)
    theirs = len(texts) / best_plain
    return {
        "pipeline_docs_per_s": ours,
        "transformers_docs_per_s": theirs,
        "ratio": ours / theirs,
        "batch_size": batch_size,
        "n_texts": len(texts),
    }


def evaluate(model_dir: Path, corpus: Path) -> Dict:
    import spacy

    from spacy_threephase.evaluation import evaluate_pipeline

    return evaluate_pipeline(spacy.load(model_dir), corpus / "test.spacy")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument(
        "--train-per-class",
        type=int,
        default=0,
        help="train subset per class (0 = all; sst2 then uses --sst2-train-per-class)",
    )
    p.add_argument(
        "--sst2-train-per-class",
        type=int,
        default=2500,
        help="sst2's documented train subset per class (0 = all 67,349)",
    )
    p.add_argument("--dev-per-class", type=int, default=0, help="dev subset per class (0 = all)")
    p.add_argument("--test-per-class", type=int, default=0, help="test subset per class (0 = all)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--encoder", default="default")
    p.add_argument("--dae-epochs", type=int, default=0, help="0 = configs/dae.cfg")
    p.add_argument("--cl-epochs", type=int, default=0, help="0 = configs/contrastive.cfg")
    p.add_argument("--joint-epochs", type=int, default=0, help="0 = configs/joint.cfg")
    p.add_argument("--max-epochs", type=int, default=0, help="phase-3 max_epochs (0 = configs/textcat.cfg)")
    p.add_argument("--infer-batch-size", type=int, default=64)
    p.add_argument("--gpu-id", type=int, default=-1)
    p.add_argument("--work", type=Path, default=REPO / "benchmarks" / "runs" / "suite")
    p.add_argument("--out", type=Path, default=None, help="Markdown result file (default: WORK/results.md)")
    args = p.parse_args()
    from spacy_threephase.encoder import resolve_encoder

    base = resolve_encoder(args.encoder)
    rows = []
    md = ""
    started = time.time()
    for name in args.datasets:
        corpus = prepare(name, args.work, args)
        sizes = {s: len(read_jsonl(corpus / f"{s}.jsonl")) for s in ("train", "dev", "test")}
        test_texts = [r["text"] for r in read_jsonl(corpus / "test.jsonl")]
        for seed in args.seeds:
            run = args.work / "models" / name / f"seed{seed}"
            run.mkdir(parents=True, exist_ok=True)
            phases: Dict[str, Dict] = {}
            if "threephase" in args.methods:
                phases["dae"] = encoder_phase("dae", corpus, run / "dae", base, seed, args)
                phases["contrastive"] = encoder_phase(
                    "contrastive", corpus, run / "contrastive", str(run / "dae"), seed, args
                )
            if "joint" in args.methods:
                phases["joint"] = encoder_phase("joint", corpus, run / "joint", base, seed, args)
            start_from = {"threephase": str(run / "contrastive"), "ft": base, "joint": str(run / "joint")}
            for method in args.methods:
                ft = phase3(corpus, run / f"textcat-{method}", start_from[method], seed, args)
                m = evaluate(run / f"textcat-{method}" / "model-best", corpus)
                used = {"threephase": ["dae", "contrastive"], "ft": [], "joint": ["joint"]}[method]
                inf = inference(
                    run / f"textcat-{method}" / "model-best",
                    start_from[method],
                    test_texts,
                    args.infer_batch_size,
                    args.gpu_id,
                )
                row = {
                    "dataset": name,
                    "seed": seed,
                    "method": method,
                    "sizes": sizes,
                    "n_labels": len(m["labels"]),
                    "accuracy": m["accuracy"],
                    "macro_f1": m["macro_f1"],
                    "phases": {**{k: phases[k] for k in used}, "phase3": ft},
                    "train_seconds": sum(phases[k]["seconds"] for k in used) + ft["seconds"],
                    "inference": inf,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
                md = write_results(rows, args, time.time() - started)  # after every run: partial results survive
    print(md)


def write_results(rows, args, total) -> str:
    (args.work / "results.json").write_text(
        json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine(), "rows": rows}, indent=2)
    )
    md = format_md(rows, args, total)
    out = args.out or args.work / "results.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md)
    return md


def _fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def format_md(rows, args, total) -> str:
    lines = [
        f"machine: {machine()}; device: {'cuda:%d' % args.gpu_id if args.gpu_id >= 0 else 'CPU'}; "
        f"encoder {args.encoder}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; total wall time {total:.0f} s",
        f"command: `python {' '.join(sys.argv)}`",
        "",
        "## Accuracy (test)",
        "",
        "| data set | train/dev/test | labels | seed | method | accuracy % | macro F1 % | train wall s |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    names = {"threephase": "3-Phase", "ft": "FT", "joint": "Joint"}
    for r in rows:
        s = r["sizes"]
        lines.append(
            f"| {r['dataset']} | {s['train']}/{s['dev']}/{s['test']} | {r['n_labels']} | {r['seed']} | "
            f"{names[r['method']]} | {100 * r['accuracy']:.2f} | {100 * r['macro_f1']:.2f} | {r['train_seconds']:.0f} |"
        )
    lines += [
        "",
        "## Training: per phase (own process each)",
        "",
        "| data set | method | phase | wall s | examples/s (unit) | peak RSS MB | CUDA peak MB |",
        "| --- | --- | --- | ---: | --- | ---: | ---: |",
    ]
    for r in rows:
        for phase, v in r["phases"].items():
            lines.append(
                f"| {r['dataset']} | {names[r['method']]} | {phase} | {v['seconds']:.1f} | "
                f"{_fmt(v.get('examples_per_s'))} ({v.get('unit')}) | {_fmt(v.get('max_rss_mb'), '.0f')} | "
                f"{_fmt(v.get('cuda_peak_mb'), '.0f')} |"
            )
    lines += [
        "",
        "## Inference on the test texts (best of 2 timed passes after a warm-up)",
        "",
        "| data set | method | texts | batch | nlp.pipe docs/s | transformers docs/s | ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        i = r["inference"]
        lines.append(
            f"| {r['dataset']} | {names[r['method']]} | {i['n_texts']} | {i['batch_size']} | "
            f"{i['pipeline_docs_per_s']:.1f} | {i['transformers_docs_per_s']:.1f} | {i['ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
