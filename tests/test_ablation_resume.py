"""`ablate --resume`: a run killed in phase 2, then in phase 3, continues where it stopped
(finished phases and variants kept, the unfinished phase from its checkpoint), counts the
kept work's time once, and refuses to continue a run made with other settings."""

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
from faults import Interrupted, interrupt_at
from test_ablation import TEXTCAT, TINY, _data

from spacy_threephase import ablation
from spacy_threephase.ablation import AblationSettings, run_ablation
from spacy_threephase.ablation_progress import Progress
from spacy_threephase.checkpoints import POINTER_FILE, checkpoint_dir_for
from spacy_threephase.errors import UserError


def _settings(encoder, **cl):
    return AblationSettings(
        seeds=[0],
        variants=["cl_ft", "ft"],
        encoder=str(encoder),
        cl_overrides={**TINY, "training.checkpoint_every": 1, **cl},
        textcat_overrides=dict(TEXTCAT),
    )


def test_resume_after_kills_in_phase_2_and_phase_3(tmp_path, tiny_encoder_dir, phase_calls):
    data, out = _data(tmp_path), tmp_path / "abl"
    s = _settings(tiny_encoder_dir)
    progress_file = out / "work" / "seed0" / "progress.json"

    # 1. killed after phase 2's second step: the attempt and its checkpoint are on disk
    with interrupt_at(2, "contrastive"), pytest.raises(Interrupted):
        run_ablation(data, out, s, resume=True)
    progress = json.loads(progress_file.read_text())
    assert list(progress["attempts"]) == ["cl_base"] and progress["steps"] == {}
    assert (checkpoint_dir_for(out / "work" / "seed0" / "cl_base") / POINTER_FILE).exists()

    # 2. phase 2 finishes from its checkpoint; killed in CL+FT's phase 3
    phase3 = []

    def killed_phase3(config, output, overrides, gpu_id):
        phase3.append(output.name)
        raise Interrupted()

    with pytest.raises(Interrupted):
        run_ablation(data, out, s, resume=True, train_textcat=killed_phase3)
    progress = json.loads(progress_file.read_text())
    kept = progress["steps"]["cl_base"]
    assert kept > 0 and list(progress["attempts"]) == ["textcat-cl_ft"] and progress["results"] == {}
    assert (out / "work" / "seed0" / "cl_base" / "metrics.json").exists()
    assert [c["phase"] for c in phase_calls] == ["contrastive", "contrastive"]

    # 3. the rest: phase 2 is not run again, both variants train and are evaluated
    def real_phase3(config, output, overrides, gpu_id):
        phase3.append(output.name)
        ablation._train_phase3(config, output, overrides, gpu_id, checkpoint_every=2)

    result = run_ablation(data, out, s, resume=True, train_textcat=real_phase3)
    assert [c["phase"] for c in phase_calls] == ["contrastive", "contrastive"]
    assert phase3 == ["textcat-cl_ft", "textcat-cl_ft", "textcat-ft"]
    runs = {r["variant"]: r for r in result["runs"]}
    assert set(runs) == {"cl_ft", "ft"}
    assert runs["cl_ft"]["phase_seconds"]["cl_base"] == kept
    assert runs["cl_ft"]["wall_seconds"] == pytest.approx(kept + runs["cl_ft"]["phase_seconds"]["ft"])
    assert json.loads(progress_file.read_text())["attempts"] == {}

    # 4. a finished run resumed again trains nothing and reports the same runs
    again = run_ablation(data, out, s, resume=True, train_textcat=real_phase3)
    assert len(phase_calls) == 2 and len(phase3) == 3
    assert again["runs"] == result["runs"]

    # 5. other settings: refused, nothing touched
    with pytest.raises(UserError, match="other overrides"):
        run_ablation(data, out, _settings(tiny_encoder_dir, **{"training.epochs": 2}), resume=True)
    with pytest.raises(UserError, match="give one"):
        run_ablation(data, out, s, resume=True, overwrite=True)
    assert (out / "ablation.json").exists()

    # 6. a comment, or a config that no variant of this run uses (phase 1's), is the same run;
    # a changed setting of a config it uses is not
    commented, dae = tmp_path / "contrastive.cfg", tmp_path / "dae.cfg"
    commented.write_text("# a note\n" + Path(s.contrastive_config).read_text())
    dae.write_text(Path(s.dae_config).read_text().replace("epochs = 3", "epochs = 4"))
    same = replace(s, contrastive_config=commented, dae_config=dae)
    assert run_ablation(data, out, same, resume=True, train_textcat=real_phase3)["runs"] == result["runs"]
    assert len(phase_calls) == 2 and len(phase3) == 3
    changed = tmp_path / "contrastive-changed.cfg"
    changed.write_text(Path(s.contrastive_config).read_text().replace("per_class = 4", "per_class = 3"))
    with pytest.raises(UserError, match="other configs"):
        run_ablation(data, out, replace(s, contrastive_config=changed), resume=True)


