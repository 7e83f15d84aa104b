"""Write a data set with its train split cut to N texts by stratified sampling (class
proportions kept, every class at least one text) and its dev/test splits in full.

    python benchmarks/make_subset.py sst5 2000 benchmarks/runs/data/sst5-2000 --seed 0
"""

import argparse
from pathlib import Path

from _common import SHARED, proportional_sample, read_jsonl, write_jsonl


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data")
    p.add_argument("size", type=int)
    p.add_argument("out", type=Path)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    src = SHARED / args.data
    for split in ("train", "dev", "test"):
        if (src / f"{split}.jsonl").exists():
            rows = read_jsonl(src / f"{split}.jsonl")
            write_jsonl(
                proportional_sample(rows, args.size, args.seed) if split == "train" else rows,
                args.out / f"{split}.jsonl",
            )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
