"""Length-bucketed batches for phase 3 (`spacy_threephase.bucketed_batch.v1`).

A transformer pads every batch to its longest text, so batches of texts of mixed lengths
spend most of their compute on padding. This batcher takes the (already shuffled) examples
of an epoch in chunks of about `chunk_size` docs, sorts each chunk by length, cuts it into
batches of `size` docs and hands the chunk's batches out in a random order: batches are
near-homogeneous in length, and which lengths come when stays random.

Where the randomness comes from, and why it survives resume:

- spaCy shuffles the examples before each epoch (`create_train_batches`, with python's
  global RNG, seeded from `[training] seed`); this batcher keeps that order among texts of
  the same length (the sort is stable).
- The order of a chunk's batches comes from `random.Random` seeded with `seed` and a hash of
  the chunk's texts, in their incoming order. So the batches are a function of the seed and
  of the examples spaCy hands over, nothing else: no epoch counter, no global RNG. Two runs
  with one seed see the same batches, and so does a resumed phase-3 run (which rebuilds the
  batcher and replays the batches the killed run had used: see finetune/loop.py). A corpus
  that arrives in the same order every epoch (a streamed, unshuffled corpus) gets the same
  batches every epoch, as with spaCy's own batchers.
- A `size` schedule (e.g. compounding) is one generator for the whole run, as in spaCy's
  batchers; each chunk draws the sizes of its batches from it in step order, and each batch
  keeps the size drawn for its position, whatever lengths it gets.

Tiny training sets (`min_batches`): an epoch of 40 texts is 2 batches of 32, so 20 epochs are
40 optimizer steps, most of them inside the learning-rate warm-up, and a run evaluated every 50
steps is scored only at step 0 (an untrained head) and at its end. With `min_batches = N`, an
epoch whose examples make fewer than N batches is topped up with further passes over the same
examples, each in an order drawn from `seed`, the pass number and the examples (no global
RNG, so resume replays it), until it has at least N batches. Corpora of N * size examples or
more are batched exactly as without it. It needs the epoch's examples as a list (what spaCy
hands over when `max_epochs` >= 0); a streamed corpus is batched as is.
"""

import hashlib
import itertools
import random
from functools import partial
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, TypeVar, Union

from spacy import registry

from .errors import UserError

ItemT = TypeVar("ItemT")
Sizing = Union[Sequence[int], int]


@registry.batchers("spacy_threephase.bucketed_batch.v1")
def configure_bucketed_batch(
    size: Sizing,
    chunk_size: int,
    seed: Optional[int] = 0,
    get_length: Optional[Callable[[ItemT], int]] = None,
    min_batches: int = 0,
) -> Callable[[Iterable[ItemT]], Iterator[List[ItemT]]]:
    """size: docs per batch (an int or a schedule); chunk_size: docs sorted by length
    together (e.g. 50 batches' worth); seed: for the order of a chunk's batches (usually
    ${training.seed}); get_length: a doc's length (default: len(example), its tokens);
    min_batches: top up an epoch of fewer batches with more passes over its examples (0: off)."""
    if isinstance(size, bool) or (isinstance(size, int) and size < 1):
        raise UserError(f"[training.batcher] size: must be a number of docs (1 or more), not {size!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise UserError(f"[training.batcher] chunk_size: must be a number of docs (1 or more), not {chunk_size!r}")
    if isinstance(min_batches, bool) or not isinstance(min_batches, int) or min_batches < 0:
        raise UserError(f"[training.batcher] min_batches: must be a number of batches (0 or more), not {min_batches!r}")
    return partial(
        bucketed_batch,
        size=size,
        chunk_size=chunk_size,
        seed=seed,
        get_length=get_length or len,
        min_batches=min_batches,
    )


def bucketed_batch(
    items: Iterable[ItemT],
    size: Sizing,
    chunk_size: int,
    seed: Optional[int] = 0,
    get_length: Callable[[ItemT], int] = len,
    min_batches: int = 0,
) -> Iterator[List[ItemT]]:
    """Every item exactly once, in batches of `size` (the last ones of the input may be smaller);
    with `min_batches`, a list of items too short for that many batches is passed over again
    (in another seeded order each time) until at least that many batches are out."""
    sizes = itertools.repeat(size) if isinstance(size, int) else iter(size)
    if not min_batches or not isinstance(items, list) or not items:
        yield from _one_pass(items, sizes, chunk_size, seed, get_length)
        return
    done = 0
    for n in itertools.count():
        order = items if n == 0 else _reordered(items, f"{seed}/pass{n}")
        for batch in _one_pass(order, sizes, chunk_size, seed, get_length):
            done += 1
            yield batch
        if done >= min_batches:
            return


def _one_pass(items: Iterable[ItemT], sizes: Iterator, chunk_size: int, seed, get_length) -> Iterator[List[ItemT]]:
    """One pass over the items: chunks sorted by length, cut into batches in a seeded order."""
    items = iter(items)
    for first in items:
        plan = _draw_sizes(sizes, chunk_size)
        chunk = [first, *itertools.islice(items, sum(plan) - 1)]
        plan = _fit(plan, len(chunk))
        ranked = sorted(chunk, key=get_length)  # stable: ties keep the shuffled order
        order = list(range(len(plan)))
        random.Random(_chunk_seed(seed, chunk)).shuffle(order)
        batches: List[List[ItemT]] = [[] for _ in plan]
        start = 0
        for position in order:  # consecutive length ranks go to a random step of the chunk
            batches[position] = ranked[start : start + plan[position]]
            start += plan[position]
        yield from batches


def _draw_sizes(sizes: Iterator, chunk_size: int) -> List[int]:
    """Batch sizes for one chunk, from the schedule: whole batches of at least chunk_size docs."""
    plan: List[int] = []
    while sum(plan) < chunk_size:
        n = next(sizes, None)
        if n is None:
            raise UserError(
                "[training.batcher] size: the list of batch sizes ran out; use an int or an endless schedule"
            )
        n = int(n)
        if n < 1:
            raise UserError(f"[training.batcher] size: the schedule gave a batch size of {n}; sizes must be 1 or more")
        plan.append(n)
    return plan


def _fit(plan: List[int], n: int) -> List[int]:
    """The sizes a short (last) chunk of n docs fills, the last one cut."""
    fitted = []
    for size in plan:
        if n <= 0:
            break
        fitted.append(min(size, n))
        n -= size
    return fitted


def _reordered(items: List[ItemT], seed: str) -> List[ItemT]:
    """The items in an order drawn from `seed` and the items themselves (no global RNG)."""
    order = list(items)
    random.Random(_chunk_seed(seed, items)).shuffle(order)
    return order


def _chunk_seed(seed, chunk: list) -> int:
    """A seed from `seed` and the chunk's texts in their order (stable across processes)."""
    h = hashlib.blake2b(f"{seed}".encode("utf8"), digest_size=8)
    for item in chunk:
        h.update(b"\x1f")
        h.update(_text(item).encode("utf8", "surrogatepass"))
    return int.from_bytes(h.digest(), "little")


def _text(item) -> str:
    """An Example's or Doc's text (what identifies it); anything else by its repr."""
    if hasattr(item, "reference"):
        item = item.reference
    text = getattr(item, "text", None)
    return text if isinstance(text, str) else repr(item)