def test_resume_refuses_a_folder_that_is_not_an_ablation_run(tmp_path, tiny_encoder_dir):
    out = tmp_path / "abl"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a resumable ablation run"):
        run_ablation(_data(tmp_path), out, _settings(tiny_encoder_dir), resume=True)
    assert (out / "notes.txt").read_text() == "mine"


def test_progress_counts_a_killed_attempt_up_to_its_last_checkpoint(tmp_path):
    output = tmp_path / "cl_base"
    p = Progress(tmp_path, enabled=True)
    assert p.start("cl_base", output) == 0.0
    started = time.time() - 100  # an attempt started 100 s ago ...
    p.data["attempts"]["cl_base"]["started"] = started
    p._save()
    # ... killed; its last checkpoint was saved 30 s after its start
    marker = checkpoint_dir_for(output) / POINTER_FILE
    marker.parent.mkdir(parents=True)
    marker.write_text("{}")
    os.utime(marker, (started + 30, started + 30))
    assert Progress(tmp_path, enabled=True).start("cl_base", output) == pytest.approx(30)
    # killed again before a new checkpoint: nothing more is kept, the 30 s stay
    later = Progress(tmp_path, enabled=True)
    assert later.start("cl_base", output) == pytest.approx(30)
    later.finish_step("cl_base", 30 + 12.5)
    done = Progress(tmp_path, enabled=True)
    assert done.data["attempts"] == {}
    (output / "metrics.json").parent.mkdir()
    (output / "metrics.json").write_text("{}")
    assert done.finished_step("cl_base", output) == 42.5
    # a run that is not resumable reads and writes nothing
    assert Progress(tmp_path / "other", enabled=False).start("x", output) == 0.0
    assert not (tmp_path / "other").exists()


def test_a_run_recorded_with_config_texts_still_resumes(tmp_path, tiny_encoder_dir):
    """Runs recorded before the identity parsed its configs kept their text: same settings resume."""
    s = _settings(tiny_encoder_dir)
    work = tmp_path / "abl" / "work"
    work.mkdir(parents=True)
    record = ablation._run_identity(s, "data", ["cl_ft", "ft"])
    record["configs"] = {k: Path(getattr(s, k)).read_text(encoding="utf8") for k in ablation_config_keys()}
    (work / ablation.RUN_FILE).write_text(json.dumps(record))
    assert ablation._same_run(work, s, "data", ["cl_ft", "ft"]) is True
    record["configs"]["contrastive_config"] = record["configs"]["contrastive_config"].replace(
        "per_class = 4", "per_class = 3"
    )
    (work / ablation.RUN_FILE).write_text(json.dumps(record))
    with pytest.raises(UserError, match="other configs"):
        ablation._same_run(work, s, "data", ["cl_ft", "ft"])


def ablation_config_keys():
    return ("dae_config", "contrastive_config", "joint_config", "textcat_config")
