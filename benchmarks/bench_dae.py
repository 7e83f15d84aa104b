"""Phase-1 (DAE) training throughput: spacy-threephase vs sentence-transformers, side by side.

Both train all-MiniLM-L6-v2 (by default) as a TSDAE with the decoder tied to the encoder, on
the SAME (noisy, clean) batches, with the same batch size, maximum length, AdamW parameter
groups, learning-rate schedule, gradient clipping and torch threads, in one process:

* ours: `spacy_threephase.dae` (DenoisingAutoEncoder + build_decoder) trained by the shared
  `Trainer` exactly as `train_dae` does (tokenizing with `encoder.tokenize`);
* s-t:  `sentence_transformers` `DenoisingAutoEncoderLoss(model, tie_encoder_decoder=True)`,
  trained with a plain torch loop (`model.tokenize` -> loss -> backward -> clip -> step).

To be fair on a shared, noisy machine, the texts are split into chunks and the two
implementations alternate chunk by chunk; each first runs a few untimed warm-up batches.
Both start from the same weights and the same random cross-attention init (same seed), so the
first-batch losses (eval mode, no dropout) agree: a check that both compute the same loss.
The s-t model is built as Transformer + mean Pooling (as ours, and as the encoder phase 3 uses);
the published all-MiniLM-L6-v2 also ends with a Normalize module, which s-t would otherwise
apply to the vector it feeds the decoder.

    python benchmarks/bench_dae.py --limit 2000 --batch-size 16 --max-length 128 --threads 2
"""
import argparse
import json
import platform
import random
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "snips" / "train.jsonl"


def read_texts(path: Path, limit: int):
    texts = []
    with path.open(encoding="utf8") as fh:
        for line in fh:
            if line.strip():
                texts.append(json.loads(line)["text"].strip())
            if len(texts) >= limit:
                break
    return texts


def make_batches(texts, batch_size, ratio, seed):
    from spacy_threephase.dae.noise import word_deletion

    noise, rng = word_deletion(ratio), random.Random(seed)
    order = list(texts)
    rng.shuffle(order)
    return [([noise(t, rng) for t in order[i : i + batch_size]], order[i : i + batch_size]) for i in range(0, len(order), batch_size)]


class Ours:
    name = "spacy-threephase"

    def __init__(self, source, max_length, settings, total_steps):
        from spacy_threephase.dae.model import DenoisingAutoEncoder, build_decoder
        from spacy_threephase.encoder import load_encoder, tokenize
        from spacy_threephase.training import Trainer, set_seed

        set_seed(settings.seed)
        enc = load_encoder(source, max_length=max_length)
        set_seed(settings.seed)
        self.model = DenoisingAutoEncoder(enc.model, build_decoder(enc.path, enc.model), enc.pooling)
        self.trainer = Trainer(self.model, settings, steps_per_epoch=total_steps, desc="ours")
        self.tokenize = lambda texts: tokenize(enc.tokenizer, texts, enc.max_length)
        self.losses = []

    def eval_loss(self, pair):
        import torch

        self.model.eval()
        with torch.no_grad():
            return float(self.model(self.tokenize(pair[0]), self.tokenize(pair[1])))

    def run(self, batches):
        def loss(pairs):
            noisy, clean = zip(*pairs)
            value = self.model(self.tokenize(list(noisy)), self.tokenize(list(clean)))
            self.losses.append(float(value.detach()))
            return value

        # the Trainer counts examples with len(batch): give it one (noisy, clean) pair per text
        self.trainer.fit(lambda epoch: [list(zip(*b)) for b in batches], loss)
        return sum(len(b[1]) for b in batches)


