"""Plots (optional extra `plots`: matplotlib, plus scikit-learn for t-SNE).

- `projection_figure`: a 2-D projection (PCA, or t-SNE) of the dev-set sentence vectors after
  each phase (base encoder, DAE, CL, FT), one panel per phase, coloured by class. For the
  trained pipeline (FT) the vector is the pooled transformer output the textcat head sees
  (`spacy_threephase.layers.sentence_pooling` over `doc._.trf_data`).
- `confusion_figure`: the confusion matrix of a metrics.json (counts, colour = row share).
"""

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy

from .errors import UserError

INSTALL_HINT = "pip install 'spacy-threephase[plots]' (or: pip install matplotlib scikit-learn)"


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def require_matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise UserError(
            f"plotting needs matplotlib, which is not installed; install the plots extra: {INSTALL_HINT}"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    tmp.replace(path)
    return path


def confusion_figure(metrics: Dict, path: Union[str, Path], title: Optional[str] = None) -> Path:
    """Write a confusion-matrix PNG (rows gold, columns predicted) from metrics.json content."""
    plt = require_matplotlib()
    if "confusion_matrix" not in metrics:
        raise UserError("metrics have no confusion matrix (multi-label metrics have none)")
    labels = list(metrics["labels"])
    cm = numpy.asarray(metrics["confusion_matrix"], dtype=float)
    share = cm / numpy.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(labels)
    size = max(4.0, 0.6 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    f"{int(cm[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if share[i, j] > 0.6 else "black",
                )
    acc, f1 = metrics.get("accuracy"), metrics.get("macro_f1")
    default = "confusion matrix" + (
        f" (accuracy {100 * acc:.1f}%, macro F1 {100 * f1:.1f}%)" if acc is not None and f1 is not None else ""
    )
    ax.set_title(title or default, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the gold class")
    out = _save(fig, path)
    plt.close(fig)
    return out


def project_2d(vectors: numpy.ndarray, method: str = "pca", seed: int = 0) -> numpy.ndarray:
    vectors = numpy.asarray(vectors, dtype=numpy.float64)
    if method == "pca":
        centred = vectors - vectors.mean(axis=0, keepdims=True)
        _, _, vt = numpy.linalg.svd(centred, full_matrices=False)
        out = centred @ vt[:2].T
        return out if out.shape[1] == 2 else numpy.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    if method == "tsne":
        try:
            from sklearn.manifold import TSNE
        except ImportError:
            raise UserError(f"t-SNE needs scikit-learn, which is not installed; {INSTALL_HINT}") from None
        perplexity = float(max(2, min(30, (len(vectors) - 1) // 3)))
        return TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(vectors)
    raise UserError(f"unknown projection {method!r}; choose pca or tsne")


def encoder_vectors(encoder: str, texts: List[str], batch_size: int = 64) -> numpy.ndarray:
    """L2-normalised pooled vectors of an encoder directory (phases 1-2's function of the text)."""
    import torch

    from .contrastive.embedding import encode
    from .encoder import load_encoder

    enc = load_encoder(encoder)
    enc.model.eval()
    return encode(enc, texts, torch.device("cpu"), batch_size).numpy()


def pipeline_vectors(model: Union[str, Path], texts: List[str], batch_size: int = 32) -> numpy.ndarray:
    """The trained pipeline's pooled transformer output (what its textcat head sees), normalised."""
    import spacy

    from .layers.sentence_pooling import sentence_pooling

    try:
        nlp = spacy.load(model)
    except OSError as err:
        raise UserError(f"{model}: cannot load pipeline ({str(err).splitlines()[0]})") from None
    pooling = "mean"
    for name in ("textcat", "textcat_multilabel"):
        if name in nlp.pipe_names:  # the pooling the head was trained with (resolved at training)
            pooling = nlp.get_pipe(name).model.attrs.get("pooling") or "mean"
    pool = sentence_pooling(pooling)
    trf_names = [name for name, pipe in nlp.pipeline if pipe.__class__.__name__ == "Transformer"]
    if not trf_names:
        raise UserError(f"{model}: pipeline has no transformer component")
    disable = [name for name in nlp.pipe_names if name not in trf_names]
    datas = [doc._.trf_data for doc in nlp.pipe(texts, batch_size=batch_size, disable=disable)]
    vecs = pool.ops.to_numpy(pool.predict(datas))
    return vecs / numpy.maximum(numpy.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)


def projection_figure(
    panels: Sequence[Tuple[str, numpy.ndarray]],
    labels: Sequence[str],
    path: Union[str, Path],
    *,
    method: str = "pca",
    seed: int = 0,
    title: Optional[str] = None,
) -> Path:
    """One scatter panel per (phase name, vectors), points coloured by class."""
    plt = require_matplotlib()
    classes = sorted(set(labels))
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    colours = {c: cmap(i % cmap.N) for i, c in enumerate(classes)}
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.4), squeeze=False)
    for ax, (name, vecs) in zip(axes[0], panels):
        xy = project_2d(vecs, method, seed)
        for c in classes:
            idx = [i for i, lab in enumerate(labels) if lab == c]
            ax.scatter(xy[idx, 0], xy[idx, 1], s=14, alpha=0.8, color=colours[c], label=c, edgecolors="none")
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles,
        names,
        loc="lower center",
        ncol=min(len(classes), 6),
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, -0.02 - 0.04 * ((len(classes) - 1) // 6)),
    )
    fig.suptitle(
        title or f"dev-set sentence vectors after each phase ({method.upper()}, {len(labels)} texts)", fontsize=11
    )
    fig.tight_layout(rect=(0, 0.06 + 0.04 * ((len(classes) - 1) // 6), 1, 1))
    out = _save(fig, path)
    plt.close(fig)
    return out


def read_dev(corpus_dir: Union[str, Path], limit: int = 0, seed: int = 0) -> Tuple[List[str], List[str]]:
    """Dev texts and one label string each (several labels joined by '+')."""
    from .contrastive.corpus import read_jsonl

    path = Path(corpus_dir) / "dev.jsonl"
    if not path.exists():
        raise UserError(f"{path}: dev split not found (run the data step first)")
    split = read_jsonl(path)
    texts, labels = list(split.texts), ["+".join(sorted(x)) for x in split.labels]
    if limit and len(texts) > limit:
        rng = numpy.random.default_rng(seed)
        keep = sorted(rng.choice(len(texts), size=limit, replace=False).tolist())
        texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    return texts, labels


def plot_run(
    output_dir: Union[str, Path],
    corpus_dir: Union[str, Path],
    stages: Sequence[Tuple[str, str, str]],
    *,
    metrics_path: Optional[Union[str, Path]] = None,
    method: str = "pca",
    limit: int = 0,
    seed: int = 0,
) -> Dict[str, Path]:
    """stages: (panel name, kind 'encoder' or 'pipeline', path). Missing paths are skipped."""
    require_matplotlib()
    texts, labels = read_dev(corpus_dir, limit, seed)
    panels, skipped = [], []
    for name, kind, where in stages:
        if (
            kind == "encoder"
            and where != "default"
            and not Path(where).exists()
            or kind == "pipeline"
            and not Path(where).exists()
        ):
            skipped.append(f"{name} ({where})")
            continue
        vecs = encoder_vectors(where, texts) if kind == "encoder" else pipeline_vectors(where, texts)
        panels.append((name, vecs))
    if not panels and not metrics_path:
        raise UserError("nothing to plot: none of the phase outputs exists (" + ", ".join(skipped) + ")")
    written: Dict[str, Path] = {}
    if panels:
        written["projection"] = projection_figure(
            panels, labels, Path(output_dir) / f"projection_{method}.png", method=method, seed=seed
        )
    if metrics_path:
        mpath = Path(metrics_path)
        if mpath.exists():
            written["confusion"] = confusion_figure(
                json.loads(mpath.read_text(encoding="utf8")), Path(output_dir) / "confusion_matrix.png"
            )
        else:
            skipped.append(f"confusion matrix ({mpath})")
    written["skipped"] = skipped  # type: ignore[assignment]
    return written
