"""Phase-3 recipe: spaCy's stock transformer recipe vs spacy-threephase's defaults.

Both fine-tune the same encoder (no phase 1/2) with the same TextCatMLP head; only the
optimisation recipe differs:
  stock: one learning rate of 5e-5 for encoder and head (spacy Adam.v1), 3 epochs;
  ours:  configs/textcat.cfg as shipped (head 1e-3, encoder 5e-5, warm-up, early stopping).

    python benchmarks/bench_phase3_defaults.py --datasets demo snips sst5 \
        --train-per-class 100 --test-per-class 100
"""

import argparse
import json
from pathlib import Path

from _common import REPO, evaluate, machine, prepare_dataset, train_textcat


def stock_recipe(config) -> None:
    config["training"]["optimizer"] = {
        "@optimizers": "Adam.v1",
        "learn_rate": 5e-5,
        "beta1": 0.9,
        "beta2": 0.999,
        "L2_is_weight_decay": True,
        "L2": 0.01,
        "grad_clip": 1.0,
        "use_averages": False,
        "eps": 1e-8,
    }
    config["training"]["max_epochs"] = 3
    config["training"]["max_steps"] = 0
    config["training"]["patience"] = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["demo", "snips", "sst5"])
    parser.add_argument("--train-per-class", type=int, default=100, help="0 = all (not applied to demo)")
    parser.add_argument("--test-per-class", type=int, default=100, help="0 = all (not applied to demo)")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "runs" / "phase3_defaults")
    parser.add_argument("--encoder", default="default")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = REPO / "configs" / "textcat.cfg"
    rows = []
    for name in args.datasets:
        per_train = None if name == "demo" else (args.train_per_class or None)
        per_test = None if name == "demo" else (args.test_per_class or None)
        corpus = prepare_dataset(name, args.work, train_per_class=per_train, test_per_class=per_test, seed=args.seed)
        for recipe, edit in (("stock (5e-5, 3 epochs)", stock_recipe), ("threephase defaults", None)):
            out = args.work / "models" / name / ("stock" if edit else "ours")
            seconds = train_textcat(
                config, corpus, out, {"paths.encoder": args.encoder, "system.seed": args.seed}, edit
            )
            m = evaluate(out / "model-best", corpus)
            rows.append(
                {
                    "dataset": name,
                    "recipe": recipe,
                    "accuracy": m["accuracy"],
                    "macro_f1": m["macro_f1"],
                    "train_seconds": seconds,
                    "n_test": m["n_examples"],
                    "n_labels": len(m["labels"]),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print(f"\nmachine: {machine()}; encoder {args.encoder}; seed {args.seed}\n")
    print("| data set | labels | test n | recipe | accuracy | macro F1 | train s |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['dataset']} | {r['n_labels']} | {r['n_test']} | {r['recipe']} | {100 * r['accuracy']:.2f} | "
            f"{100 * r['macro_f1']:.2f} | {r['train_seconds']:.0f} |"
        )
    (args.work / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
