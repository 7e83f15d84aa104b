"""The default configs ship inside the package (an installed wheel has no top-level configs/),
and the spaCy project's editable copies in configs/ must not drift from them."""

from pathlib import Path

import pytest

from spacy_threephase.configs import NAMES, default_config_path
from spacy_threephase.errors import UserError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", NAMES)
def test_project_config_is_identical_to_packaged(name):
    project, packaged = REPO / "configs" / f"{name}.cfg", default_config_path(name)
    assert packaged.exists() and packaged.parent == REPO / "spacy_threephase" / "configs"
    assert project.read_bytes() == packaged.read_bytes(), (
        f"configs/{name}.cfg differs from spacy_threephase/configs/{name}.cfg: "
        f"copy it (cp configs/{name}.cfg spacy_threephase/configs/)"
    )


def test_every_project_config_is_packaged():
    project = sorted(p.stem for p in (REPO / "configs").glob("*.cfg"))
    assert project == sorted(NAMES), "a new configs/*.cfg: add it to spacy_threephase/configs (file and NAMES)"


def test_default_config_path_names():
    assert default_config_path("dae.cfg") == default_config_path("dae")
    with pytest.raises(UserError, match="no default config 'nope'"):
        default_config_path("nope")


def test_ablation_defaults_are_the_packaged_configs():
    from spacy_threephase.ablation import AblationSettings

    s = AblationSettings()
    assert s.textcat_config == default_config_path("textcat")
    assert s.dae_config == default_config_path("dae")
