"""Loading phase configs (confection format, as spaCy's) with one-line errors."""

from pathlib import Path
from typing import Any, Dict, Optional, Union

from .errors import UserError


def load_config(path: Union[str, Path], overrides: Optional[Dict[str, Any]] = None, *, interpolate: bool = True):
    """Read a .cfg file, apply `section.key` overrides, interpolate variables (unless told not to)."""
    from confection import ConfigValidationError
    from spacy import util

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: config file does not exist")
    try:
        return util.load_config(path, overrides=overrides or {}, interpolate=interpolate)
    except ConfigValidationError as err:
        raise UserError(f"{path}: {validation_summary(err)}") from None
    except Exception as err:  # confection parse errors: configparser / ValueError / KeyError
        raise UserError(
            f"{path}: cannot read config: "
            f"{str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}"
        ) from None


def resolve_section(config, key: str, path: Union[str, Path]) -> Any:
    """Resolve the registered function(s) in one section (e.g. `[noise]`)."""
    from confection import ConfigValidationError
    from spacy import registry

    if key not in config:
        raise UserError(f"{path}: missing section [{key}]")
    try:
        return registry.resolve({key: config[key]}, validate=True)[key]
    except ConfigValidationError as err:
        raise UserError(f"{path}: [{key}] {validation_summary(err)}") from None
    except Exception as err:  # registry lookups: unknown function names
        raise UserError(f"{path}: [{key}] {str(err).strip().splitlines()[0]}") from None


def catalogue_error():
    import catalogue

    return catalogue.RegistryError


def validation_summary(err) -> str:
    parts = []
    for e in getattr(err, "errors", None) or []:
        loc = ".".join(str(p) for p in e.get("loc", ()))
        parts.append(f"{loc}: {e.get('msg', '')}".strip(": "))
    if parts:
        return "invalid config: " + "; ".join(parts)
    text = str(err).strip().splitlines()
    return text[0] if text else "invalid config"
