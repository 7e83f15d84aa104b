"""Every registered function is reachable through an entry point (no --code needed)."""

import re
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import spacy_threephase

PACKAGE_DIR = Path(spacy_threephase.__file__).parent
REGISTRATION = re.compile(r'registry\.(\w+)\(\s*"([^"]+)"\s*\)')
GROUPS = {
    "architectures": "spacy_architectures",
    "misc": "spacy_misc",
    "readers": "spacy_readers",
    "optimizers": "thinc_optimizers",
    "schedules": "thinc_schedules",
    "batchers": "spacy_batchers",
    "scorers": "spacy_scorers",
    "callbacks": "spacy_callbacks",
}


def registrations():
    found = set()
    for path in PACKAGE_DIR.rglob("*.py"):
        for registry_name, name in REGISTRATION.findall(path.read_text(encoding="utf8")):
            if registry_name in GROUPS:
                found.add((GROUPS[registry_name], name))
    return found


def test_every_registered_function_has_an_entry_point():
    found = registrations()
    assert len(found) >= 10
    declared = {(ep.group, ep.name) for ep in distribution("spacy-threephase").entry_points}
    assert found - declared == set()


def test_entry_points_load_in_a_fresh_process():
    code = (
        "import spacy\n"
        "for reg, name in [('architectures', 'spacy_threephase.TextCatMLP.v1'),"
        " ('misc', 'spacy_threephase.word_deletion.v1'), ('optimizers', 'spacy_threephase.AdamW.v1'),"
        " ('readers', 'spacy_threephase.JsonlCorpus.v1')]:\n"
        "    assert callable(spacy.registry.get(reg, name))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_commands_are_mounted_in_spacy_cli():
    out = subprocess.run(
        [sys.executable, "-m", "spacy", "threephase", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    for command in ("data", "dae", "contrastive", "evaluate"):
        assert command in out.stdout
