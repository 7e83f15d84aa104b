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

`--engine torch` runs steps 1-2 with transformers and PyTorch alone (the same pairs, mean
pooling, cosine MSE, AdamW with sentence-transformers' weight-decay groups, warm-up, clipping and
batching) and step 3 with scikit-learn when it is installed, else with the same multinomial
L2 objective (C = 1) minimised by PyTorch's L-BFGS: for machines without sentence-transformers,
scikit-learn and SciPy (the GPU machine's packed site). It draws the data order and dropout
from the same global RNG state, so on the same device it repeats a sentence-transformers run
(to the last digit on this CPU, checked on sst5 seeds). With `--checkpoint FILE` it saves its
training state every `--checkpoint-every` steps; run the same command again after a kill and it
goes on from there to the weights an uninterrupted run reaches (SetFit at 64 clinc150 texts per
class is about 4 hours a seed on one CPU thread, longer than a session).

Test accuracy and macro P/R/F1 come from `spacy_threephase.metrics.exclusive_metrics`, as for
the spaCy pipelines. The wall time counts steps 1-3 (not loading, not the test predictions).

    python benchmarks/setfit_baseline.py --train CORPUS/train.jsonl --test CORPUS/test.jsonl \
        --seed 0 --out setfit.json [--gpu-id 0]

Input: JSON lines with "text" and "label" (or the data step's "labels": [label]).
Needs the `bench` extra (sentence-transformers, scikit-learn).
"""

import argparse
import hashlib
import json
import math
import os
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


class TorchLogisticRegression:
    """scikit-learn's default `LogisticRegression()` objective for several classes (multinomial
    cross-entropy summed over the texts, times C = 1, plus half the squared L2 norm of the weights;
    intercepts not penalised), minimised with PyTorch's L-BFGS. For machines without scikit-learn."""

    def __init__(self, C: float = 1.0, max_iter: int = 100):
        self.C, self.max_iter = C, max_iter

    def fit(self, X, y):
        import torch

        self.classes_ = sorted(set(y))
        index = {c: i for i, c in enumerate(self.classes_)}
        X = torch.as_tensor(X, dtype=torch.float64)
        target = torch.tensor([index[c] for c in y])
        self.W = torch.zeros(X.shape[1], len(self.classes_), dtype=torch.float64, requires_grad=True)
        self.b = torch.zeros(len(self.classes_), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS(
            [self.W, self.b], max_iter=self.max_iter, tolerance_grad=1e-4, line_search_fn="strong_wolfe"
        )

        def closure():
            opt.zero_grad()
            logits = X @ self.W + self.b
            loss = self.C * torch.nn.functional.cross_entropy(logits, target, reduction="sum")
            loss = loss + 0.5 * (self.W**2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return self

    def predict(self, X):
        import torch

        with torch.no_grad():
            scores = torch.as_tensor(X, dtype=torch.float64) @ self.W + self.b
        return [self.classes_[i] for i in scores.argmax(1).tolist()]


def make_head(max_iter: int):
    """scikit-learn's `LogisticRegression` where installed, else the same objective in PyTorch."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return TorchLogisticRegression(max_iter=max_iter)
    return LogisticRegression(max_iter=max_iter)


class TorchBody:
    """all-MiniLM-L6-v2 as sentence-transformers runs it (its modules.json: Transformer with
    max_seq_length 256, mean pooling, normalisation), with transformers and PyTorch only."""

    def __init__(self, encoder: str, device: str, max_length: int = 256):
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(encoder)
        self.model = AutoModel.from_pretrained(encoder).to(device)
        self.device, self.max_length = device, max_length

    def embed(self, texts: Sequence[str]):
        """Normalised mean-pooled vectors, with gradients (sentence-transformers' `sentence_embedding`)."""
        import torch

        from spacy_threephase.encoder import pool

        batch = self.tokenizer(
            list(texts), padding=True, truncation="longest_first", max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        pooled = pool(self.model(**batch).last_hidden_state, batch["attention_mask"], "mean")
        return torch.nn.functional.normalize(pooled, p=2, dim=1)

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress_bar: bool = False):
        import torch

        self.model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), batch_size):
                out.append(self.embed(texts[i : i + batch_size]).cpu())
        return torch.cat(out).numpy()


def fit_body_sentence_transformers(body, pairs: List[Pair], *, epochs, batch_size, learning_rate, warmup_proportion):
    """sentence-transformers' pre-v3 `fit` (`old_fit` in v3+), which SetFit 0.x called. Returns
    (steps, 0.0)."""
    from sentence_transformers import InputExample, losses
    from torch.utils.data import DataLoader

    loader = DataLoader(
        [InputExample(texts=[a, b], label=score) for a, b, score in pairs], shuffle=True, batch_size=batch_size
    )
    steps = len(loader) * epochs
    fit = getattr(body, "old_fit", None) or body.fit
    fit(
        train_objectives=[(loader, losses.CosineSimilarityLoss(body))],
        epochs=epochs,
        warmup_steps=math.ceil(steps * warmup_proportion),
        optimizer_params={"lr": learning_rate},
        show_progress_bar=False,
    )
    return steps, 0.0


def fit_body_torch(
    body: "TorchBody",
    pairs: List[Pair],
    *,
    epochs,
    batch_size,
    learning_rate,
    warmup_proportion,
    checkpoint: Optional[Path] = None,
    checkpoint_every: int = 500,
    fingerprint: Optional[dict] = None,
    stop_after: Optional[int] = None,
):
    """The same loop with PyTorch alone: AdamW, weight decay 0.01 except biases and LayerNorm,
    linear warm-up and decay, gradient norm clipped to 1, cosine MSE. Returns (steps, seconds spent
    by earlier attempts).

    With `checkpoint` (a file), the loop saves its whole state there every `checkpoint_every` steps
    and at the end (weights, optimizer, schedule, the epoch's data order, the RNG states): a run
    killed part-way and started again with the same settings (`fingerprint`) goes on from there to
    the weights an uninterrupted run reaches. `stop_after` ends the loop after that many steps of
    this attempt (to test resuming)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    steps = math.ceil(len(pairs) / batch_size) * epochs
    no_decay = ("bias", "LayerNorm.bias", "LayerNorm.weight")
    named = list(body.model.named_parameters())
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for n, p in named if not any(nd in n for nd in no_decay)], "weight_decay": 0.01},
            {"params": [p for n, p in named if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
        ],
        lr=learning_rate,
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(steps * warmup_proportion), steps)
    state = load_checkpoint(checkpoint, fingerprint) if checkpoint is not None else None
    epoch0, done, order, earlier = 0, 0, None, 0.0
    if state is not None:
        body.model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        epoch0, done, order, earlier = state["epoch"], state["done"], state["order"], state["seconds"]
        torch.set_rng_state(state["rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        print(f"[setfit] resumed at step {state['step']} of {steps} ({checkpoint})", file=sys.stderr, flush=True)
    started, taken = time.time(), 0
    body.model.train()
    for epoch in range(epoch0, epochs):
        if order is None:
            # The order sentence-transformers' DataLoader(shuffle=True) draws from the same global
            # RNG state: its iterator takes a base seed, then its RandomSampler a seed for the
            # permutation.
            torch.empty((), dtype=torch.int64).random_()
            generator = torch.Generator()
            generator.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
            order, done = torch.randperm(len(pairs), generator=generator), 0
        batches = order.split(batch_size)
        while done < len(batches):
            if stop_after is not None and taken >= stop_after:
                return steps, earlier
            chosen = [pairs[i] for i in batches[done].tolist()]
            u = body.embed([a for a, _, _ in chosen])
            v = body.embed([b for _, b, _ in chosen])
            target = torch.tensor([score for _, _, score in chosen], device=u.device)
            loss = torch.nn.functional.mse_loss(torch.cosine_similarity(u, v), target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(body.model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            scheduler.step()
            done, taken = done + 1, taken + 1
            step = epoch * len(batches) + done
            if checkpoint is not None and (step % checkpoint_every == 0 or step == steps):
                at_end, seconds = done == len(batches), earlier + time.time() - started
                save_checkpoint(
                    checkpoint,
                    {
                        "fingerprint": fingerprint,
                        "step": step,
                        "epoch": epoch + 1 if at_end else epoch,
                        "done": 0 if at_end else done,
                        "order": None if at_end else order,
                        "seconds": seconds,
                        "model": body.model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "rng": torch.get_rng_state(),
                        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                    },
                )
                print(f"[setfit] step {step} of {steps}, {seconds:.0f} s: saved {checkpoint}", file=sys.stderr)
                sys.stderr.flush()
        order = None
    return steps, earlier


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to a temporary file beside `path`, then rename: a kill mid-write keeps the last one."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, fingerprint: Optional[dict]) -> Optional[dict]:
    """The state saved at `path`, or None; refuses, in one line, a checkpoint of other settings."""
    import torch

    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("fingerprint") != fingerprint:
        raise SystemExit(
            f"{path}: this checkpoint was written with other settings or data "
            f"({state.get('fingerprint')} != {fingerprint}); remove it to start again"
        )
    return state


def train_setfit(
    texts: Sequence[str],
    labels: Sequence[str],
    encoder: str,
    *,
    engine: str = "sentence-transformers",
    seed: int = 0,
    iterations: int = 20,
    epochs: int = 1,
    batch_size: int = 16,
    learning_rate: float = 2e-5,
    warmup_proportion: float = 0.1,
    head_max_iter: int = 100,
    device: Optional[str] = None,
    checkpoint: Optional[Path] = None,
    checkpoint_every: int = 500,
    stop_after: Optional[int] = None,
):
    """Fine-tune the body on SetFit pairs (`engine`: "sentence-transformers" or "torch"), then
    fit the head. Returns (body, head, info); body and head are None when `stop_after` ended the
    body's training early. `checkpoint` (torch engine): a file that makes the body's training
    resumable (see `fit_body_torch`)."""
    set_seed(seed)
    if engine == "torch":
        body, fit_body = TorchBody(encoder, device or "cpu"), fit_body_torch
        fingerprint = {
            "seed": seed,
            "iterations": iterations,
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "warmup_proportion": warmup_proportion,
            "encoder": str(encoder),
            "data": hashlib.sha256(json.dumps([list(texts), list(labels)]).encode("utf8")).hexdigest(),
        }
        resume = dict(
            checkpoint=checkpoint, checkpoint_every=checkpoint_every, fingerprint=fingerprint, stop_after=stop_after
        )
    else:
        if checkpoint is not None or stop_after is not None:
            raise ValueError("checkpoints are for the torch engine (--engine torch)")
        from sentence_transformers import SentenceTransformer

        body, fit_body, resume = SentenceTransformer(encoder, device=device), fit_body_sentence_transformers, {}
    start = time.time()
    pairs = generate_pairs(list(texts), list(labels), iterations, random.Random(seed))
    steps, earlier = fit_body(
        body,
        pairs,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_proportion=warmup_proportion,
        **resume,
    )
    body_seconds = time.time() - start + earlier
    info = {"n_pairs": len(pairs), "steps": steps, "body_seconds": body_seconds}
    if stop_after is not None:
        return None, None, info
    head_start = time.time()
    head = make_head(head_max_iter)
    head.fit(body.encode(list(texts), show_progress_bar=False), list(labels))
    info["wall_seconds"] = body_seconds + time.time() - head_start
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
    p.add_argument(
        "--engine",
        choices=("sentence-transformers", "torch"),
        default="sentence-transformers",
        help="who trains the body: sentence-transformers (SetFit's own) or transformers + PyTorch alone",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        help="torch engine: save the body's training state to this file every --checkpoint-every steps; "
        "run again with the same settings to go on from it (it is removed when the run ends)",
    )
    p.add_argument("--checkpoint-every", type=int, default=500)
    args = p.parse_args(argv)
    if args.checkpoint is not None and args.engine != "torch":
        p.error("--checkpoint needs --engine torch")

    from spacy_threephase.encoder import resolve_encoder
    from spacy_threephase.metrics import exclusive_metrics

    encoder = resolve_encoder(args.encoder)
    train_texts, train_labels = read_examples(args.train)
    test_texts, test_labels = read_examples(args.test)
    device = f"cuda:{args.gpu_id}" if args.gpu_id >= 0 else "cpu"
    print(
        f"[setfit] {len(train_texts)} training texts, {len(set(train_labels))} classes, R={args.iterations}, "
        f"encoder {encoder}, {device}, engine {args.engine}",
        file=sys.stderr,
        flush=True,
    )
    body, head, info = train_setfit(
        train_texts,
        train_labels,
        encoder,
        engine=args.engine,
        seed=args.seed,
        iterations=args.iterations,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        head_max_iter=args.head_max_iter,
        device=device,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
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
            k: getattr(args, k)
            for k in ("iterations", "epochs", "batch_size", "learning_rate", "head_max_iter", "engine")
        },
        "head": type(head).__name__,
        "encoder": encoder,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2), encoding="utf8")
    os.replace(tmp, args.out)
    if args.checkpoint is not None:
        args.checkpoint.unlink(missing_ok=True)
    print(
        f"[setfit] accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}, "
        f"{info['steps']} steps, {info['wall_seconds']:.1f} s",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    main()
