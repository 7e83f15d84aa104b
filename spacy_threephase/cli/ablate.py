"""`spacy-threephase ablate [SOURCE] OUTPUT_DIR`: the paper's ablation table in one command."""

from pathlib import Path
from typing import List, Optional

import typer

from ._app import app, friendly_errors


@app.command("ablate", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@friendly_errors
def ablate_cli(
    ctx: typer.Context,
    output_dir: Path = typer.Argument(..., help="Where to write ablation.md, ablation.json (and work/)"),
    data: str = typer.Option(
        "assets/demo",
        "--data",
        "-d",
        help="Data set (anything the `data` step reads) or a corpus directory written by it",
    ),
    seeds: int = typer.Option(3, "--seeds", help="Number of seeds: 0, 1, ..., N-1"),
    seed_list: Optional[str] = typer.Option(
        None, "--seed-list", help="Explicit comma-separated seeds (instead of --seeds), e.g. 0,5,7"
    ),
    variants: Optional[List[str]] = typer.Option(
        None,
        "--variants",
        "-v",
        help="Subset (repeat or comma-separate): threephase, joint, dae_ft, cl_ft, extra_imb, no_imb, ft",
    ),
    encoder: str = typer.Option("default", "--encoder", "-e", help="Encoder every variant starts from"),
    dae_epochs: Optional[int] = typer.Option(None, "--dae-epochs", help="Phase-1 epochs (default: its config's)"),
    cl_epochs: Optional[int] = typer.Option(None, "--cl-epochs", help="Phase-2 epochs (default: its config's)"),
    joint_epochs: Optional[int] = typer.Option(None, "--joint-epochs", help="Joint epochs (default: its config's)"),
    max_epochs: Optional[int] = typer.Option(None, "--max-epochs", help="Phase-3 max_epochs (default: its config's)"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Phase-3 max_steps"),
    eval_frequency: Optional[int] = typer.Option(None, "--eval-frequency", help="Phase-3 eval_frequency"),
    pooling: Optional[str] = typer.Option(None, "--pooling", help="mean/cls for all phases (default: the configs')"),
    dae_config: Optional[Path] = typer.Option(
        None, "--dae-config", help="Phase 1 config (default: the packaged dae.cfg)"
    ),
    contrastive_config: Optional[Path] = typer.Option(
        None, "--contrastive-config", help="Phase 2 config (default: the packaged contrastive.cfg)"
    ),
    joint_config: Optional[Path] = typer.Option(
        None, "--joint-config", help="Joint config (default: the packaged joint.cfg)"
    ),
    textcat_config: Optional[Path] = typer.Option(
        None, "--textcat-config", help="Phase 3 config (default: the packaged textcat.cfg)"
    ),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="CUDA device, -1 = CPU"),
    cl_sampler: str = typer.Option(
        "config",
        "--cl-sampler",
        help="Phase 2 and Joint: 'config' (the configs' sampler: class-aware in-batch pairs by default) "
        "or 'paper' (the paper's shuffled pairs and pair loss)",
    ),
    keep_models: bool = typer.Option(
        False, "--keep-models", help="Keep the encoders and pipelines under OUTPUT_DIR/work"
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT_DIR if it exists"),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue an interrupted run in OUTPUT_DIR (same settings): finished phases and variants are "
        "kept, an unfinished one continues from its last checkpoint; starts a new run if there is none",
    ),
):
    """Train 3-Phase, Joint, DAE+FT, CL+FT, Extra Imb., No Imb. and FT with the same seeds,
    encoder and budgets; write a mean ± std table (Markdown and JSON).

    Extra `--dae.KEY`, `--cl.KEY`, `--joint.KEY`, `--textcat.KEY` options override a phase's
    config, e.g. `--dae.training.batch_size 8 --textcat.training.patience 100`.
    """
    from ..ablation import AblationSettings, parse_variants, run_ablation
    from ..errors import UserError

    try:
        chosen = [int(x) for x in seed_list.split(",") if x.strip()] if seed_list else list(range(seeds))
    except ValueError:
        raise UserError(f"--seed-list: give comma-separated integers, got {seed_list!r}") from None
    if not chosen:
        raise UserError("give at least one seed (--seeds N with N >= 1, or --seed-list)")
    s = AblationSettings(
        seeds=chosen,
        variants=parse_variants(variants),
        encoder=encoder,
        gpu_id=gpu_id,
        keep_models=keep_models,
        cl_sampler=cl_sampler,
    )
    for attr, value in (
        ("dae_config", dae_config),
        ("contrastive_config", contrastive_config),
        ("joint_config", joint_config),
        ("textcat_config", textcat_config),
    ):
        if value is not None:
            setattr(s, attr, value)
    for target, value in (
        (s.dae_overrides, dae_epochs),
        (s.cl_overrides, cl_epochs),
        (s.joint_overrides, joint_epochs),
    ):
        if value is not None:
            target["training.epochs"] = value
    for key, value in (
        ("training.max_epochs", max_epochs),
        ("training.max_steps", max_steps),
        ("training.eval_frequency", eval_frequency),
    ):
        if value is not None:
            s.textcat_overrides[key] = value
    if pooling:
        for target in (s.dae_overrides, s.cl_overrides, s.joint_overrides):
            target["encoder.pooling"] = pooling
        s.textcat_overrides["components.textcat.model.pooling"] = pooling
    prefixes = {
        "dae": s.dae_overrides,
        "cl": s.cl_overrides,
        "joint": s.joint_overrides,
        "textcat": s.textcat_overrides,
    }
    args = list(ctx.args)
    while args:
        key = args.pop(0)
        name = key[2:] if key.startswith("--") else ""
        prefix, _, rest = name.partition(".")
        if prefix not in prefixes or "." not in rest or not args:
            raise UserError(
                f"unknown option {key!r}; phase overrides look like --dae.training.batch_size 8 "
                f"(prefixes: {', '.join(prefixes)})"
            )
        raw = args.pop(0)
        try:
            import srsly

            value = srsly.json_loads(raw)
        except ValueError:
            value = raw
        prefixes[prefix][rest] = value
    result = run_ablation(data, output_dir, s, overwrite=overwrite, resume=resume)
    typer.echo((output_dir / "ablation.md").read_text(encoding="utf8"))
    typer.echo(f"✔ Wrote {output_dir / 'ablation.md'} and {output_dir / 'ablation.json'} ({len(result['runs'])} runs)")
