"""The paper's phase-2 sampling (shuffled-copies pairs, eq. 3 per pair), as a config edit.

The shipped default takes the same per-pair loss over every pair of class-aware batches; this
puts the paper's sampler and loss back into a phase-2 or Joint config, for `ablate --cl-sampler
paper` and the benchmarks, so the paper's setting stays reproducible.
"""

PAPER_PAIRS = {"@misc": "spacy_threephase.shuffled_pairs.v1", "multiplier": None, "balance": True}
PAPER_LOSS = {"@misc": "spacy_threephase.cosine_mse_loss.v1"}


def with_paper_pairs(config):
    """`config` (a loaded confection Config) with [pairs] and [loss] set to the paper's."""
    config["pairs"] = dict(PAPER_PAIRS)
    config["loss"] = dict(PAPER_LOSS)
    return config
