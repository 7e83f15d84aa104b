"""The paper's ablations (table 2) in one run: 3-Phase, Joint, DAE+FT, CL+FT, Extra Imb.,
No Imb. and FT, with the same data split, encoder, budgets and seeds.

Every variant ends in the same phase 3 (`spacy train` with configs/textcat.cfg) and the same
test evaluation (`evaluate_pipeline`); they differ only in the encoder phase 3 starts from:

| variant     | phase 1 (DAE) | phase 2 (contrastive)                    | encoder for phase 3 |
|-------------|---------------|------------------------------------------|---------------------|
| 3-Phase     | yes           | from the DAE encoder                     | CL(DAE)             |
| Joint       | -             | L_DAE + L_CL in one run (`train_joint`)  | Joint               |
| DAE+FT      | yes           | -                                        | DAE                 |
| CL+FT       | -             | from the base encoder                    | CL(base)            |
| Extra Imb.  | yes           | from DAE, imbalance min 1.5 / max 20     | CL'(DAE)            |
| No Imb.     | yes           | from DAE, imbalance off                  | CL''(DAE)           |
| FT          | -             | -                                        | the base encoder    |

Phase outputs are computed once per seed and shared: the DAE encoder of a seed serves
3-Phase, DAE+FT, Extra Imb. and No Imb.; FT needs no phase 1/2. A variant's wall time is the
sum of the phases it uses (a shared phase counts in full for each variant that uses it,
i.e. what the variant would cost on its own), plus its phase 3.
"""

import json
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from .configs import default_config_path
from .errors import UserError

# slug -> (display name, encoder recipe)
VARIANTS: Dict[str, str] = {
    "threephase": "3-Phase",
    "joint": "Joint",
    "dae_ft": "DAE+FT",
    "cl_ft": "CL+FT",
    "extra_imb": "Extra Imb.",
    "no_imb": "No Imb.",
    "ft": "FT",
}
# the encoder-producing steps each variant needs (in order)
RECIPES: Dict[str, List[str]] = {
    "threephase": ["dae", "cl_dae"],
    "joint": ["joint"],
    "dae_ft": ["dae"],
    "cl_ft": ["cl_base"],
    "extra_imb": ["dae", "cl_dae_extra"],
    "no_imb": ["dae", "cl_dae_noimb"],
    "ft": [],
}
IMBALANCE = {
    "cl_dae": {},
    "cl_base": {},
    "cl_dae_extra": {"imbalance.min_ratio": 1.5, "imbalance.max_ratio": 20.0},
    "cl_dae_noimb": {"imbalance.enabled": False},
}
METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1")


def parse_variants(names: Optional[Sequence[str]]) -> List[str]:
    """Slugs or display names (case-insensitive, comma lists allowed); None = all."""
    if not names:
        return list(VARIANTS)
    lookup = {}
    for slug, display in VARIANTS.items():
        for key in (
            slug,
            display,
            display.rstrip("."),
            display.replace(" ", "_"),
            slug.replace("_", "+"),
            slug.replace("_", "-"),
        ):
            lookup[key.lower()] = slug
    out: List[str] = []
    for item in names:
        for name in str(item).split(","):
            name = name.strip()
            if not name:
                continue
            slug = lookup.get(name.lower())
            if slug is None:
                raise UserError(
                    f"unknown variant {name!r}; choose from {', '.join(VARIANTS)} (or {', '.join(VARIANTS.values())})"
                )
            if slug not in out:
                out.append(slug)
    return out


