"""Phase 1 model and training, with tiny locally built encoders (seconds each)."""

import json
from pathlib import Path

import pytest
import torch
from conftest import TINY_TEXTS

from spacy_threephase.dae import DenoisingAutoEncoder, build_decoder, train_dae
from spacy_threephase.encoder import load_encoder, tokenize
from spacy_threephase.errors import UserError
from spacy_threephase.phase import read_log

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "dae.cfg"
FAST = {
    "training.progress": False,
    "training.batch_size": 4,
    "training.epochs": 1,
    "training.min_steps": 0,
    "encoder.max_length": 32,
}


def build_tiny_roberta(path: Path, texts=TINY_TEXTS, hidden: int = 32) -> Path:
    """A 2-layer RoBERTa with a byte-level BPE vocabulary trained on `texts`."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        list(texts), vocab_size=300, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    bpe.save_model(str(path))
    tokenizer = RobertaTokenizerFast(
        vocab_file=str(path / "vocab.json"), merges_file=str(path / "merges.txt"), model_max_length=62
    )
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=bpe.get_vocab_size(),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=64,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    RobertaModel(config).save_pretrained(path)
    return path


def build_tiny_distilbert(path: Path, vocab_from: Path) -> Path:
    """An architecture transformers cannot run as a causal-LM decoder."""
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    DistilBertTokenizerFast(vocab_file=str(vocab_from / "vocab.txt")).save_pretrained(path)
    vocab_size = len((vocab_from / "vocab.txt").read_text(encoding="utf8").splitlines())
    config = DistilBertConfig(
        vocab_size=vocab_size, dim=32, n_layers=1, n_heads=2, hidden_dim=64, max_position_embeddings=64
    )
    DistilBertModel(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_roberta_dir(tmp_path_factory):
    return build_tiny_roberta(tmp_path_factory.mktemp("tiny_roberta"))


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("texts") / "texts.txt"
    path.write_text("\n".join(TINY_TEXTS[:6]) + "\n\n   \n" + "\n".join(TINY_TEXTS[6:]) + "\n", encoding="utf8")
    return path


def make_dae(path, pooling=None):
    enc = load_encoder(path, pooling=pooling, max_length=32)
    decoder = build_decoder(enc.path, enc.model)
    return enc, DenoisingAutoEncoder(enc.model, decoder, enc.pooling)


def batch(enc, texts):
    return tokenize(enc.tokenizer, texts, enc.max_length)


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_decoder_is_tied_except_cross_attention(kind, tiny_encoder_dir, tiny_roberta_dir):
    enc, dae = make_dae(tiny_encoder_dir if kind == "bert" else tiny_roberta_dir)
    base = dae.decoder.base_model
    enc_params = {id(p) for p in dae.encoder.parameters()}
    for name, param in base.named_parameters():
        assert (id(param) in enc_params) == ("crossattention" not in name), name
    assert base.embeddings.word_embeddings.weight is dae.encoder.embeddings.word_embeddings.weight
    assert dae.decoder.get_output_embeddings().weight is dae.encoder.embeddings.word_embeddings.weight


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_fast_loss_equals_full_logits_loss(kind, tiny_encoder_dir, tiny_roberta_dir):
    enc, dae = make_dae(tiny_encoder_dir if kind == "bert" else tiny_roberta_dir)
    dae.eval()
    clean = batch(enc, ["play some jazz music in the kitchen", "wake me up"])
    vec = dae.encode(batch(enc, ["jazz kitchen", "me"]))
    fast = dae.reconstruction_loss(vec, clean)
    ids, mask = clean["input_ids"], clean["attention_mask"]
    logits = dae.decode(vec, ids[:, :-1], mask[:, :-1])
    labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    full = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100
    )
    assert torch.allclose(fast, full, atol=1e-5)
    assert labels[1].tolist().count(-100) > 0  # the short text is padded and the padding ignored


def _with_token_states(dae, change):
    """Run the DAE's encoder with `change(last_hidden_state)` applied to its token states
    (a forward hook: everything after the encoder, pooling included, is the real code)."""

    def hook(module, args, output):
        output.last_hidden_state = change(output.last_hidden_state)
        return output

    return dae.encoder.register_forward_hook(hook)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_decoder_sees_the_text_only_through_the_pooled_vector(pooling, tiny_encoder_dir):
    """TSDAE's bottleneck: the decoder's only view of the noisy text is its pooled sentence
    vector (a cross-attention memory of length 1), never the encoder's token states."""
    torch.manual_seed(0)
    enc, dae = make_dae(tiny_encoder_dir, pooling=pooling)
    dae.eval()  # no dropout; gradients still flow
    # the model's own padded forward, whose token states the hooks below change (the packed
    # encoder gives the same vectors: test_packed_encoder.py)
    assert dae.packed
    dae.packed = False
    with torch.no_grad():  # a fresh cross-attention barely uses the vector: amplify it (as training would)
        for name, param in dae.decoder.named_parameters():
            if "crossattention" in name and "LayerNorm" not in name and name.endswith("weight"):
                param.mul_(10)
    noisy = batch(enc, ["jazz kitchen", "will it rain in london"])  # different lengths: padding
    clean = batch(enc, ["play some jazz music in the kitchen", "will it rain in london this weekend"])
    real = noisy["attention_mask"].bool()
    assert not real.all()  # the first text is padded
    seen = []
    dae.decoder.base_model.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["encoder_hidden_states"].shape), with_kwargs=True
    )
    with torch.no_grad():
        hidden = enc.model(**noisy).last_hidden_state
        loss = dae(noisy, clean)
        # the vector does reach the decoder: another text's vector gives other logits
        a, b = dae.encode(noisy)
        ids, mask = clean["input_ids"][:1, :-1], clean["attention_mask"][:1, :-1]
        assert not torch.allclose(a, b)
        assert (dae.decode(a[None], ids, mask) - dae.decode(b[None], ids, mask)).abs().max() > 1e-3

    # 1. Change every token state but keep the pooled vector: the loss does not move. For mean
    # pooling the change has zero mean over each text's wordpieces (and is arbitrary on the
    # padding); for [CLS] pooling it spares position 0.
    delta = torch.randn(hidden.shape, generator=torch.Generator().manual_seed(0))
    if pooling == "mean":
        m = real.unsqueeze(-1).float()
        same_vector = delta - (delta * m).sum(1, keepdim=True) / m.sum(1, keepdim=True)
    else:
        same_vector = delta.clone()
        same_vector[:, 0] = 0
    assert (same_vector[real].abs() > 0.1).float().mean() > 0.5  # a large change of the token states
    with torch.no_grad():
        handle = _with_token_states(dae, lambda h: h + same_vector)
        moved_tokens = dae(noisy, clean)
        handle.remove()
        # control: the same kind of change that does move the pooled vector moves the loss,
        # so the hook reaches the decoder and the equality above is not vacuous
        handle = _with_token_states(dae, lambda h: h + 10 * delta)  # large: a clear control
        moved_vector = dae(noisy, clean)
        handle.remove()
    assert abs(float(moved_tokens) - float(loss)) < 1e-6, (float(moved_tokens), float(loss))
    # (a hundred times the tolerance above: how much depends on the fresh cross-attention weights)
    assert abs(float(moved_vector) - float(loss)) > 1e-4, (float(moved_vector), float(loss))

    # 2. The gradient of the loss with respect to the token states is the pooling's own
    # gradient: the same for every wordpiece of a text and zero on its padding (mean), or zero
    # everywhere but [CLS] (cls). A decoder that attended to the token states would give each
    # position its own gradient.
    states = []

    def as_leaf(h):
        states.append(h.detach().requires_grad_(True))
        return states[-1]

    handle = _with_token_states(dae, as_leaf)
    dae(noisy, clean).backward()
    handle.remove()
    grad = states[0].grad
    assert grad.abs().sum() > 0
    for i in range(grad.shape[0]):
        if pooling == "mean":
            used, unused = grad[i][real[i]], grad[i][~real[i]]
        else:
            used, unused = grad[i][:1], grad[i][1:]
        assert torch.allclose(used, used[:1].expand_as(used), atol=1e-7, rtol=1e-4)
        assert used.abs().sum() > 0 and unused.abs().sum() == 0
    # the decoder's cross-attention memory is one vector per text
    assert seen and all(shape[1:] == (1, enc.model.config.hidden_size) for shape in seen)


