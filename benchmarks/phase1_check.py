"""Phase 1 alone, as `bench_evidence.py` runs it inside a 3-Phase run, and what its selection
decided: the best checkpoint's dev gain over the input encoder and its paired z (min_gain_z).

Why alone: min_gain_z changes only phase 1's last decision (training, evaluations and the best
checkpoint are the same computation as without it). Where phase 1 now writes its input
unchanged, a 3-Phase run is CL+FT's computation from there on (phase 2 from the base encoder,
the same seed); where it keeps the checkpoint, the earlier 3-Phase run stands. So this run
settles which earlier row a 3-Phase cell now is, at the cost of phase 1 only.

`--phase contrastive` does the same for phase 2 from the base encoder (CL+FT's phase 2, and
3-Phase's wherever phase 1 keeps its input), with the ablation's phase-2 settings (seed, no
progress bar; dev from the corpus): run with `training.min_gain_z=1.645` it says whether a
significance check in phase 2 would have kept the checkpoint an earlier run handed to phase 3.

The corpus is the runner's (WORK/data/..., written by bench_evidence.prepare_corpus if absent),
phase 1 gets the ablation's settings (seed, dev corpus for selection, no progress bar), and one
row per run is appended to --results.

    OMP_NUM_THREADS=1 python benchmarks/phase1_check.py --table full --dataset sst5 --seed 0 \\
        --work benchmarks/runs/evidence --results benchmarks/results/phase1-check-cpu.jsonl
    OMP_NUM_THREADS=1 python benchmarks/phase1_check.py --phase contrastive --table 2k --dataset sst2 \
        --seed 0 --results benchmarks/results/phase2-check-cpu.jsonl training.min_gain_z=1.645
"""

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _common import SHARED, device_description, git_commit  # noqa: E402
from bench_evidence import CARVED_DEV, Run, append_jsonl, prepare_corpus  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", required=True, choices=("2k", "full", "fewshot"))
    p.add_argument("--phase", default="dae", choices=("dae", "contrastive"), help="phase 1 (dae) or phase 2")
    p.add_argument("--dataset", required=True)
    p.add_argument("--shots", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=BENCH / "runs" / "evidence")
    p.add_argument("--data-root", type=Path, default=SHARED)
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--keep", action="store_true", help="keep phase 1's encoder directory")
    p.add_argument("--max-texts", type=int, default=0, help="smoke runs: every split cut to this many texts")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE settings of the phase's config (JSON values)")
    args = p.parse_args(argv)
    args.data_seed, args.carved_dev = None, CARVED_DEV
    args.work, args.data_root = args.work.resolve(), args.data_root.resolve()

    from spacy_threephase.configs import default_config_path
    from spacy_threephase.contrastive.train import train_contrastive
    from spacy_threephase.dae.train import train_dae

    run = Run(args.table, args.dataset, args.shots, args.seed, "threephase")
    corpus, sizes = prepare_corpus(run, args)
    name = f"{args.table}-{args.dataset}" + (f"-{args.shots}shot" if args.shots else "") + f"-seed{args.seed}"
    phase = "phase 1" if args.phase == "dae" else "phase 2"
    out = args.work / ("phase1-check" if args.phase == "dae" else "phase2-check") / name
    overrides = {"training.seed": args.seed, "training.progress": False}
    if args.phase == "dae":
        overrides["training.dev_corpus"] = str(corpus)  # as the ablation: selection on dev labels
    overrides.update((k, json.loads(v)) for k, v in (o.split("=", 1) for o in args.overrides))
    load = os.getloadavg()[0]
    started = time.time()
    if args.phase == "dae":
        dae_config = default_config_path("dae")
        train_dae(dae_config, corpus / "texts.txt", out, encoder="default", overrides=overrides, overwrite=True)
    else:
        train_contrastive(
            default_config_path("contrastive"), corpus, out, encoder="default", overrides=overrides, overwrite=True
        )
    seconds = time.time() - started
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf8"))
    sel = metrics["selection"]
    evaluations = [(e["step"], round(e["metrics"]["centroid_acc"], 4)) for e in metrics["evaluations"]]
    sig = sel.get("significance")
    row = {
        "key": name,
        "table": args.table,
        "dataset": args.dataset,
        "shots": args.shots,
        "seed": args.seed,
        "phase": args.phase,
        "overrides": {k: v for k, v in overrides.items() if k not in ("training.progress", "training.dev_corpus")},
        "sizes": sizes,
        "input_centroid": evaluations[0][1],
        "best_step_by_score": sig["best_step"] if sig else sel["best_step"],
        "significance": sig,
        "kept_input": sel["kept_input"],
        "evaluations": evaluations,
        ("phase1_seconds" if args.phase == "dae" else "seconds"): round(seconds, 1),
        "load_at_start": round(load, 2),
        "machine": device_description(-1),
        "commit": git_commit(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    append_jsonl(args.results, row)
    decision = "the input, unchanged" if sel["kept_input"] else f"step {sel['best_step']}"
    z = f", z {sig['z']}" if sig else ""
    print(f"{name}: {phase} wrote {decision}{z}; dev centroid {evaluations}; {seconds:.0f} s", flush=True)
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