@dataclass
class AblationSettings:
    seeds: List[int] = field(default_factory=lambda: [0, 1, 2])
    variants: List[str] = field(default_factory=lambda: list(VARIANTS))
    encoder: str = "default"
    dae_config: Path = field(default_factory=lambda: default_config_path("dae"))
    contrastive_config: Path = field(default_factory=lambda: default_config_path("contrastive"))
    joint_config: Path = field(default_factory=lambda: default_config_path("joint"))
    textcat_config: Path = field(default_factory=lambda: default_config_path("textcat"))
    # extra config overrides per phase ({"training.batch_size": 8, ...})
    dae_overrides: Dict[str, Any] = field(default_factory=dict)
    cl_overrides: Dict[str, Any] = field(default_factory=dict)
    joint_overrides: Dict[str, Any] = field(default_factory=dict)
    textcat_overrides: Dict[str, Any] = field(default_factory=dict)
    gpu_id: int = -1
    keep_models: bool = False
    # phase 2 and Joint: "config" = as the configs say (class-aware in-batch pairs by default);
    # "paper" = the paper's shuffled-copies pairs and pair loss (contrastive/paper.py)
    cl_sampler: str = "config"


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


CORPUS_FILES = ("train.spacy", "dev.spacy", "test.spacy", "train.jsonl")
RUN_FILE = "ablation-run.json"  # what a resumed run must share with the one it continues


def prepare_corpus(
    source: Union[str, Path], work_dir: Path, *, seed: int = 0, reuse: bool = False, **convert_kwargs
) -> Path:
    """A corpus directory (as the `data` step writes): used as is, or converted from `source`
    (reuse: keep work_dir/corpus when an earlier run of the same ablation wrote it)."""
    src = Path(str(source))
    if src.is_dir() and all((src / name).exists() for name in CORPUS_FILES):
        return src
    from .data.convert import convert_dataset

    corpus = work_dir / "corpus"
    if reuse and all((corpus / name).exists() for name in CORPUS_FILES):
        return corpus
    convert_dataset(str(source), corpus, seed=seed, overwrite=True, **convert_kwargs)
    return corpus


def mean_std(values: Sequence[float]) -> Dict[str, float]:
    values = [float(v) for v in values]
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def run_ablation(
    source: Union[str, Path],
    output_dir: Union[str, Path],
    settings: Optional[AblationSettings] = None,
    *,
    overwrite: bool = False,
    convert_kwargs: Optional[Dict[str, Any]] = None,
    train_textcat: Optional[Callable[..., None]] = None,
    resume: bool = False,
) -> Dict[str, Any]:
    """Train and evaluate every variant for every seed; write ablation.{json,md} to output_dir.

    resume: continue an interrupted run in output_dir made with the same settings: finished
    phases and variants are kept (ablation_progress.py), an unfinished phase continues from its
    last checkpoint. `train_textcat(config_path, output, overrides, gpu_id)` replaces spaCy's
    train (tests).
    """
    s = settings or AblationSettings()
    variants = parse_variants(s.variants)
    if not s.seeds:
        raise UserError("ablation: give at least one seed")
    if resume and overwrite:
        raise UserError("ablation: --resume continues OUTPUT_DIR, --overwrite replaces it; give one")
    output_dir = Path(output_dir)
    work = output_dir / "work"
    resuming = resume and _same_run(work, s, source, variants)
    if not resuming:
        _fresh_output(output_dir, overwrite)
        work.mkdir(parents=True)
        (work / RUN_FILE).write_text(json.dumps(_run_identity(s, source, variants), indent=1), encoding="utf8")
    corpus = prepare_corpus(source, work, reuse=resuming, **(convert_kwargs or {}))
    _say(
        f"[ablation] corpus {corpus}; variants {', '.join(VARIANTS[v] for v in variants)}; "
        f"seeds {s.seeds}; encoder {s.encoder}"
    )
    runs: List[Dict[str, Any]] = []
    started = time.time()
    for seed in s.seeds:
        runs.extend(_run_seed(seed, variants, s, corpus, work / f"seed{seed}", train_textcat, resume))
        _write(output_dir, variants, s, runs, corpus, source, time.time() - started)
    return json.loads((output_dir / "ablation.json").read_text(encoding="utf8"))


