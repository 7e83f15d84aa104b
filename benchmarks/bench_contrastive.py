"""Phase-2 (contrastive) training throughput: spacy-threephase vs sentence-transformers.

Both train the same encoder (all-MiniLM-L6-v2 by default, from the same local directory) with
the paper's cosine-similarity MSE loss on the SAME fixed pairs (drawn from SNIPS train by our
`shuffled_pairs` sampler, seed 0), with the same batch size, maximum length, AdamW settings,
gradient clipping and torch threads, in one process, on the CPU:

* ours: `spacy_threephase.contrastive` — `embed` (one forward pass over the concatenated u and
  v texts, tokenized by `encoder.tokenize`) + `CosineMSELoss`, driven by the shared `Trainer`
  exactly as `train_contrastive` does;
* s-t:  `sentence_transformers.losses.CosineSimilarityLoss` over a `SentenceTransformer` loaded
  from the same directory, trained with a plain torch loop (model.tokenize -> loss ->
  backward -> clip -> step).

On a shared, noisy machine the two alternate batch by batch (or chunk by chunk with --chunks;
which one goes first alternates too); each runs a few untimed warm-up batches first.
Throughput = timed pairs / timed wall-clock seconds; the process CPU seconds are shown too.

    python benchmarks/bench_contrastive.py --pairs 2000 --batch-size 16 --max-length 64 --threads 2
"""
import argparse
import json
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "snips" / "train.jsonl"


def read_rows(path: Path, limit: int):
    texts, labels = [], []
    with path.open(encoding="utf8") as fh:
        for line in fh:
            if line.strip():
                obj = json.loads(line)
                texts.append(obj["text"].strip())
                labels.append(obj.get("labels") or [obj["label"]])
            if len(texts) >= limit:
                break
    return texts, labels


def fixed_pairs(texts, labels, n_pairs, seed=0):
    from spacy_threephase.contrastive.labels import LabelIndex
    from spacy_threephase.contrastive.pairs import shuffled_pairs

    pairs = shuffled_pairs()(LabelIndex(labels), seed=seed)
    return [(texts[a], texts[b], float(s)) for a, b, s in zip(pairs.first.tolist(), pairs.second.tolist(), pairs.score.tolist())][:n_pairs]


class Ours:
    name = "spacy-threephase"

    def __init__(self, source, max_length, settings, total_steps):
        from spacy_threephase.contrastive.embedding import embed
        from spacy_threephase.contrastive.losses import cosine_mse_loss
        from spacy_threephase.encoder import load_encoder
        from spacy_threephase.training import Trainer

        self.enc = load_encoder(source, max_length=max_length)
        self.embed, self.loss = embed, cosine_mse_loss()
        self.trainer = Trainer(self.enc.model, settings, steps_per_epoch=total_steps, desc="ours")

    def compute_loss(self, batch):
        import torch

        a, b, s = zip(*batch)
        vecs = self.embed(self.enc, list(a) + list(b), self.trainer.device)
        return self.loss(vecs[: len(a)], vecs[len(a) :], torch.tensor(s))

    def run(self, batches):
        self.trainer.fit(lambda epoch: batches, self.compute_loss)


