"""Phase-1 (DAE) training throughput: spacy-threephase vs sentence-transformers' TSDAE, side by side.

Both train all-MiniLM-L6-v2 (by default; Transformer + mean pooling) as a TSDAE with the
decoder tied to the encoder, on the same texts, with the same batch size, maximum length,
noise (word deletion 0.6, a new corruption every step), AdamW parameter groups, learning-rate
schedule, gradient clipping and torch threads, in one process:

* ours: driven the way `train_dae` drives it: `DAEPhase` configured from the shipped
  configs/dae.cfg (`phase.configure`), `phase.setup()`, `load_encoder`, `phase.build(enc)`
  (DAEObjective: texts tokenized once, noise per step, length-bucketed batches; LM head on
  the target positions only) and the shared `Trainer.fit(phase.make_batches, ...)`, with
  selection off (no evaluation: select_best false) and no checkpoints;
* s-t:  sentence-transformers' `DenoisingAutoEncoderLoss(model, tie_encoder_decoder=True)`
  in a plain torch loop as its docs train it: random batches of texts, noise + tokenization
  (`model.preprocess`) every step -> loss -> backward -> clip -> step -> schedule. Same
  optimizer (ours: AdamW foreach, same parameter groups) and schedule, so that only the
  training step differs.

Interleaved repeats: each implementation runs in its own thread, but only one runs at a
time; the main thread hands the CPU to them in turn, one chunk of steps each, for `--rounds`
rounds (ours first in even rounds, s-t first in odd ones), after `--warmup-steps` untimed
steps each. A chunk's wall-clock and process-CPU seconds belong to one implementation alone.
Both start from the same weights and the same random cross-attention / LM-head init (same
seed): the eval-mode loss of one batch agrees, a check that both compute the same objective.

    python benchmarks/bench_dae.py --limit 2000 --batch-size 16 --max-length 128 --threads 2

Profile mode (`--profile N`): N training steps of phase 1 with a timer around every stage
(noise + tokenization, encoder forward, decoder forward, LM head, loss, backward, clipping,
optimizer step), for the spacy_threephase on the path: run it with PYTHONPATH pointing at an
older checkout (e.g. `git worktree add /tmp/before d334166`) to profile that one; the script
recognises the older API (DAEStep, build_adamw) and uses it.

    python benchmarks/bench_dae.py --profile 20 --threads 2
    PYTHONPATH=/tmp/before python benchmarks/bench_dae.py --profile 20 --threads 2
"""

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

from _common import load_average

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "snips" / "train.jsonl"


