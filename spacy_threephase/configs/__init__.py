"""The default phase configs, shipped inside the package.

The spaCy project's top-level `configs/` holds the editable copies that project.yml and the
README use; an installed wheel has no such directory, so code that needs a default config
(the ablation runner) takes it from here. tests/test_configs_packaged.py keeps the two
copies byte-identical: after editing configs/NAME.cfg, copy it to spacy_threephase/configs/.
"""

from importlib import resources
from pathlib import Path

from ..errors import UserError

NAMES = ("dae", "contrastive", "joint", "textcat")


def default_config_path(name: str) -> Path:
    """The packaged config of a phase: "dae", "contrastive", "joint" or "textcat" (".cfg" optional)."""
    stem = name[:-4] if name.endswith(".cfg") else name
    if stem not in NAMES:
        raise UserError(f"no default config {name!r}; choose one of {', '.join(NAMES)}")
    # An ordinary (unzipped) install, editable or wheel: the resource is a real file.
    return Path(str(resources.files(__name__) / f"{stem}.cfg"))