def _run_identity(s: AblationSettings, source, variants: List[str]) -> Dict[str, Any]:
    """What makes two runs the same ablation: data, variants, seeds, encoder, the settings of
    the configs its variants use (parsed: a comment does not count) and overrides. Not the
    device or --keep-models."""
    steps = {step for v in variants for step in RECIPES[v]}
    used = {
        "dae_config": "dae" in steps,
        "contrastive_config": any(step.startswith("cl_") for step in steps),
        "joint_config": "joint" in steps,
        "textcat_config": True,
    }
    configs = {k: _settings_of(Path(getattr(s, k)).read_text(encoding="utf8")) for k, needed in used.items() if needed}
    overrides = {k: getattr(s, k) for k in ("dae_overrides", "cl_overrides", "joint_overrides", "textcat_overrides")}
    identity = {"source": str(Path(str(source)).resolve()), "variants": variants, "seeds": list(s.seeds)}
    identity.update(encoder=s.encoder, cl_sampler=s.cl_sampler, configs=configs, overrides=overrides)
    return json.loads(json.dumps(identity, default=str))


def _settings_of(config_text: str) -> Dict[str, Any]:
    """A config's settings as plain JSON data (comments and layout do not count)."""
    from thinc.api import Config

    return json.loads(json.dumps(Config().from_str(config_text, interpolate=False), default=str))


def _parsed_configs(recorded: Dict[str, Any], now: Dict[str, Any]) -> Dict[str, Any]:
    """A recorded run's configs as _run_identity has them now: parsed (records written before
    the identity parsed its configs hold their text) and only those the run's variants use."""
    return {k: _settings_of(v) if isinstance(v, str) else v for k, v in ((k, recorded.get(k)) for k in now)}


def _same_run(work: Path, s: AblationSettings, source, variants: List[str]) -> bool:
    """True when work/ holds a run of this same ablation to continue; False when there is none;
    a UserError when it holds a different one."""
    path = work / RUN_FILE
    if not work.parent.exists():
        return False
    if not path.exists():
        raise UserError(f"{work.parent}: not a resumable ablation run (no {RUN_FILE}); use --overwrite to replace it")
    before = json.loads(path.read_text(encoding="utf8"))
    now = _run_identity(s, source, variants)
    before["configs"] = _parsed_configs(before.get("configs", {}), now.get("configs", {}))
    changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    if changed:
        raise UserError(
            f"{work.parent}: holds an ablation run with other {', '.join(changed)}; "
            "--resume needs the same settings (or use --overwrite to start again)"
        )
    _say(f"[ablation] resuming the run in {work.parent}")
    return True


def _fresh_output(output_dir: Path, overwrite: bool) -> None:
    from .outputs import check_output_dir

    check_output_dir(output_dir, overwrite)
    if output_dir.exists() and overwrite:
        shutil.rmtree(output_dir)


def _sampler_configs(s: AblationSettings, work: Path):
    """The phase-2 and Joint configs to run: as given, or with the paper's pair sampler."""
    if s.cl_sampler == "config":
        return s.contrastive_config, s.joint_config
    if s.cl_sampler != "paper":
        raise UserError(f"ablation: cl_sampler must be 'config' or 'paper', got {s.cl_sampler!r}")
    from .config import load_config
    from .contrastive.paper import with_paper_pairs

    paths = []
    for name, source in (("contrastive", s.contrastive_config), ("joint", s.joint_config)):
        path = work / f"{name}-paper-pairs.cfg"
        with_paper_pairs(load_config(source, interpolate=False)).to_disk(path)
        paths.append(path)
    return tuple(paths)