class SentenceTransformers:
    name = "sentence-transformers"

    def __init__(self, source, max_length, settings, total_steps):
        import torch
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.losses import DenoisingAutoEncoderLoss
        from sentence_transformers.models import Pooling, Transformer

        from spacy_threephase.training import build_adamw, linear_warmup_decay, set_seed

        set_seed(settings.seed)
        # Transformer + mean pooling, as ours: the saved all-MiniLM-L6-v2 also has a Normalize
        # module, which would feed the decoder an L2-normalised vector instead.
        transformer = Transformer(source, max_seq_length=max_length)
        pooling = Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
        self.model = SentenceTransformer(modules=[transformer, pooling], device="cpu")
        set_seed(settings.seed)
        self.loss = DenoisingAutoEncoderLoss(self.model, decoder_name_or_path=source, tie_encoder_decoder=True)
        self.optimizer = build_adamw(self.loss, settings)
        self.scheduler = linear_warmup_decay(self.optimizer, int(round(settings.warmup_ratio * total_steps)), total_steps)
        self.max_grad_norm = settings.max_grad_norm
        self.torch = torch
        self.losses = []

    def eval_loss(self, pair):
        self.loss.eval()
        with self.torch.no_grad():
            return float(self.loss([self.model.tokenize(pair[0]), self.model.tokenize(pair[1])], None))

    def run(self, batches):
        torch = self.torch
        self.loss.train()
        for noisy, clean in batches:
            value = self.loss([self.model.tokenize(noisy), self.model.tokenize(clean)], None)
            self.optimizer.zero_grad(set_to_none=True)
            value.backward()
            torch.nn.utils.clip_grad_norm_(self.loss.parameters(), self.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.losses.append(float(value.detach()))
        return sum(len(b[1]) for b in batches)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="JSONL with a 'text' field")
    parser.add_argument("--limit", type=int, default=2000, help="use the first N texts")
    parser.add_argument("--encoder", default="default")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunks", type=int, default=4, help="alternate the implementations over this many chunks")
    parser.add_argument("--warmup-batches", type=int, default=3)
    parser.add_argument("--deletion-ratio", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    import torch
    import transformers
    import sentence_transformers

    from spacy_threephase.encoder import resolve_encoder
    from spacy_threephase.training import TrainingSettings

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    source = resolve_encoder(args.encoder)
    texts = read_texts(args.data, args.limit)
    batches = make_batches(texts, args.batch_size, args.deletion_ratio, args.seed)
    warmup, batches = batches[: args.warmup_batches], batches[args.warmup_batches :]
    settings = TrainingSettings(epochs=1, batch_size=args.batch_size, learning_rate=1e-4, progress=False, seed=args.seed)
    total_steps = len(batches) + len(warmup)
    impls = [Ours(source, args.max_length, settings, total_steps), SentenceTransformers(source, args.max_length, settings, total_steps)]
    # same weights, same cross-attention init, no dropout: the losses must agree
    first_losses = {impl.name: impl.eval_loss(warmup[0]) for impl in impls}
    for impl in impls:
        impl.run(warmup)
    size = -(-len(batches) // args.chunks)
    chunks = [batches[i : i + size] for i in range(0, len(batches), size)]
    seconds = {impl.name: 0.0 for impl in impls}
    sentences = {impl.name: 0 for impl in impls}
    for i, chunk in enumerate(chunks):
        for impl in impls if i % 2 == 0 else impls[::-1]:
            start = time.perf_counter()
            sentences[impl.name] += impl.run(chunk)
            seconds[impl.name] += time.perf_counter() - start
    rates = {name: sentences[name] / seconds[name] for name in seconds}
    ours, st = rates[impls[0].name], rates[impls[1].name]
    print(f"\nPhase-1 (DAE) training throughput, {len(texts)} texts from {args.data.name} "
          f"({sentences[impls[0].name]} timed after {len(warmup)} warm-up batches), batch {args.batch_size}, "
          f"max_length {args.max_length}, torch threads {args.threads}, {platform.processor() or platform.machine()}")
    print(f"{'implementation':<24}{'sentences/s':>12}{'seconds':>10}{'loss@0 (eval)':>15}{'last-10 loss':>14}")
    for impl in impls:
        n = impl.name
        print(f"{n:<24}{rates[n]:>12.1f}{seconds[n]:>10.1f}{first_losses[n]:>15.4f}{sum(impl.losses[-10:]) / len(impl.losses[-10:]):>14.4f}")
    print(f"ratio ours / sentence-transformers: {ours / st:.2f}x")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"sentence-transformers {sentence_transformers.__version__}")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rates": rates, "seconds": seconds,
                                         "first_losses": first_losses, "ratio": ours / st}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
