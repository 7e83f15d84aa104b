"""project.yml as weasel reads it: every dependency of every command is a file that is in the
repository or that an earlier command of one of the workflows writes (a missing one makes
`spacy project run` stop with "Missing dependency")."""

from pathlib import Path

from weasel.util import load_project_config

REPO = Path(__file__).resolve().parents[1]


def test_every_dependency_exists_or_is_made_by_an_earlier_step():
    config = load_project_config(REPO)
    commands = {cmd["name"]: cmd for cmd in config["commands"]}
    for name, steps in config["workflows"].items():
        made = set()
        for step in steps:
            cmd = commands[step]
            for dep in cmd.get("deps", []):
                path = Path(dep)
                assert ", " not in dep, f"{step}: deps interpolated into one string: {dep!r}"
                assert (REPO / path).exists() or path in made, f"workflow {name}, step {step}: missing dependency {dep}"
            made.update(Path(out) for out in cmd.get("outputs", []))
            made.update(Path(out).parent for out in cmd.get("outputs", []))


def test_each_config_dependency_is_passed_by_its_script():
    """A config listed in deps but not on the command line would make weasel rerun the step
    for edits that cannot change its output (and hide which config it really reads)."""
    config = load_project_config(REPO)
    for cmd in config["commands"]:
        script = " ".join(cmd.get("script", []))
        args = {Path(arg).as_posix() for arg in script.replace("'", " ").split()}
        for dep in cmd.get("deps", []):
            path = Path(dep).as_posix()
            if path.endswith(".cfg"):
                assert path in args, f"{cmd['name']}: depends on {dep} but its script does not pass it"
