"""Score encoder directories by dev k-NN and nearest-centroid accuracy exactly as phase selection
does (the same stratified samples of at most knn_max_train train and knn_max_dev dev texts, k,
seed), so that encoders written by different code versions compare on one scale.

    python benchmarks/knn_score.py CORPUS_DIR ENCODER_DIR [ENCODER_DIR ...] [--seed 0] [--threads 1]

CORPUS_DIR: a corpus directory as the `data` step writes it (train.jsonl, dev.jsonl). An
ENCODER_DIR may also be "default" (the untrained all-MiniLM-L6-v2).
"""

import argparse
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _common import load_average  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", type=Path)
    p.add_argument("encoders", nargs="+")
    p.add_argument("--seed", type=int, default=0, help="the phase's training.seed (it picks the samples)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    import torch

    from spacy_threephase.contrastive.corpus import load_train_dev
    from spacy_threephase.contrastive.dev import dev_evaluator
    from spacy_threephase.encoder import load_encoder
    from spacy_threephase.settings import ContrastiveTrainingSection

    torch.set_num_threads(args.threads)
    training = ContrastiveTrainingSection(seed=args.seed)
    _, train, dev, n_classes = load_train_dev(args.corpus, training.dev_fraction, training.seed, "knn")
    print(
        f"{args.corpus}: {len(train)} train / {len(dev)} dev texts, {n_classes} classes; samples of at most "
        f"{training.knn_max_train} / {training.knn_max_dev}, k = {training.knn_k}, seed {args.seed}; "
        f"load average {load_average()}"
    )
    print("| encoder | dev k-NN accuracy | dev nearest-centroid accuracy |\n|---|---:|---:|")
    for name in args.encoders:
        enc = load_encoder(name)
        enc.model.eval()
        score, metrics, _ = dev_evaluator(enc, torch.device("cpu"), train, dev, training)()
        print(f"| {name} | {metrics['knn_acc']:.4f} | {metrics['centroid_acc']:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