class SentenceTransformersLoop:
    name = "sentence-transformers"

    def __init__(self, source, max_length, settings, total_steps):
        from sentence_transformers import SentenceTransformer, losses

        from spacy_threephase.training import build_adamw, linear_warmup_decay

        self.model = SentenceTransformer(source, device="cpu")
        self.model.max_seq_length = max_length
        self.loss = losses.CosineSimilarityLoss(self.model)
        self.settings = settings
        self.optimizer = build_adamw(self.model, settings)
        self.scheduler = linear_warmup_decay(self.optimizer, int(round(settings.warmup_ratio * total_steps)), total_steps)

    def run(self, batches):
        import torch

        self.model.train()
        for batch in batches:
            a, b, s = zip(*batch)
            features = [self.model.tokenize(list(a)), self.model.tokenize(list(b))]
            loss = self.loss(features, torch.tensor(s, dtype=torch.float32))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), platform.processor())
    except OSError:
        model = platform.processor()
    import os

    return f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--encoder", default="default")
    p.add_argument("--texts", type=int, default=2000, help="first N train texts the pairs are drawn from")
    p.add_argument("--pairs", type=int, default=2000, help="timed pairs per implementation")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--chunks", type=int, default=0, help="alternate the two implementations over this many chunks (0 = batch by batch)")
    p.add_argument("--warmup-batches", type=int, default=2)
    args = p.parse_args(argv)

    import torch
    import transformers
    import sentence_transformers

    from spacy_threephase.about import __version__
    from spacy_threephase.encoder import resolve_encoder
    from spacy_threephase.training import TrainingSettings, set_seed

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    if not args.data.exists():
        sys.exit(f"{args.data}: not found (the shared SNIPS data set)")
    texts, labels = read_rows(args.data, args.texts)
    bs = args.batch_size
    pairs = fixed_pairs(texts, labels, args.pairs + args.warmup_batches * bs)
    warm, timed = pairs[: args.warmup_batches * bs], pairs[args.warmup_batches * bs :]
    batches = [timed[i : i + bs] for i in range(0, len(timed), bs)]
    per_chunk = max(1, -(-len(batches) // args.chunks)) if args.chunks > 0 else 1
    chunks = [batches[i : i + per_chunk] for i in range(0, len(batches), per_chunk)]
    source = resolve_encoder(args.encoder)
    settings = TrainingSettings(epochs=1, batch_size=bs, learning_rate=2e-5, progress=False, mixed_precision=False)
    total_steps = len(batches) + args.warmup_batches
    impls = []
    for cls in (Ours, SentenceTransformersLoop):
        set_seed(0)
        impls.append(cls(source, args.max_length, settings, total_steps))
    for impl in impls:
        impl.run([warm[i : i + bs] for i in range(0, len(warm), bs)])
    seconds = {impl.name: 0.0 for impl in impls}
    cpu = {impl.name: 0.0 for impl in impls}
    done = {impl.name: 0 for impl in impls}
    for k, chunk in enumerate(chunks):
        order = impls if k % 2 == 0 else impls[::-1]
        for impl in order:
            start, cpu_start = time.perf_counter(), time.process_time()
            impl.run(chunk)
            seconds[impl.name] += time.perf_counter() - start
            cpu[impl.name] += time.process_time() - cpu_start
            done[impl.name] += sum(len(b) for b in chunk)
    print(f"\nphase-2 throughput, {len(timed)} timed pairs (+{len(warm)} warm-up) from {args.data} (first {len(texts)} texts), "
          f"batch {bs}, max_length {args.max_length}, torch threads {args.threads}, CPU, {len(chunks)} alternating chunks")
    print(f"{'implementation':<24} {'pairs':>6} {'seconds':>9} {'pairs/s':>9} {'CPU s':>9} {'pairs/CPU s':>11}")
    for impl in impls:
        n, s, c = done[impl.name], seconds[impl.name], cpu[impl.name]
        print(f"{impl.name:<24} {n:>6} {s:>9.1f} {n / s:>9.2f} {c:>9.1f} {n / c:>11.2f}")
    ours, st = (done[i.name] / seconds[i.name] for i in impls)
    print(f"ratio ours / s-t: {ours / st:.2f}")
    print(f"machine: {machine()}")
    print(f"versions: spacy-threephase {__version__}, torch {torch.__version__}, transformers {transformers.__version__}, sentence-transformers {sentence_transformers.__version__}")
    print(f"command: python benchmarks/bench_contrastive.py {' '.join(argv if argv is not None else sys.argv[1:])}")


if __name__ == "__main__":
    main()
