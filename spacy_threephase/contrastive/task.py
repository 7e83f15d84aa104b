"""Phase 2's data, batches and loss, shared by the contrastive phase and Joint.

- the labelled corpus (a stratified dev set carved off train when there is none), the
  imbalance correction (table on stderr, `imbalance.json`), the label index and text keys;
- the texts tokenized once (`TokenizedTexts`);
- batches from `[pairs]`: the class-aware sampler (`class_batches.v1`: text batches with
  several texts of each of several classes, for the in-batch losses) or the paper's shuffled
  pairs (`shuffled_pairs.v1`: pair batches for the pair loss; for an in-batch loss it means
  random text batches); either way sorted by length within chunks, so padding costs little;
- `loss(encoder, pooling, batch)`: a batch encoded once, then `[loss]`.
"""

import math
import warnings
from pathlib import Path
from typing import Any, Dict, List

import numpy
import torch

from ..batching import TokenizedTexts, bucketed_batches, to_device
from ..encoder import pool
from ..errors import UserError
from ..packed_encoder import packable, packed_sentence_vectors
from .class_batches import ClassBatchSampler
from .corpus import load_train_dev
from .imbalance import CorrectedData
from .labels import LabelIndex
from .losses import INPUT_KINDS


def text_keys(texts) -> numpy.ndarray:
    ids: Dict[str, int] = {}
    return numpy.array([ids.setdefault(t, len(ids)) for t in texts], dtype=numpy.int64)


