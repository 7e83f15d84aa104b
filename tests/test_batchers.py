"""`spacy_threephase.bucketed_batch.v1`: every example once per epoch, batches of similar
lengths (far less padding than spaCy's plain batches), the same batches for the same input."""

import random

import pytest
import spacy
from spacy.training import Example
from thinc.api import compounding

from spacy_threephase.batchers import bucketed_batch, configure_bucketed_batch
from spacy_threephase.errors import UserError


@pytest.fixture(scope="module")
def examples():
    """600 examples of 1 to 60 tokens, in a random order (as spaCy's shuffle hands them over)."""
    nlp = spacy.blank("en")
    rng = random.Random(7)
    out = []
    for i in range(600):
        words = [f"w{i}"] + [rng.choice("abcdefgh") for _ in range(rng.randint(0, 59))]
        doc = nlp.make_doc(" ".join(words))
        out.append(Example(doc, doc.copy()))
    return out


def padding_waste(batches) -> float:
    """Padded tokens / real tokens: what a transformer spends on padding."""
    real = sum(len(eg) for b in batches for eg in b)
    padded = sum(max(len(eg) for eg in b) * len(b) for b in batches)
    return (padded - real) / real


def test_registered_and_resolvable_by_name():
    section = {"@batchers": "spacy_threephase.bucketed_batch.v1", "size": 4, "chunk_size": 40}
    batcher = spacy.registry.resolve({"b": section})["b"]
    items = ["x" * n for n in range(1, 11)]
    batches = list(batcher(items))
    assert sorted(len(b) for b in batches) == [2, 4, 4] and sorted(x for b in batches for x in b) == sorted(items)


def test_every_example_exactly_once_per_epoch(examples):
    batcher = configure_bucketed_batch(size=32, chunk_size=320, seed=0)
    for _ in range(2):  # two epochs, as spaCy calls it
        batches = list(batcher(examples))
        seen = [id(eg) for b in batches for eg in b]
        assert len(seen) == len(examples) and set(seen) == {id(eg) for eg in examples}
        assert sum(len(b) == 32 for b in batches) == len(examples) // 32  # all full but one (600 = 18 * 32 + 24)
        assert sorted(len(b) for b in batches)[0] == 600 - 18 * 32


def test_batches_are_near_homogeneous_in_length(examples):
    from spacy.util import minibatch

    bucketed = list(bucketed_batch(examples, size=32, chunk_size=600, seed=0))
    plain = list(minibatch(examples, size=32))
    assert padding_waste(bucketed) < 0.1 < padding_waste(plain) / 5
    spans = [max(len(eg) for eg in b) - min(len(eg) for eg in b) for b in bucketed]
    assert max(spans) <= 8


def test_batches_of_a_chunk_come_in_a_random_order(examples):
    batches = list(bucketed_batch(examples, size=32, chunk_size=600, seed=0))
    longest = [max(len(eg) for eg in b) for b in batches]
    assert longest != sorted(longest) and longest != sorted(longest, reverse=True)


def test_deterministic_and_a_function_of_seed_and_input(examples):
    def run(items, seed, **kw):
        return [[id(eg) for eg in b] for b in bucketed_batch(items, size=32, chunk_size=320, seed=seed, **kw)]

    assert run(examples, 0) == run(list(examples), 0)  # no state: a new call (a resumed run) sees the same
    assert run(examples, 0) != run(examples, 1)
    reordered = list(examples)
    random.Random(1).shuffle(reordered)
    assert run(reordered, 0) != run(examples, 0)  # another epoch's order: other batches


def test_size_schedule_gives_each_step_its_size(examples):
    sizes = compounding(4.0, 32.0, 1.5)
    batches = list(bucketed_batch(examples, size=sizes, chunk_size=100, seed=0))
    expected = compounding(4.0, 32.0, 1.5)
    assert [len(b) for b in batches[:6]] == [int(next(expected)) for _ in range(6)]
    assert sum(len(b) for b in batches) == len(examples)


def test_custom_length_and_plain_items():
    items = ["x" * n for n in (5, 1, 9, 2, 8, 3)]
    batches = list(bucketed_batch(items, size=2, chunk_size=6, seed=0, get_length=len))
    assert sorted(tuple(sorted(map(len, b))) for b in batches) == [(1, 2), (3, 5), (8, 9)]


def test_min_batches_tops_up_a_tiny_epoch_with_reordered_passes():
    """40 texts in batches of 32 are 2 batches; min_batches 10 makes 5 passes, each text once a
    pass, the later passes in other orders, the same for the same input."""
    items = [f"text {i} " + "x" * (i % 7) for i in range(40)]
    batches = list(bucketed_batch(items, size=32, chunk_size=1600, seed=0, min_batches=10))
    assert len(batches) == 10 and [len(b) for b in batches].count(32) == 5
    counts = {x: sum(b.count(x) for b in batches) for x in items}
    assert set(counts.values()) == {5}
    passes = [[x for b in batches[i : i + 2] for x in b] for i in range(0, 10, 2)]
    assert all(sorted(p) == sorted(items) for p in passes) and len({tuple(p) for p in passes}) == 5
    assert batches == list(bucketed_batch(list(items), size=32, chunk_size=1600, seed=0, min_batches=10))
    assert batches != list(bucketed_batch(items, size=32, chunk_size=1600, seed=1, min_batches=10))
    # batches of 10 are 4 a pass; min_batches 11 needs 3 passes, and the third is finished: 12
    assert len(list(bucketed_batch(items, size=10, chunk_size=1600, seed=0, min_batches=11))) == 12


def test_min_batches_leaves_large_epochs_and_streams_alone(examples):
    plain = list(bucketed_batch(examples, size=32, chunk_size=320, seed=0))
    assert list(bucketed_batch(examples, size=32, chunk_size=320, seed=0, min_batches=19)) == plain  # 19 batches
    assert len(list(bucketed_batch(examples, size=32, chunk_size=320, seed=0, min_batches=20))) == 38
    streamed = list(bucketed_batch(iter(examples[:40]), size=32, chunk_size=320, seed=0, min_batches=10))
    assert len(streamed) == 2  # a stream is not materialised
    assert list(bucketed_batch([], size=32, chunk_size=320, seed=0, min_batches=10)) == []


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"size": 0, "chunk_size": 10}, "size"),
        ({"size": 4, "chunk_size": 0}, "chunk_size"),
        ({"size": 4, "chunk_size": 10, "min_batches": -1}, "min_batches"),
    ],
)
def test_bad_settings_are_one_line_errors(kw, match):
    with pytest.raises(UserError, match=match):
        configure_bucketed_batch(**kw)
    with pytest.raises(UserError, match="ran out"):
        list(bucketed_batch(["a"] * 10, size=[2, 2], chunk_size=10))


def test_spacy_finds_it_through_its_entry_point():
    """`spacy train` without --code: a fresh process resolves it by name."""
    import subprocess
    import sys

    code = "import spacy; assert callable(spacy.registry.get('batchers', 'spacy_threephase.bucketed_batch.v1'))"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
