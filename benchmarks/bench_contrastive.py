"""Phase-2 (contrastive) training throughput: spacy-threephase vs sentence-transformers' CosineSimilarityLoss.

Three implementations train the same encoder (all-MiniLM-L6-v2 by default, the same local
directory) on the same labelled texts, with the same batch size, maximum length, AdamW
parameter groups, learning-rate schedule, gradient clipping and torch threads, in one process:

* ours, in-batch (the shipped default): `ContrastivePhase` configured from the shipped
  configs/contrastive.cfg (`spacy_threephase.class_batches.v1` + `in_batch_cosine_mse_loss.v1`:
  every batch of B texts is encoded once and eq. 3 is taken over its B(B-1)/2 pairs);
* ours, paper pairs: the same with `contrastive/paper.py` `with_paper_pairs(config)` (the
  paper's shuffled-copies pairs + the per-pair loss; u and v of a batch of B pairs encoded in
  one forward pass);
* s-t: sentence-transformers' `CosineSimilarityLoss` over a `SentenceTransformer` loaded from
  the same directory, on the SAME pairs as "ours, paper pairs" (the sampler's epoch-0 draw, in
  its random order, B pairs a batch), trained with a plain torch loop as its docs train it
  (preprocess u and v -> loss -> backward -> clip -> step -> schedule), with our optimizer.

Both of ours are driven the way `train_contrastive` drives them: `phase.configure`,
`phase.setup()`, `load_encoder`, `phase.build(enc)` and the shared `Trainer.fit(phase.make_batches,
...)`, with selection off (select_best false: no evaluation) and no checkpoints.

Units: "pairs with a gradient" = the pairs the loss is taken over in a step: B(B-1)/2 for a
batch of B texts under the in-batch loss, B for a batch of B pairs. Texts encoded (with a
gradient) per second are printed too: B per in-batch step, 2B per pair step.

Interleaved repeats as in bench_dae.py: the three run in their own threads, one at a time, one
chunk of steps each per round (the order reversed every other round), after untimed warm-up
steps.

    python benchmarks/bench_contrastive.py --limit 2000 --batch-size 32 --max-length 128 --threads 2
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from bench_dae import (
    Runner,
    config_path,
    interleave,
    load_average,
    machine,
    pause_points,
    seed_all,
    set_threads,
    st_optimizer,
    st_preprocess,
    timed,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "snips"


def write_corpus(data: Path, limit: int, dev_limit: int, out: Path) -> int:
    """train.jsonl: the first `limit` rows of DATA/train.jsonl; dev.jsonl: the first `dev_limit` of DATA/dev.jsonl."""
    out.mkdir(parents=True)
    n = 0
    for split, most in (("train", limit), ("dev", dev_limit)):
        rows = []
        with (data / f"{split}.jsonl").open(encoding="utf8") as fh:
            for line in fh:
                if line.strip():
                    obj = json.loads(line)
                    rows.append({"text": obj["text"], "labels": obj.get("labels") or [obj["label"]]})
                if len(rows) >= most:
                    break
        (out / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf8")
        n = n or len(rows)
    return n


class OursContrastive:
    def __init__(self, name, cfg: Path, corpus: Path, args, total_steps: int):
        from spacy_threephase.contrastive.train import ContrastivePhase
        from spacy_threephase.encoder import load_encoder
        from spacy_threephase.phase import configure

        self.name = name
        self.phase = ContrastivePhase(corpus)
        overrides = {
            "encoder.max_length": args.max_length,
            "training.batch_size": args.batch_size,
            "training.epochs": 1000,  # max_steps ends the run
            "training.max_steps": total_steps,
            "training.seed": args.seed,
            "training.select_best": False,
            "training.checkpoint_every": 0,
            "training.progress": False,
            "training.torch_threads": 0,
        }
        configure(self.phase, cfg, overrides, args.encoder)
        self.training = self.phase.settings["training"]
        enc_cfg = self.phase.settings["encoder"]
        seed_all(args.seed)
        self.phase.setup()
        self.enc = load_encoder(enc_cfg.name, pooling=enc_cfg.pooling, max_length=enc_cfg.max_length or None)
        self.model = self.phase.build(self.enc)
        self.task = self.phase.task
        self.losses = []

    def describe(self) -> str:
        return f"{type(self.task.sampler).__name__} + {type(self.task.loss_fn).__name__}"

    def eval_loss(self, batch) -> float:
        import torch

        self.model.eval()
        with torch.no_grad():
            return float(self.model(batch))

    def body(self, runner, pauses) -> None:
        import numpy
        from _common import run_product_phase

        lengths = self.task.tokens.lengths
        pairs_kind = self.task.kind == "pairs"

        def before(module, args):
            batch = args[0]
            if pairs_kind:
                first, second, scores = zip(*batch)
                items = list(first) + list(second)
                pairs, positive = len(batch), sum(s > 0 for s in scores)
            else:
                items, n = list(batch), len(batch)
                pairs = n * (n - 1) // 2
                positive = int(numpy.triu(self.task.index.score_matrix(numpy.asarray(batch)) > 0, 1).sum())
            runner.add(
                steps=1,
                texts=len(items),
                pairs=pairs,
                positive=positive,
                tokens=int(lengths[items].sum()),
                padded=int(lengths[items].max()) * len(items),
            )

        run_product_phase(self, runner, pauses, before)


class SentenceTransformersCosine:
    name = "s-t"

    def __init__(self, source, paper: OursContrastive, args, total_steps: int):
        import torch
        from sentence_transformers import SentenceTransformer, losses
        from transformers import get_linear_schedule_with_warmup

        self.torch, self.args, self.total_steps = torch, args, total_steps
        seed_all(args.seed)
        self.model = SentenceTransformer(source, device="cpu")
        self.model.max_seq_length = args.max_length
        self.preprocess = st_preprocess(self.model)
        self.loss = losses.CosineSimilarityLoss(self.model)
        training = paper.training
        self.optimizer = st_optimizer(self.model, training, args.st_optimizer)
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, int(round(training.warmup_ratio * total_steps)), total_steps
        )
        self.max_grad_norm = training.max_grad_norm
        # the paper sampler's pairs, as ours-paper trains on them (epoch e: seed + e), in the sampler's order
        self.texts, self.paper = paper.task.corrected.texts, paper
        self.losses = []

    def epoch_pairs(self, epoch: int):
        task = self.paper.task
        pairs = task.first_pairs if epoch == 0 else task._pairs(epoch)
        return list(zip(pairs.first.tolist(), pairs.second.tolist(), pairs.score.tolist()))

    def features(self, batch):
        first, second, scores = zip(*batch)
        a = self.preprocess([self.texts[i] for i in first])
        b = self.preprocess([self.texts[i] for i in second])
        return [a, b], self.torch.tensor(scores, dtype=self.torch.float32)

    def eval_loss(self, batch) -> float:
        self.model.eval()
        with self.torch.no_grad():
            return float(self.loss(*self.features(batch)))

    def body(self, runner, pauses) -> None:
        torch, bs = self.torch, self.args.batch_size
        self.model.train()
        step, epoch = 0, 0
        while step < self.total_steps:
            pairs = self.epoch_pairs(epoch)
            for start in range(0, len(pairs), bs):
                batch = pairs[start : start + bs]
                features, labels = self.features(batch)
                loss = self.loss(features, labels)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.losses.append(float(loss.detach()))
                step += 1
                masks = [f["attention_mask"] for f in features]
                runner.add(
                    steps=1,
                    texts=2 * len(batch),
                    pairs=len(batch),
                    positive=int((labels > 0).sum()),
                    tokens=sum(int(m.sum()) for m in masks),
                    padded=sum(m.numel() for m in masks),
                )
                if step in pauses:
                    runner.pause()
                if step >= self.total_steps:
                    break
            epoch += 1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="a directory with train.jsonl and dev.jsonl ({text, label})"
    )
    p.add_argument("--limit", type=int, default=2000, help="the first N train texts")
    p.add_argument("--encoder", default="default")
    p.add_argument(
        "--batch-size", type=int, default=32, help="[training] batch_size: texts per in-batch step, pairs per pair step"
    )
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--chunk-steps", type=int, default=6, help="training steps per chunk")
    p.add_argument("--warmup-steps", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--st-optimizer", choices=("ours", "default"), default="ours", help="see bench_dae.st_optimizer")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    set_threads(args.threads)

    import sentence_transformers
    import torch
    import transformers
    from spacy import util

    from spacy_threephase.contrastive.paper import with_paper_pairs
    from spacy_threephase.encoder import resolve_encoder

    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    load_before = load_average()
    total_steps = args.warmup_steps + args.rounds * args.chunk_steps
    pauses = pause_points(args.warmup_steps, args.chunk_steps, args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n_texts = write_corpus(args.data, args.limit, 100, tmp / "corpus")
        shipped = config_path("contrastive")
        config = util.load_config(shipped, interpolate=False)
        with_paper_pairs(config)
        config.to_disk(tmp / "paper.cfg")
        inbatch = OursContrastive("ours-in-batch", shipped, tmp / "corpus", args, total_steps)
        paper = OursContrastive("ours-paper", tmp / "paper.cfg", tmp / "corpus", args, total_steps)
        st = SentenceTransformersCosine(resolve_encoder(args.encoder), paper, args, total_steps)
        impls = [inbatch, paper, st]
        # the same first pair batch, eval mode: the paper loss of ours and s-t's must agree
        probe = st.epoch_pairs(0)[: args.batch_size]
        first = {paper.name: paper.eval_loss(probe), st.name: st.eval_loss(probe)}
        runners = [Runner(impl.name, lambda r, impl=impl: impl.body(r, pauses)) for impl in impls]
        start = time.time()
        interleave(runners, args.rounds)
        wall = time.time() - start
    load_after = load_average()
    res = {r.name: timed(r, args.rounds) for r in runners}
    rate = {n: {k: v[2][k] / v[0] for k in ("pairs", "texts")} for n, v in res.items()}
    print(
        f"\nPhase 2 (contrastive) training throughput: the first {n_texts} train texts of {args.data}, batch_size "
        f"{args.batch_size}, max_length {args.max_length}, torch threads {args.threads}; "
        f"{args.rounds} interleaved rounds of {args.chunk_steps} steps each after {args.warmup_steps} warm-up steps "
        f"({wall:.0f} s in all)"
    )
    print(
        "| implementation | steps | texts encoded | pairs with a gradient (positive) | seconds | pairs/s | texts/s "
        "| CPU s | wordpieces real / padded | loss@0 (eval) | mean loss, last 5 steps |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    labels = {
        inbatch.name: f"ours, in-batch (default: {inbatch.describe()})",
        paper.name: f"ours, paper pairs ({paper.describe()})",
        st.name: f"sentence-transformers {sentence_transformers.__version__} CosineSimilarityLoss",
    }
    for impl in impls:
        sec, cpu, c, _ = res[impl.name]
        loss0 = f"{first[impl.name]:.4f}" if impl.name in first else "-"
        print(
            f"| {labels[impl.name]} | {c['steps']} | {c['texts']} | {c['pairs']} ({c['positive']}) | {sec:.1f} | "
            f"{rate[impl.name]['pairs']:.1f} | {rate[impl.name]['texts']:.1f} | {cpu:.1f} "
            f"| {c['tokens'] / c['padded']:.2f} | {loss0} | {statistics.mean(impl.losses[-5:]):.4f} |"
        )
    ratios = {}
    for impl in impls[:2]:
        per_round = [
            (o[2]["pairs"] / o[0]) / (s[2]["pairs"] / s[0]) for o, s in zip(res[impl.name][3], res[st.name][3])
        ]
        cpu = (res[impl.name][2]["pairs"] / res[impl.name][1]) / (res[st.name][2]["pairs"] / res[st.name][1])
        ratios[impl.name] = {
            "pairs": rate[impl.name]["pairs"] / rate[st.name]["pairs"],
            "texts": rate[impl.name]["texts"] / rate[st.name]["texts"],
            "per_round": per_round,
            "pairs_per_cpu_s": cpu,
        }
        print(
            f"\nratio ours / s-t, {impl.name}: {ratios[impl.name]['pairs']:.2f}x in pairs with a gradient per second "
            f"(per round: {', '.join(f'{x:.2f}' for x in per_round)}; median {statistics.median(per_round):.2f}); "
            f"{ratios[impl.name]['texts']:.2f}x in texts encoded per second; {cpu:.2f}x in pairs per CPU second"
        )
    results = {"rates": rate, "ratios": ratios, "first_losses": first}
    from _common import report_footer

    report_footer("bench_contrastive.py", args, argv, (load_before, load_after), results, machine())
    return 0


if __name__ == "__main__":
    sys.exit(main())
