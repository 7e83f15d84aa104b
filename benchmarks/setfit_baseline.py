"""SetFit (Tunstall et al. 2022, "Efficient Few-Shot Learning Without Prompts") as the few-shot
peer of the three-phase method, with sentence-transformers and scikit-learn only (the `setfit`
package would pull other transformers versions).

The recipe of SetFit's original trainer (setfit 0.x `SetFitTrainer`), on the same body as ours
(all-MiniLM-L6-v2, the offline copy):

1. pairs: R iterations (`--iterations`, 20) over the training texts; in each, every text gets
   one positive pair (a random text of its class, itself included) labelled 1.0 and one
   negative pair (a random text of another class) labelled 0.0: 2 * R * N pairs;
2. contrastive fine-tuning of the body with `CosineSimilarityLoss`: 1 epoch, batch 16, AdamW
   at 2e-5 with a linear warm-up over the first 10% of the steps and linear decay
   (sentence-transformers' pre-v3 `fit`, which SetFit 0.x called; `old_fit` in v3+);
3. a scikit-learn `LogisticRegression()` head (SetFit's default: default settings) on the
   fine-tuned body's embeddings of the training texts.

Test accuracy and macro P/R/F1 come from `spacy_threephase.metrics.exclusive_metrics`, as for
the spaCy pipelines. The wall time counts steps 1-3 (not loading, not the test predictions).

    python benchmarks/setfit_baseline.py --train CORPUS/train.jsonl --test CORPUS/test.jsonl \
        --seed 0 --out setfit.json [--gpu-id 0]

Input: JSON lines with "text" and "label" (or the data step's "labels": [label]).
Needs the `bench` extra (sentence-transformers, scikit-learn).
"""

import argparse
import json
import math
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

Pair = Tuple[str, str, float]


def read_examples(path: Path) -> Tuple[List[str], List[str]]:
    texts, labels = [], []
    with Path(path).open(encoding="utf8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            label = row["label"] if "label" in row else row["labels"]
            if isinstance(label, list):
                if len(label) != 1:
                    raise SystemExit(f"{path}: SetFit here is single-label; got labels {label}")
                label = label[0]
            texts.append(row["text"])
            labels.append(str(label))
    return texts, labels


def generate_pairs(texts: Sequence[str], labels: Sequence[str], iterations: int, rng: random.Random) -> List[Pair]:
    """SetFit 0.x's `sentence_pairs_generation`, `iterations` times: per text one positive pair
    (a random text of the same class, possibly itself) and one negative pair (a random text of
    another class)."""
    by_label: Dict[str, List[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    if len(by_label) < 2:
        raise ValueError("SetFit pairs need at least two classes")
    others = {label: [i for i, other in enumerate(labels) if other != label] for label in by_label}
    pairs: List[Pair] = []
    for _ in range(iterations):
        for i, (text, label) in enumerate(zip(texts, labels)):
            pairs.append((text, texts[rng.choice(by_label[label])], 1.0))
            pairs.append((text, texts[rng.choice(others[label])], 0.0))
    return pairs


def set_seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def train_setfit(
    texts: Sequence[str],
    labels: Sequence[str],
    encoder: str,
    *,
    seed: int = 0,
    iterations: int = 20,
    epochs: int = 1,
    batch_size: int = 16,
    learning_rate: float = 2e-5,
    warmup_proportion: float = 0.1,
    head_max_iter: int = 100,
    device: Optional[str] = None,
):
    """Fine-tune the body on SetFit pairs, then fit the head. Returns (body, head, info)."""
    from sentence_transformers import InputExample, SentenceTransformer, losses
    from sklearn.linear_model import LogisticRegression
    from torch.utils.data import DataLoader

    set_seed(seed)
    body = SentenceTransformer(encoder, device=device)
    start = time.time()
    pairs = generate_pairs(list(texts), list(labels), iterations, random.Random(seed))
    examples = [InputExample(texts=[a, b], label=score) for a, b, score in pairs]
    loader = DataLoader(examples, shuffle=True, batch_size=batch_size)
    steps = len(loader) * epochs
    fit = getattr(body, "old_fit", None) or body.fit  # v3+: old_fit is the pre-v3 loop SetFit 0.x used
    fit(
        train_objectives=[(loader, losses.CosineSimilarityLoss(body))],
        epochs=epochs,
        warmup_steps=math.ceil(steps * warmup_proportion),
        optimizer_params={"lr": learning_rate},
        show_progress_bar=False,
    )
    body_seconds = time.time() - start
    head = LogisticRegression(max_iter=head_max_iter)
    head.fit(body.encode(list(texts), show_progress_bar=False), list(labels))
    info = {
        "n_pairs": len(pairs),
        "steps": steps,
        "body_seconds": body_seconds,
        "wall_seconds": time.time() - start,
    }
    return body, head, info


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=Path, required=True)
    p.add_argument("--test", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="JSON file for the metrics")
    p.add_argument("--encoder", default="default", help="'default' = the offline all-MiniLM-L6-v2, or a directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int, default=20, help="R: pair-generation iterations (SetFit: 20)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=2e-5)
    p.add_argument("--head-max-iter", type=int, default=100, help="LogisticRegression max_iter (default: sklearn's)")
    p.add_argument("--gpu-id", type=int, default=-1)
    args = p.parse_args(argv)

    from spacy_threephase.encoder import resolve_encoder
    from spacy_threephase.metrics import exclusive_metrics

    encoder = resolve_encoder(args.encoder)
    train_texts, train_labels = read_examples(args.train)
    test_texts, test_labels = read_examples(args.test)
    device = f"cuda:{args.gpu_id}" if args.gpu_id >= 0 else "cpu"
    print(
        f"[setfit] {len(train_texts)} training texts, {len(set(train_labels))} classes, R={args.iterations}, "
        f"encoder {encoder}, {device}",
        file=sys.stderr,
        flush=True,
    )
    body, head, info = train_setfit(
        train_texts,
        train_labels,
        encoder,
        seed=args.seed,
        iterations=args.iterations,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        head_max_iter=args.head_max_iter,
        device=device,
    )
    predicted = [str(x) for x in head.predict(body.encode(test_texts, show_progress_bar=False))]
    labels = sorted(set(train_labels) | set(test_labels))
    metrics = exclusive_metrics(test_labels, predicted, labels)
    result = {
        "method": "setfit",
        "seed": args.seed,
        **{k: metrics[k] for k in ("accuracy", "macro_precision", "macro_recall", "macro_f1")},
        "n_train": len(train_texts),
        "n_test": len(test_texts),
        **info,
        "settings": {
            k: getattr(args, k) for k in ("iterations", "epochs", "batch_size", "learning_rate", "head_max_iter")
        },
        "encoder": encoder,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf8")
    print(
        f"[setfit] accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}, "
        f"{info['steps']} steps, {info['wall_seconds']:.1f} s",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    main()
