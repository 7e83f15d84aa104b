"""Phase 2: class-aware in-batch pairs (the default) vs the paper's shuffled pairs, same data and budget.

For each sampler, one phase-2 run from the base encoder (or --encoder) with the shipped
configs/contrastive.cfg (the paper's variant: [pairs]/[loss] replaced by with_paper_pairs):
dev k-NN accuracy before and after, gradient passes (texts encoded with a gradient), wall time.

    python benchmarks/bench_phase2_samplers.py --data clinc150 --train-per-class 20 --threads 1
"""

import argparse
import json
import time
from pathlib import Path

from _common import REPO, machine, prepare_dataset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="clinc150")
    p.add_argument("--train-per-class", type=int, default=0, help="0 = the whole train split")
    p.add_argument("--samplers", default="class_batches,paper")
    p.add_argument("--encoder", default="default")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=REPO / "benchmarks" / "runs" / "phase2-samplers")
    p.add_argument("overrides", nargs="*", help="section.key=value for the phase-2 config")
    args = p.parse_args()

    import torch
    from spacy import util

    from spacy_threephase.contrastive.paper import with_paper_pairs
    from spacy_threephase.contrastive.train import train_contrastive

    torch.set_num_threads(args.threads)
    work = args.work / f"{args.data}-{args.train_per_class or 'full'}-s{args.seed}"
    corpus = prepare_dataset(args.data, work, train_per_class=args.train_per_class or None, seed=args.seed)
    overrides = {"training.progress": False, "training.seed": args.seed}
    for item in args.overrides:
        key, value = item.split("=", 1)
        overrides[key] = json.loads(value) if value[:1] in '0123456789-[{tfn"' else value
    rows = []
    for sampler in args.samplers.split(","):
        config = util.load_config(REPO / "configs" / "contrastive.cfg", interpolate=False)
        if sampler == "paper":
            with_paper_pairs(config)
        cfg = work / f"contrastive-{sampler}.cfg"
        config.to_disk(cfg)
        start = time.time()
        m = train_contrastive(
            cfg, corpus, work / f"cl-{sampler}", encoder=args.encoder, overrides=overrides, overwrite=True
        )
        seconds = time.time() - start
        passes = sum(e["examples"] for e in m["epochs"]) * (2 if m["input_kind"] == "pairs" else 1)
        rows.append(
            (
                sampler,
                m["baseline"]["knn_acc"],
                m["best"]["knn_acc"],
                m["selection"]["kept_input"],
                m["steps"],
                passes,
                seconds,
            )
        )
    print(f"\n{args.data} (train per class: {args.train_per_class or 'all'}), seed {args.seed}; {machine()}\n")
    print("| sampler | dev k-NN before | dev k-NN after | kept input | steps | gradient passes | seconds |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for s, before, after, kept, steps, passes, sec in rows:
        print(f"| {s} | {before:.4f} | {after:.4f} | {kept} | {steps} | {passes} | {sec:.0f} |")


if __name__ == "__main__":
    main()