def _run_seed(
    seed: int, variants: List[str], s: AblationSettings, corpus: Path, work: Path, train_textcat, resume: bool
) -> List[Dict[str, Any]]:
    from .ablation_progress import Progress
    from .contrastive.train import train_contrastive
    from .dae.train import train_dae
    from .joint.train import train_joint

    work.mkdir(parents=True, exist_ok=True)
    progress = Progress(work, enabled=resume)
    todo = [v for v in variants if progress.result(v) is None]
    needed = [step for v in todo for step in RECIPES[v]]
    encoders: Dict[str, str] = {"base": s.encoder}
    seconds: Dict[str, float] = {}
    common = {"training.seed": seed, "training.progress": False, "training.gpu_id": s.gpu_id}

    def timed(name: str, fn):
        done = progress.finished_step(name, work / name)
        if done is not None:
            seconds[name] = done
            _say(f"[ablation] seed {seed}: {name} finished before ({done:.1f} s), kept")
            return
        _say(f"[ablation] seed {seed}: {name} ...")
        carried = progress.start(name, work / name)
        t = time.time()
        fn()
        seconds[name] = carried + time.time() - t
        progress.finish_step(name, seconds[name])
        _say(f"[ablation] seed {seed}: {name} done in {seconds[name]:.1f} s")

    cl_config, joint_config = _sampler_configs(s, work)
    if "dae" in needed:
        out = work / "dae"
        dae_overrides = {**common, "training.dev_corpus": str(corpus), **s.dae_overrides}  # selection on dev labels
        timed(
            "dae",
            lambda: train_dae(
                s.dae_config, corpus / "texts.txt", out, encoder=s.encoder, overrides=dae_overrides, overwrite=True
            ),
        )
        encoders["dae"] = str(out)
    for step in ("cl_dae", "cl_dae_extra", "cl_dae_noimb", "cl_base"):
        if step not in needed:
            continue
        out = work / step
        start = encoders["dae"] if step.startswith("cl_dae") else s.encoder
        overrides = {**common, **s.cl_overrides, **IMBALANCE[step]}
        timed(
            step, lambda: train_contrastive(cl_config, corpus, out, encoder=start, overrides=overrides, overwrite=True)
        )
        encoders[step] = str(out)
    if "joint" in needed:
        out = work / "joint"
        timed(
            "joint",
            lambda: train_joint(
                joint_config, corpus, out, encoder=s.encoder, overrides={**common, **s.joint_overrides}, overwrite=True
            ),
        )
        encoders["joint"] = str(out)

    results = []
    for variant in variants:
        if progress.result(variant) is not None:
            results.append(progress.result(variant))
            _say(f"[ablation] seed {seed}: {VARIANTS[variant]} finished before, kept")
            continue
        recipe = RECIPES[variant]
        enc = encoders[recipe[-1]] if recipe else encoders["base"]
        model_dir = work / f"textcat-{variant}"
        overrides = {
            "paths.train": str(corpus / "train.spacy"),
            "paths.dev": str(corpus / "dev.spacy"),
            "paths.encoder": enc,
            "system.seed": seed,
            **s.textcat_overrides,
        }
        _say(f"[ablation] seed {seed}: phase 3 for {VARIANTS[variant]} from {enc} ...")
        carried = progress.start(model_dir.name, model_dir)
        t = time.time()
        if train_textcat is not None:
            train_textcat(s.textcat_config, model_dir, overrides, s.gpu_id)
        else:
            _train_phase3(s.textcat_config, model_dir, overrides, s.gpu_id, checkpoint_every=200 if resume else 0)
        ft_seconds = carried + time.time() - t
        metrics = _evaluate(model_dir / "model-best", corpus / "test.spacy")
        phase_seconds = {step: seconds[step] for step in recipe}
        phase_seconds["ft"] = ft_seconds
        run = {
            "variant": variant,
            "name": VARIANTS[variant],
            "seed": seed,
            **{m: metrics[m] for m in METRICS},
            "wall_seconds": sum(phase_seconds.values()),
            "phase_seconds": phase_seconds,
            "n_test": metrics["n_examples"],
            "confusion_matrix": metrics.get("confusion_matrix"),
        }
        results.append(run)
        progress.finish_variant(variant, model_dir.name, run)
        _say(
            f"[ablation] seed {seed}: {VARIANTS[variant]}: accuracy {run['accuracy']:.4f}, "
            f"macro F1 {run['macro_f1']:.4f}, {run['wall_seconds']:.1f} s"
        )
        if not s.keep_models:
            shutil.rmtree(model_dir, ignore_errors=True)
    if not s.keep_models:
        for step in ("dae", "cl_dae", "cl_dae_extra", "cl_dae_noimb", "cl_base", "joint"):
            shutil.rmtree(work / step, ignore_errors=True)
    return results


