from pathlib import Path

import pytest
import torch

from spacy_threephase.encoder import adapted_by, load_encoder, pool, resolve_encoder, save_encoder, tokenize
from spacy_threephase.errors import UserError


def test_tokenize_cuts_like_spacy_transformers(tiny_encoder_dir):
    enc = load_encoder(tiny_encoder_dir, max_length=5)
    batch = tokenize(enc.tokenizer, ["play some jazz music in the kitchen", "play"], enc.max_length)
    assert batch["input_ids"].shape[1] == 5
    # no [SEP] re-added at the cut: the last kept piece of the long text is a word piece
    assert batch["input_ids"][0, -1].item() != enc.tokenizer.sep_token_id
    assert batch["attention_mask"][1].tolist() == [1, 1, 1, 0, 0]


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert pool(hidden, mask, "mean").tolist() == [[2.0, 2.0]]
    assert pool(hidden, mask, "cls").tolist() == [[1.0, 1.0]]


def test_save_roundtrip_keeps_pooling_and_length(tiny_encoder_dir, tmp_path):
    enc = load_encoder(tiny_encoder_dir, pooling="cls", max_length=16)
    save_encoder(enc.model, enc.tokenizer, tmp_path / "out", pooling="cls", max_length=16)
    again = load_encoder(tmp_path / "out")
    assert again.pooling == "cls"
    assert again.max_length == 16


def test_missing_encoder_path_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        resolve_encoder(str(tmp_path / "nope"))


def test_default_encoder_resolves_to_local_copy():
    path = resolve_encoder("default")
    assert Path(path, "config.json").exists()


def test_adapted_by_reads_what_phases_recorded(tmp_path):
    import json

    def meta(name, content):
        path = tmp_path / name
        path.mkdir()
        (path / "threephase.json").write_text(content if isinstance(content, str) else json.dumps(content))
        return path

    assert adapted_by(tmp_path / "nothing-here") == [] and adapted_by(None) == []
    assert adapted_by(meta("new", {"adapted_by": ["dae", "contrastive"]})) == ["dae", "contrastive"]
    # written before the field existed: its own phase counts unless selection kept the input
    assert adapted_by(meta("old-kept", {"phase": "contrastive", "selection": {"kept_input": True}})) == []
    assert adapted_by(meta("old-trained", {"phase": "dae", "selection": {"kept_input": False}})) == ["dae"]
    assert adapted_by(meta("plain", {"pooling": "mean"})) == []
    with pytest.raises(UserError, match="not valid JSON"):
        adapted_by(meta("broken", "{"))