def read_texts(path: Path, limit: int):
    texts = []
    with path.open(encoding="utf8") as fh:
        for line in fh:
            if line.strip():
                texts.append(" ".join(json.loads(line)["text"].split()))
            if len(texts) >= limit:
                break
    return texts


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "")
    except OSError:
        model = ""
    cpu = model or platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def set_threads(threads: int) -> None:
    """Before torch is imported: OpenMP threads for every thread of the process."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def shipped_dae_setting(key: str, default: bool) -> bool:
    """A [training] setting of the shipped dae.cfg."""
    from spacy_threephase.config import load_config

    return bool(load_config(config_path("dae"), interpolate=False)["training"].get(key, default))


def mixed_precision(args) -> bool:
    """Whether ours runs with mixed_precision: --precision, else the shipped dae.cfg."""
    if args.precision != "config":
        return args.precision == "mixed"
    return shipped_dae_setting("mixed_precision", True)


def trains_word_embeddings(args) -> bool:
    """Whether ours trains the word embeddings: --word-embeddings, else the shipped dae.cfg."""
    if args.word_embeddings != "config":
        return args.word_embeddings == "train"
    return shipped_dae_setting("train_word_embeddings", True)


def config_path(name: str) -> Path:
    try:
        from spacy_threephase.configs import default_config_path

        return default_config_path(name)
    except ImportError:
        return REPO / "configs" / f"{name}.cfg"


def seed_all(seed: int) -> None:
    import numpy
    import torch

    random.seed(seed)
    numpy.random.seed(seed)
    torch.manual_seed(seed)


# -- interleaved runs ----------------------------------------------------------------------------


class Runner:
    """One implementation's training loop in its own thread, run one slice at a time.

    `body(runner)` trains and calls `runner.pause()` at each chunk boundary and `runner.add(...)`
    to count what it did. Only one runner works at any moment (the main thread resumes one and
    waits until it pauses or ends), so they never compete for the cores, and a slice's wall
    and process-CPU seconds belong to that runner alone.
    """

    def __init__(self, name: str, body):
        self.name, self.body = name, body
        self.slices = []  # (seconds, cpu seconds, counts); slices[0] is the warm-up
        self.counts = Counter()
        self.error = None
        self.finished = False
        self._go, self._idle = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def add(self, **counts) -> None:
        self.counts.update(counts)

    def _begin(self) -> None:
        self.counts = Counter()
        self._t0, self._c0 = time.perf_counter(), time.process_time()

    def pause(self) -> None:
        self.slices.append((time.perf_counter() - self._t0, time.process_time() - self._c0, dict(self.counts)))
        self._idle.set()
        self._go.wait()
        self._go.clear()
        self._begin()

    def _main(self) -> None:
        self._go.wait()
        self._go.clear()
        self._begin()
        try:
            self.body(self)
        except BaseException as err:  # noqa: BLE001 - re-raised in the main thread
            self.error = err
        self.finished = True
        self._idle.set()

    def resume(self) -> None:
        if self.finished:
            raise RuntimeError(f"{self.name}: already finished")
        if not self._thread.is_alive():
            self._thread.start()
        self._idle.clear()
        self._go.set()
        self._idle.wait()
        if self.error is not None:
            raise RuntimeError(f"{self.name} failed: {self.error!r}") from self.error


def interleave(runners, rounds: int) -> None:
    """Warm-up slice of each, then `rounds` rounds (order reversed every other round), then the tails."""
    for r in runners:
        r.resume()
    for k in range(rounds):
        for r in runners if k % 2 == 0 else runners[::-1]:
            r.resume()
    for r in runners:
        r.resume()  # whatever follows the last timed step (not counted)
        if not r.finished:
            raise RuntimeError(f"{r.name}: paused more often than {rounds} + 1 times")


def timed(runner, rounds: int):
    """Sum of the timed slices: seconds, cpu, counts; and the per-round slices."""
    slices = runner.slices[1 : 1 + rounds]
    if len(slices) != rounds:
        raise RuntimeError(f"{runner.name}: {len(slices)} timed slices, expected {rounds}")
    total = Counter()
    for _, _, counts in slices:
        total.update(counts)
    return sum(s[0] for s in slices), sum(s[1] for s in slices), total, slices


def pause_points(warmup: int, chunk: int, rounds: int):
    return {warmup + i * chunk for i in range(rounds + 1)}


# -- ours ----------------------------------------------------------------------------------------


class OursDAE:
    """Phase 1 as `train_dae` runs it, minus selection, checkpoints and writing the output."""

    def __init__(self, name, texts_path: Path, args, total_steps: int):
        from spacy_threephase.dae.train import DAEPhase
        from spacy_threephase.encoder import load_encoder, tokenize
        from spacy_threephase.phase import configure

        self.name = name
        self.phase = DAEPhase(texts_path)
        overrides = {
            "encoder.max_length": args.max_length,
            "noise.deletion_ratio": args.deletion_ratio,
            "training.batch_size": args.batch_size,
            "training.epochs": 1000,  # max_steps ends the run
            "training.max_steps": total_steps,
            "training.seed": args.seed,
            "training.select_best": False,
            "training.checkpoint_every": 0,
            "training.progress": False,
            "training.torch_threads": 0,
        }
        if args.word_embeddings != "config":
            overrides["training.train_word_embeddings"] = args.word_embeddings == "train"
        if args.precision != "config":
            overrides["training.mixed_precision"] = args.precision == "mixed"
        configure(self.phase, config_path("dae"), overrides, args.encoder)
        self.training = self.phase.settings["training"]
        enc_cfg = self.phase.settings["encoder"]
        seed_all(args.seed)
        self.phase.setup()
        self.enc = load_encoder(enc_cfg.name, pooling=enc_cfg.pooling, max_length=enc_cfg.max_length or None)
        seed_all(args.seed)  # the decoder's new weights: the same draw as s-t's
        self.model = self.phase.build(self.enc)
        self.tokenize = lambda texts: tokenize(self.enc.tokenizer, texts, self.enc.max_length)
        self.losses = []

    def head_precision(self) -> str:
        head = self.phase.objective.dae.decoder.get_output_embeddings()
        return "bfloat16" if "forward" in vars(head) else "float32"

    def attention(self) -> str:
        decoder = self.phase.objective.dae.decoder
        return f"{self.enc.model.config._attn_implementation}/{decoder.config._attn_implementation}"

    def eval_loss(self, noisy, clean) -> float:
        import torch

        self.model.eval()
        with torch.no_grad():
            return float(self.phase.objective.dae(self.tokenize(noisy), self.tokenize(clean)))

    def body(self, runner, pauses) -> None:
        from _common import run_product_phase

        lengths = self.phase.objective.clean.lengths

        def before(module, args):
            items = args[0]
            runner.add(
                steps=1,
                texts=len(items),
                target_tokens=int(lengths[items].sum()),
                padded_targets=int(lengths[items].max()) * len(items),
            )

        run_product_phase(self, runner, pauses, before)


# -- sentence-transformers -----------------------------------------------------------------------


def st_modules():
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers < 5.2
        from sentence_transformers.models import Pooling, Transformer
    return Transformer, Pooling


def st_optimizer(module, training, kind: str):
    """The s-t side's AdamW: "ours" = our `build_optimizer` (same groups, foreach), so that only the
    training step differs; "default" = the same groups with torch's default implementation, which
    is what sentence-transformers' trainer builds (transformers' default optim "adamw_torch"): on
    the CPU, the single-tensor loop. Use "default" when ours changes its optimizer."""
    import torch

    from spacy_threephase.training import build_optimizer

    optimizer = build_optimizer(module, training)
    if kind == "ours":
        return optimizer
    groups = [{k: v for k, v in g.items() if k in ("params", "weight_decay")} for g in optimizer.param_groups]
    return torch.optim.AdamW(groups, lr=training.learning_rate)


def st_preprocess(model):
    return getattr(model, "preprocess", None) or model.tokenize


class SentenceTransformersDAE:
    def __init__(self, name, source, texts, noise, args, training, total_steps: int):
        import torch
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.losses import DenoisingAutoEncoderLoss
        from transformers import get_linear_schedule_with_warmup

        Transformer, Pooling = st_modules()
        self.name, self.texts, self.noise, self.args, self.torch = name, texts, noise, args, torch
        seed_all(args.seed)
        # Transformer + mean pooling, as ours: the saved all-MiniLM-L6-v2 also has a Normalize
        # module, which would feed the decoder an L2-normalised vector instead.
        transformer = Transformer(source, max_seq_length=args.max_length)
        dim = (
            transformer.get_embedding_dimension()
            if hasattr(transformer, "get_embedding_dimension")
            else transformer.get_word_embedding_dimension()
        )
        self.model = SentenceTransformer(modules=[transformer, Pooling(dim, pooling_mode="mean")], device="cpu")
        self.preprocess = st_preprocess(self.model)
        seed_all(args.seed)  # the decoder's new weights: the same draw as ours
        self.loss = DenoisingAutoEncoderLoss(self.model, tie_encoder_decoder=True)
        self.optimizer = st_optimizer(self.loss, training, args.st_optimizer)
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, int(round(training.warmup_ratio * total_steps)), total_steps
        )
        self.max_grad_norm = training.max_grad_norm
        self.total_steps = total_steps
        self.losses = []

    def attention(self) -> str:
        return f"{self.model[0].auto_model.config._attn_implementation}/{self.loss.decoder.config._attn_implementation}"

    def eval_loss(self, noisy, clean) -> float:
        self.loss.eval()
        with self.torch.no_grad():
            return float(self.loss([self.preprocess(noisy), self.preprocess(clean)], None))

    def body(self, runner, pauses) -> None:
        torch, args = self.torch, self.args
        self.loss.train()
        noise_rng = random.Random(f"st-noise-{args.seed}")
        step, epoch = 0, 0
        while step < self.total_steps:
            order = list(range(len(self.texts)))
            random.Random(f"st-order-{args.seed}-{epoch}").shuffle(order)  # a shuffled DataLoader
            for start in range(0, len(order), args.batch_size):
                clean = [self.texts[i] for i in order[start : start + args.batch_size]]
                noisy = [self.noise(t, noise_rng) for t in clean]
                features = [self.preprocess(noisy), self.preprocess(clean)]
                loss = self.loss(features, None)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.loss.parameters(), self.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.losses.append(float(loss.detach()))
                mask = features[1]["attention_mask"]
                step += 1
                runner.add(steps=1, texts=len(clean), target_tokens=int(mask.sum()), padded_targets=int(mask.numel()))
                if step in pauses:
                    runner.pause()
                if step >= self.total_steps:
                    break
            epoch += 1


# -- the comparison ------------------------------------------------------------------------------


def compare(args) -> int:
    import sentence_transformers
    import torch
    import transformers

    from spacy_threephase.encoder import resolve_encoder

    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    load_before = load_average()
    texts = read_texts(args.data, args.limit)
    total_steps = args.warmup_steps + args.rounds * args.chunk_steps
    pauses = pause_points(args.warmup_steps, args.chunk_steps, args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        texts_path = Path(tmp) / "texts.txt"
        texts_path.write_text("\n".join(texts) + "\n", encoding="utf8")
        ours = OursDAE("ours", texts_path, args, total_steps)
        source = resolve_encoder(args.encoder)
        st = SentenceTransformersDAE(
            "s-t", source, ours.phase.texts, ours.phase.settings["noise"], args, ours.training, total_steps
        )
        impls = [ours, st]
        # same weights, same new decoder weights, no dropout: the losses must agree
        probe_rng = random.Random(f"probe-{args.seed}")
        clean = texts[: args.batch_size]
        noisy = [ours.phase.settings["noise"](t, probe_rng) for t in clean]
        first = {impl.name: impl.eval_loss(noisy, clean) for impl in impls}
        runners = [Runner(impl.name, lambda r, impl=impl: impl.body(r, pauses)) for impl in impls]
        start = time.time()
        interleave(runners, args.rounds)
        wall = time.time() - start
    load_after = load_average()
    res = {r.name: timed(r, args.rounds) for r in runners}
    rate = {n: v[2]["texts"] / v[0] for n, v in res.items()}
    per_round = [(o[2]["texts"] / o[0]) / (s[2]["texts"] / s[0]) for o, s in zip(res["ours"][3], res["s-t"][3])]
    ratio = rate["ours"] / rate["s-t"]
    print(
        f"\nPhase 1 (DAE) training throughput: {len(texts)} texts of {args.data}, batch {args.batch_size}, max_length "
        f"{args.max_length}, deletion {args.deletion_ratio}, torch threads {args.threads}; "
        f"{args.rounds} interleaved rounds of {args.chunk_steps} steps each after {args.warmup_steps} warm-up steps "
        f"({wall:.0f} s in all); ours: word embeddings {'trained' if trains_word_embeddings(args) else 'fixed'}, "
        f"LM head {ours.head_precision()}; "
        f"s-t optimizer: {args.st_optimizer}"
    )
    print(
        "| implementation | steps | texts | seconds | texts/s | CPU s | texts/CPU s | target tokens / padded "
        "| loss@0 (eval) | mean loss, last 10 steps | attention enc/dec |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for impl in impls:
        sec, cpu, c, _ = res[impl.name]
        label = (
            "spacy-threephase (ours)" if impl is ours else f"sentence-transformers {sentence_transformers.__version__}"
        )
        print(
            f"| {label} | {c['steps']} | {c['texts']} | {sec:.1f} | {rate[impl.name]:.1f} | {cpu:.1f} "
            f"| {c['texts'] / cpu:.1f} | {c['target_tokens'] / c['padded_targets']:.2f} | {first[impl.name]:.4f} "
            f"| {statistics.mean(impl.losses[-10:]):.4f} | {impl.attention()} |"
        )
    print(
        f"\nratio ours / s-t (texts/s): {ratio:.2f}x; per round: {', '.join(f'{x:.2f}' for x in per_round)} "
        f"(median {statistics.median(per_round):.2f}); CPU-time ratio "
        f"{(res['ours'][2]['texts'] / res['ours'][1]) / (res['s-t'][2]['texts'] / res['s-t'][1]):.2f}x"
    )
    results = {"rates": rate, "ratio": ratio, "per_round": per_round, "first_losses": first}
    from _common import report_footer

    report_footer("bench_dae.py", args, None, (load_before, load_after), results, machine())
    return 0


# -- profile mode --------------------------------------------------------------------------------

STAGES = ("noise + tokenize", "encoder fwd", "decoder fwd", "LM head", "loss", "backward", "clip", "optimizer step")


def profile(args) -> int:
    """Time the stages of N phase-1 training steps of the spacy_threephase on the path."""
    import torch
    import transformers
    from torch.nn import functional as F

    import spacy_threephase
    from spacy_threephase.dae.model import DenoisingAutoEncoder, build_decoder
    from spacy_threephase.dae.noise import word_deletion
    from spacy_threephase.encoder import load_encoder, tokenize

    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    load_before = load_average()
    texts = read_texts(args.data, args.limit)
    bs, seed = args.batch_size, args.seed
    noise, noise_rng = word_deletion(args.deletion_ratio), random.Random(f"noise-{seed}-0")
    seed_all(seed)
    enc = load_encoder(args.encoder, max_length=args.max_length)
    seed_all(seed)
    decoder, trains = build_decoder(enc.path, enc.model), trains_word_embeddings(args)
    try:  # as phase 1 builds it: with mixed precision on an AMX CPU, the fixed LM head in bfloat16
        from spacy_threephase.dae.model import cpu_has_bf16_matrix_units

        bf16_head = mixed_precision(args) and cpu_has_bf16_matrix_units()
        dae = DenoisingAutoEncoder(enc.model, decoder, enc.pooling, train_word_embeddings=trains, bf16_head=bf16_head)
    except ImportError:  # an older checkout
        dae = DenoisingAutoEncoder(enc.model, decoder, enc.pooling)
        if not trains:
            dae.freeze_word_embeddings()
    try:  # the current code: texts tokenized once, length-bucketed batches, build_optimizer
        from spacy_threephase.batching import TokenizedTexts, bucketed_batches
        from spacy_threephase.settings import DAETrainingSection
        from spacy_threephase.training import build_optimizer

        version = "current (TokenizedTexts + bucketed_batches, build_optimizer)"
        settings = DAETrainingSection(batch_size=bs, seed=seed)
        optimizer = build_optimizer(dae, settings)
        clean_tokens = TokenizedTexts(enc.tokenizer, texts, enc.max_length)
        batches = [
            [texts[i] for i in b] for b in bucketed_batches(clean_tokens.lengths, bs, seed, settings.bucket_batches)
        ]
        index = {t: i for i, t in enumerate(texts)}
        clean_features = lambda batch: clean_tokens.collate([index[t] for t in batch])  # noqa: E731
    except ImportError:  # d334166: DAEStep (random batches, clean texts tokenized every step), build_adamw
        from spacy_threephase.training import TrainingSettings, build_adamw

        version = "d334166 API (DAEStep: random batches, tokenize noisy and clean every step, build_adamw)"
        settings = TrainingSettings(batch_size=bs, seed=seed, learning_rate=1e-4)
        optimizer = build_adamw(dae, settings)
        order = list(texts)
        random.Random(f"order-{seed}-0").shuffle(order)
        batches = [order[i : i + bs] for i in range(0, len(order), bs)]
        clean_features = lambda batch: tokenize(enc.tokenizer, batch, enc.max_length)  # noqa: E731
    head_name = getattr(dae, "_head_name", None)
    params = [p for p in dae.parameters() if p.requires_grad]
    times = {s: [] for s in STAGES}
    tokens = Counter()
    steps = args.warmup_steps + args.profile
    if steps > len(batches):
        raise SystemExit(f"--limit {args.limit} gives {len(batches)} batches, fewer than {steps} steps")
    prof = None
    dae.train()
    for k, batch in enumerate(batches[:steps]):
        if k == args.warmup_steps and args.torch_profiler:
            prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            prof.__enter__()
        t = [time.perf_counter()]
        noisy = tokenize(enc.tokenizer, [noise(x, noise_rng) for x in batch], enc.max_length)
        clean = clean_features(batch)
        t.append(time.perf_counter())
        vectors = dae.encode(noisy)
        t.append(time.perf_counter())
        ids, mask = clean["input_ids"], clean["attention_mask"]
        labels, keep = ids[:, 1:], mask[:, 1:].bool()
        kwargs = dae._decoder_kwargs(vectors, ids[:, :-1], mask[:, :-1])
        hidden = dae.decoder.base_model(**kwargs).last_hidden_state
        t.append(time.perf_counter())
        fused = getattr(dae, "_projected_loss", None)  # the fixed projection fused with the loss (lm_loss.py)
        if fused is not None:  # "LM head": its transform; "loss": projection + cross-entropy, fwd and grads
            with fused.projection_skipped():
                features = getattr(dae.decoder, head_name)(hidden[keep])
            t.append(time.perf_counter())
            loss = fused(features, labels[keep])
        else:
            logits = getattr(dae.decoder, head_name)(hidden[keep])  # BertLMHeadModel: the head on target positions
            t.append(time.perf_counter())
            loss = F.cross_entropy(logits.float(), labels[keep])
        t.append(time.perf_counter())
        loss.backward()
        t.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        t.append(time.perf_counter())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss.detach())
        t.append(time.perf_counter())
        if k >= args.warmup_steps:
            for stage, a, b in zip(STAGES, t, t[1:]):
                times[stage].append(b - a)
            tokens.update(
                texts=len(batch),
                noisy=int(noisy["attention_mask"].sum()),
                noisy_padded=noisy["attention_mask"].numel(),
                clean=int(mask.sum()),
                clean_padded=mask.numel(),
            )
    if prof is not None:
        prof.__exit__(None, None, None)
    load_after = load_average()
    total = sum(sum(v) for v in times.values())
    print(f"\nPhase-1 step profile: {version}")
    print(
        f"spacy_threephase from {Path(spacy_threephase.__file__).parent}; {args.profile} steps after "
        f"{args.warmup_steps} warm-up, batch {bs}, max_length {args.max_length}, {len(texts)} texts of {args.data}, "
        f"torch threads {args.threads}, word embeddings {'trained' if trains_word_embeddings(args) else 'fixed'}"
    )
    print("| stage | ms/step | share |")
    print("|---|---:|---:|")
    for stage in STAGES:
        ms = 1000 * sum(times[stage]) / args.profile
        print(f"| {stage} | {ms:.1f} | {100 * sum(times[stage]) / total:.1f} % |")
    print(f"| **step** | **{1000 * total / args.profile:.1f}** | {tokens['texts'] / total:.1f} texts/s |")
    print(
        f"wordpieces real / padded: noisy {tokens['noisy']} / {tokens['noisy_padded']}, "
        f"clean {tokens['clean']} / {tokens['clean_padded']}; "
        f"attention {enc.model.config._attn_implementation}/{dae.decoder.config._attn_implementation}"
    )
    print(f"load average before: {load_before}; after: {load_after}; machine: {machine()}; torch {torch.__version__}")
    if prof is not None:
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.torch_profiler))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="JSONL with a 'text' field")
    parser.add_argument("--limit", type=int, default=2000, help="use the first N texts")
    parser.add_argument("--encoder", default="default")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--rounds", type=int, default=4, help="interleaved rounds (one chunk of each implementation per round)"
    )
    parser.add_argument("--chunk-steps", type=int, default=15, help="training steps per chunk")
    parser.add_argument("--warmup-steps", type=int, default=3, help="untimed steps of each implementation first")
    parser.add_argument("--deletion-ratio", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--st-optimizer", choices=("ours", "default"), default="ours", help="the s-t side's AdamW (see st_optimizer)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="profile N steps of ours instead of comparing"
    )
    parser.add_argument(
        "--word-embeddings",
        choices=("config", "train", "fixed"),
        default="config",
        help="ours: train the word-embedding matrix or keep it fixed (default: as dae.cfg's train_word_embeddings)",
    )
    parser.add_argument(
        "--precision",
        choices=("config", "mixed", "fp32"),
        default="config",
        help="ours: mixed_precision (on a CPU with AMX: the fixed LM head's vocabulary projection in bfloat16) "
        "or float32 throughout (default: as dae.cfg's mixed_precision)",
    )
    parser.add_argument(
        "--torch-profiler",
        type=int,
        default=0,
        metavar="ROWS",
        help="with --profile: also print torch.profiler's top ROWS ops",
    )
    args = parser.parse_args(argv)
    set_threads(args.threads)
    return profile(args) if args.profile else compare(args)


if __name__ == "__main__":
    sys.exit(main())