def _train_phase3(
    config_path: Path, output: Path, overrides: Dict[str, Any], gpu_id: int, checkpoint_every: int = 0
) -> None:
    """Phase 3 as the project's `train` step runs it; with checkpoint_every, a killed run
    continues from its last checkpoint when run again (`ablate --resume`)."""
    from .finetune import train_pipeline

    train_pipeline(
        config_path, output, overrides=overrides, use_gpu=gpu_id, overwrite=True, checkpoint_every=checkpoint_every
    )


def _evaluate(model_dir: Path, test_path: Path) -> Dict[str, Any]:
    import spacy

    from .evaluation import evaluate_pipeline

    return evaluate_pipeline(spacy.load(model_dir), test_path)


def summarize(runs: List[Dict[str, Any]], variants: List[str]) -> List[Dict[str, Any]]:
    rows = []
    for variant in variants:
        mine = [r for r in runs if r["variant"] == variant]
        if not mine:
            continue
        row = {"variant": variant, "name": VARIANTS[variant], "seeds": [r["seed"] for r in mine]}
        for key in METRICS + ("wall_seconds",):
            row[key] = mean_std([r[key] for r in mine])
        rows.append(row)
    return rows


def format_markdown(rows: List[Dict[str, Any]], meta: Dict[str, Any]) -> str:
    lines = [
        "# Ablations",
        "",
        f"Data: `{meta['source']}` (test examples: {meta['n_test']}); encoder: `{meta['encoder']}`; "
        f"seeds: {meta['seeds']}; total wall time {meta['total_seconds']:.0f} s.",
        "Mean ± sample standard deviation over the seeds (std 0 with one seed); test split; "
        "accuracy and macro P/R/F1 in %. Wall time: the variant's own phases (a phase shared between "
        "variants counts in full for each), phase 3 included.",
        "",
        "| variant | accuracy | macro precision | macro recall | macro F1 | wall time (s) | seeds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        cells = [f"{100 * row[m]['mean']:.2f} ± {100 * row[m]['std']:.2f}" for m in METRICS]
        w = row["wall_seconds"]
        lines.append(
            f"| {row['name']} | " + " | ".join(cells) + f" | {w['mean']:.1f} ± {w['std']:.1f} | {len(row['seeds'])} |"
        )
    if meta.get("budgets"):
        lines += [
            "",
            "Budgets / overrides: "
            + "; ".join(f"{k}: `{json.dumps(v, sort_keys=True)}`" for k, v in meta["budgets"].items() if v),
        ]
    return "\n".join(lines) + "\n"


def _write(output_dir: Path, variants, s: AblationSettings, runs, corpus, source, total_seconds) -> None:
    rows = summarize(runs, variants)
    meta = {
        "source": str(source),
        "corpus": str(corpus),
        "encoder": s.encoder,
        "seeds": sorted({r["seed"] for r in runs}),
        "n_test": runs[0]["n_test"] if runs else 0,
        "total_seconds": total_seconds,
        "budgets": {
            "dae": s.dae_overrides,
            "contrastive": s.cl_overrides,
            "joint": s.joint_overrides,
            "textcat": s.textcat_overrides,
        },
        "configs": {
            k: str(getattr(s, k)) for k in ("dae_config", "contrastive_config", "joint_config", "textcat_config")
        },
        "cl_sampler": s.cl_sampler,
    }
    data = {"meta": meta, "summary": rows, "runs": runs}
    for name, text in (
        ("ablation.json", json.dumps(data, indent=2, default=str)),
        ("ablation.md", format_markdown(rows, meta)),
    ):
        tmp = output_dir / f".{name}.tmp"
        tmp.write_text(text, encoding="utf8")
        tmp.replace(output_dir / name)