def test_loss_decreases_on_repeated_data(tiny_encoder_dir, texts_file, tmp_path):
    overrides = {
        **FAST,
        # 10 epochs: the loss ends at 0.70 of the first epoch's on tiny encoders of seeds 0-2 (6 ended at 0.81)
        "training.epochs": 10,
        "training.learning_rate": 5e-3,
        "training.warmup_ratio": 0.0,
        "noise.deletion_ratio": 0.3,
        # the tiny encoder's word embeddings are random: with them fixed, so is its tied LM head
        "training.train_word_embeddings": True,
    }
    out = train_dae(CONFIG, texts_file, tmp_path / "out", encoder=str(tiny_encoder_dir), overrides=overrides)
    losses = [r["loss"] for r in read_log(out)]
    assert len(losses) == 10
    assert losses[-1] < losses[0] * 0.8


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_output_loads_with_transformers_and_spacy_and_differs(
    kind, tiny_encoder_dir, tiny_roberta_dir, texts_file, tmp_path
):
    import spacy
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    source = tiny_encoder_dir if kind == "bert" else tiny_roberta_dir
    overrides = {**FAST, "training.epochs": 2, "training.learning_rate": 1e-3}
    out = train_dae(CONFIG, texts_file, tmp_path / "out", encoder=str(source), overrides=overrides)
    model = AutoModel.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == ("BertModel" if kind == "bert" else "RobertaModel")
    assert not model.config.is_decoder and not getattr(model.config, "add_cross_attention", False)
    assert tok.model_max_length == 32
    before, after = load_file(str(source / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert set(before) == set(after)  # an encoder: no decoder / cross-attention weights saved
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("encoder.layer.0.attention" in k for k in changed)
    meta = json.loads((out / "threephase.json").read_text())
    assert meta["pooling"] == "mean" and meta["phase"] == "dae" and meta["dae"]["texts"] == len(TINY_TEXTS)
    assert (out / "training_log.jsonl").exists()
    assert str(source) in (out / "config.cfg").read_text()  # the config as run, --encoder included

    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "model": {
                "@architectures": "spacy-transformers.TransformerModel.v3",
                "name": str(out),
                "get_spans": {"@span_getters": "spacy-transformers.doc_spans.v1"},
                "tokenizer_config": {"use_fast": True},
            }
        },
    )
    nlp.initialize()
    doc = nlp("play some jazz music in the kitchen")
    assert doc._.trf_data.tensors[0].shape[-1] == 32