class ContrastiveTask:
    def __init__(self, corpus_dir: Path, settings: Dict[str, Any], tag: str):
        t, sampler, loss_fn = settings["training"], settings["pairs"], settings["loss"]
        self.training, self.sampler, self.loss_fn, self.tag = t, sampler, loss_fn, tag
        self.kind = getattr(loss_fn, "input_kind", None)
        if self.kind not in INPUT_KINDS:
            raise UserError(f"[loss] must give a loss with input_kind in {INPUT_KINDS}, got {self.kind!r}")
        self.class_batches = isinstance(sampler, ClassBatchSampler)
        if self.class_batches and self.kind == "pairs":
            raise UserError(
                f"[pairs] class_batches gives batches of texts, but [loss] {type(loss_fn).__name__} takes pairs; "
                "use spacy_threephase.in_batch_cosine_mse_loss.v1 (or shuffled_pairs.v1 for the pair loss)"
            )
        self.corpus, self.train, self.dev, self.n_classes = load_train_dev(corpus_dir, t.dev_fraction, t.seed, tag)
        self.corrected: CorrectedData = settings["imbalance"](self.train.texts, self.train.labels, seed=t.seed)
        self.index = LabelIndex(
            self.corrected.labels, hierarchical=self.corpus.hierarchical, order=self.corpus.label_order
        )
        self.keys = text_keys(self.corrected.texts)

    def prepare(self, enc) -> None:
        """Tokenize once and size the epoch (needs the encoder's tokenizer)."""
        t = self.training
        self.tokens = TokenizedTexts(enc.tokenizer, self.corrected.texts, enc.max_length)
        if self.kind == "pairs":
            self.first_pairs = self._pairs(0)
            if len(self.first_pairs) == 0:
                raise UserError(f"{self.tag}: could not draw any training pairs (too few examples?)")
            self.steps_per_epoch = math.ceil(len(self.first_pairs) / t.batch_size)
        elif self.class_batches:
            try:
                self.steps_per_epoch = self.sampler.batches_per_epoch(self.index, t.batch_size)
            except ValueError as err:
                raise UserError(f"[pairs] {err}") from None
        else:
            self.steps_per_epoch = math.ceil(len(self.tokens) / t.batch_size)

    def describe(self) -> str:
        table = self.corrected.format_table()
        if self.kind == "pairs":
            what = f"{len(self.first_pairs)} pairs per epoch ({self.first_pairs.n_positive} positive)"
        else:
            what = (
                f"{self.steps_per_epoch} batches of up to {self.training.batch_size} texts per epoch "
                f"({type(self.sampler).__name__})"
            )
            if self.class_batches and self.sampler.length_sorted:
                n, below = len(self.index.ids), self.sampler.random_below
                what += (
                    "; positives sorted by length"
                    if self.sampler.sorts(n)
                    else f"; positives at random ({n} examples, fewer than random_below = {below})"
                )
        text = f"imbalance correction (class sizes before -> after):\n{table}\n"
        text += f"{len(self.tokens)} training texts, {what}"
        if self.corpus.label_order:
            text += f"\npair scores: ordinal, {' < '.join(self.corpus.label_order)}"
        return text

    @property
    def label_scores(self) -> str:
        """How score(y_i, y_j) of eq. 2 is computed for this corpus (labels.py)."""
        if self.corpus.label_order:
            return "ordinal"
        if self.corpus.multi_label:
            return "jaccard"
        return "hierarchical" if self.corpus.hierarchical else "same class"

    def _pairs(self, epoch: int):
        return self.sampler(self.index, seed=self.training.seed + epoch, keys=self.keys, n_classes=self.n_classes)

    def make_batches(self, epoch: int) -> List[Any]:
        """The epoch's batches: a function of (seed, epoch) only, so a resumed run sees the same."""
        t, lengths = self.training, self.tokens.lengths
        seed = t.seed + epoch
        if self.class_batches:
            return self.sampler(self.index, batch_size=t.batch_size, seed=seed, lengths=lengths)
        if self.kind == "texts":
            return bucketed_batches(lengths, t.batch_size, seed, t.bucket_batches)
        pairs = self.first_pairs if epoch == 0 else self._pairs(epoch)
        order = bucketed_batches(
            numpy.maximum(lengths[pairs.first], lengths[pairs.second]), t.batch_size, seed, t.bucket_batches
        )
        batches = [list(zip(pairs.first[b].tolist(), pairs.second[b].tolist(), pairs.score[b].tolist())) for b in order]
        return batches[: self.steps_per_epoch]  # a later epoch's draw may hold a few more pairs

    def dev_pairs(self, dev):
        """Pairs of the `dev` split drawn like the paper's train pairs (fixed seed): Spearman's tie-break."""
        dev_index = LabelIndex(dev.labels, hierarchical=self.corpus.hierarchical, order=self.corpus.label_order)
        sampler = self.sampler if not self.class_batches else _paper_sampler()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a tiny dev set may give one-sided pairs; Spearman is then nan
            return sampler(
                dev_index, seed=self.training.dev_pairs_seed, keys=text_keys(dev.texts), n_classes=self.n_classes
            )

    def loss(self, encoder, pooling: str, batch) -> torch.Tensor:
        device = next(encoder.parameters()).device
        if self.kind == "pairs":
            first, second, scores = zip(*batch)
            vecs = self._embed(encoder, pooling, list(first) + list(second), device)
            u, v = vecs[: len(first)], vecs[len(first) :]
            return self.loss_fn(u, v, torch.tensor(scores, dtype=torch.float32, device=device))
        targets = torch.from_numpy(self.index.score_matrix(numpy.asarray(batch))).to(device)
        return self.loss_fn(self._embed(encoder, pooling, batch, device), targets)

    def _embed(self, encoder, pooling: str, items, device) -> torch.Tensor:
        features = to_device(self.tokens.collate(items), device)
        if packable(encoder):  # the same vectors, no arithmetic on padding (packed_encoder.py)
            return packed_sentence_vectors(encoder, features, pooling)
        return pool(encoder(**features).last_hidden_state, features["attention_mask"], pooling)

    def summary(self) -> Dict[str, Any]:
        return {
            "loss": type(self.loss_fn).__name__,
            "input_kind": self.kind,
            "sampler": type(self.sampler).__name__,
            "train_texts": len(self.train),
            "train_texts_after_correction": len(self.corrected.texts),
            "dev_texts": len(self.dev),
            "dev_carved_from_train": self.corpus.dev_carved,
            "pairs_per_epoch": len(self.first_pairs) if self.kind == "pairs" else None,
            "steps_per_epoch": self.steps_per_epoch,
            "label_scores": self.label_scores,
            "label_order": self.corpus.label_order,
        }

    def write(self, directory: Path, correction) -> None:
        self.corrected.write(directory / "imbalance.json", getattr(correction, "settings", {}))


def _paper_sampler():
    from .pairs import ShuffledPairSampler

    return ShuffledPairSampler()


class SiameseObjective(torch.nn.Module):
    """Phase 2's module for the Trainer: forward(batch) is the task's loss through the encoder."""

    def __init__(self, encoder, pooling: str, task: ContrastiveTask):
        super().__init__()
        self.encoder, self.pooling, self.task = encoder, pooling, task

    def forward(self, batch) -> torch.Tensor:
        return self.task.loss(self.encoder, self.pooling, batch)
