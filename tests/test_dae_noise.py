import random

import pytest
import spacy

from spacy_threephase.dae.noise import word_deletion

LONG = " ".join(f"w{i}" for i in range(20))


def test_registered_under_its_name():
    assert spacy.registry.misc.get("spacy_threephase.word_deletion.v1") is word_deletion


def test_ratio_is_respected_on_average():
    noise, rng = word_deletion(0.6), random.Random(0)
    kept = [len(noise(LONG, rng).split()) for _ in range(3000)]
    deleted_fraction = 1 - sum(kept) / (20 * len(kept))
    assert abs(deleted_fraction - 0.6) < 0.02


@pytest.mark.parametrize("ratio", [0.6, 0.9, 1.0])
def test_at_least_one_word_is_kept(ratio):
    noise, rng = word_deletion(ratio), random.Random(1)
    for text in ["one", "two words", "a few more words here"]:
        for _ in range(200):
            out = noise(text, rng).split()
            assert 1 <= len(out) <= len(text.split())
            assert set(out) <= set(text.split())


def test_kept_words_stay_in_order():
    noise, rng = word_deletion(0.5), random.Random(2)
    words = LONG.split()
    for _ in range(50):
        out = noise(LONG, rng).split()
        positions = [words.index(w) for w in out]
        assert positions == sorted(positions)


def test_new_corruption_each_call_and_reproducible_with_seed():
    noise = word_deletion(0.6)
    rng = random.Random(7)
    outputs = [noise(LONG, rng) for _ in range(10)]
    assert len(set(outputs)) > 5
    again = random.Random(7)
    assert [noise(LONG, again) for _ in range(10)] == outputs


def test_zero_ratio_leaves_text_unchanged():
    noise, rng = word_deletion(0.0), random.Random(0)
    text = "keep  every\tword, exactly as it was!"
    assert all(noise(text, rng) == text for _ in range(20))


def test_empty_text_is_returned_as_is():
    assert word_deletion(0.6)("   ", random.Random(0)) == "   "


def test_treebank_splitter_separates_punctuation():
    noise, rng = word_deletion(0.6, splitter="treebank"), random.Random(0)
    outs = {noise("what's the weather in paris, tomorrow?", rng) for _ in range(200)}
    assert any(o in ("?", "'s", ",") for o in outs)  # punctuation can be the only word kept


@pytest.mark.parametrize(
    "kwargs", [{"deletion_ratio": 1.5}, {"deletion_ratio": -0.1}, {"deletion_ratio": "a lot"}, {"splitter": "nltk"}]
)
def test_bad_settings_are_rejected(kwargs):
    with pytest.raises(ValueError):
        word_deletion(**kwargs)