@pytest.mark.parametrize("train_embeddings", [True, False])
def test_word_embeddings_train_or_stay_fixed(train_embeddings, tiny_encoder_dir, texts_file, tmp_path):
    """train_word_embeddings = false: the word-embedding matrix (shared with the tied LM head) is
    written back bit for bit, the transformer layers still change; true: it changes too."""
    from safetensors.torch import load_file

    overrides = {
        **FAST,
        "training.epochs": 2,
        "training.learning_rate": 1e-3,
        "training.train_word_embeddings": train_embeddings,
    }
    out = train_dae(CONFIG, texts_file, tmp_path / "out", encoder=str(tiny_encoder_dir), overrides=overrides)
    before = load_file(str(tiny_encoder_dir / "model.safetensors"))
    after = load_file(str(out / "model.safetensors"))
    key = next(k for k in before if k.endswith("word_embeddings.weight"))
    assert torch.equal(before[key], after[key]) is not train_embeddings
    layer = next(k for k in before if "encoder.layer.0.attention.self.query.weight" in k)
    assert not torch.equal(before[layer], after[layer])


def test_cls_pooling_is_kept(tiny_encoder_dir, texts_file, tmp_path):
    out = train_dae(
        CONFIG,
        texts_file,
        tmp_path / "out",
        encoder=str(tiny_encoder_dir),
        overrides={**FAST, "encoder.pooling": "cls"},
    )
    assert json.loads((out / "threephase.json").read_text())["pooling"] == "cls"


def test_unsupported_architecture_is_a_clear_error(tiny_encoder_dir, texts_file, tmp_path):
    distil = build_tiny_distilbert(tmp_path / "distil", tiny_encoder_dir)
    with pytest.raises(UserError, match="'distilbert' encoder cannot be used for phase 1") as err:
        train_dae(CONFIG, texts_file, tmp_path / "out", encoder=str(distil), overrides=FAST)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_causal_lm_without_cross_attention_is_refused(tiny_encoder_dir, monkeypatch):
    import transformers

    enc = load_encoder(tiny_encoder_dir)
    real = transformers.AutoModelForCausalLM.from_pretrained

    def no_cross_attention(source, config, **kwargs):
        config.add_cross_attention = False
        return real(source, config=config, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_cross_attention)
    with pytest.raises(UserError, match="cannot be used for phase 1"):
        build_decoder(enc.path, enc.model)


def test_same_seed_same_result(tiny_encoder_dir, texts_file, tmp_path):
    a = train_dae(CONFIG, texts_file, tmp_path / "a", encoder=str(tiny_encoder_dir), overrides=FAST)
    b = train_dae(CONFIG, texts_file, tmp_path / "b", encoder=str(tiny_encoder_dir), overrides=FAST)
    assert [r["loss"] for r in read_log(a)] == [r["loss"] for r in read_log(b)]


def test_torch_threads_setting(tiny_encoder_dir, texts_file, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    train_dae(
        CONFIG,
        texts_file,
        tmp_path / "out",
        encoder=str(tiny_encoder_dir),
        overrides={**FAST, "training.torch_threads": 1},
    )
    assert calls == [1]
    with pytest.raises(UserError, match="torch_threads must be"):
        train_dae(
            CONFIG,
            texts_file,
            tmp_path / "out2",
            encoder=str(tiny_encoder_dir),
            overrides={**FAST, "training.torch_threads": -2},
        )
