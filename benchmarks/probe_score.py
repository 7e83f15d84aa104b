"""Score encoder directories with two classifiers on their frozen sentence vectors: cosine
nearest-centroid (class means of the train texts) and logistic regression (SetFit's head), on
one split of a corpus. A check of what phase selection's dev k-NN accuracy does not see.

    python benchmarks/probe_score.py CORPUS_DIR ENCODER_DIR [ENCODER_DIR ...] [--split dev] [--threads 1]

CORPUS_DIR: a corpus directory as the `data` step writes it (train.jsonl and the split's
.jsonl); single-label data (the first label of a text counts). An ENCODER_DIR may also be
"default" (the untrained all-MiniLM-L6-v2). Needs the `bench` extra (sentence-transformers,
scikit-learn).
"""

import argparse
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _common import load_average, read_jsonl  # noqa: E402


def texts_and_labels(path: Path):
    rows = read_jsonl(path)
    return [r["text"] for r in rows], [r["label"] if "label" in r else r["labels"][0] for r in rows]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", type=Path)
    p.add_argument("encoders", nargs="+")
    p.add_argument("--split", default="dev", help="the split scored (dev or test)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    import numpy
    import torch
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

    from spacy_threephase.encoder import resolve_encoder

    torch.set_num_threads(args.threads)
    train_texts, train_labels = texts_and_labels(args.corpus / "train.jsonl")
    texts, labels = texts_and_labels(args.corpus / f"{args.split}.jsonl")
    classes = sorted(set(train_labels))
    print(
        f"{args.corpus}: {len(train_texts)} train / {len(texts)} {args.split} texts, {len(classes)} classes; "
        f"load average {load_average()}"
    )
    print(f"| encoder | nearest centroid ({args.split}) | logistic regression ({args.split}) |\n|---|---:|---:|")
    gold = numpy.array(labels)
    for name in args.encoders:
        model = SentenceTransformer(str(resolve_encoder(name)), device="cpu")
        a = model.encode(train_texts, batch_size=64, normalize_embeddings=True)
        b = model.encode(texts, batch_size=64, normalize_embeddings=True)
        ytr = numpy.array(train_labels)
        centroids = numpy.stack([a[ytr == c].mean(0) for c in classes])
        centroids /= numpy.linalg.norm(centroids, axis=1, keepdims=True)
        nearest = numpy.array(classes)[(b @ centroids.T).argmax(1)]
        probe = LogisticRegression(max_iter=1000).fit(a, ytr)
        print(f"| {name} | {(nearest == gold).mean():.4f} | {(probe.predict(b) == gold).mean():.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
