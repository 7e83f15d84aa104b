"""Putting spaCy (thinc) on a GPU, with a one-line error where it cannot."""

from .errors import UserError


def require_spacy_gpu(gpu_id: int) -> None:
    """thinc's require_gpu (what `spacy train --gpu-id N` calls) as a one-line UserError."""
    from thinc.api import require_gpu

    try:
        require_gpu(gpu_id)
    except Exception as err:  # thinc raises ValueError without cupy or CUDA, cupy its own errors
        raise UserError(
            f"--gpu-id {gpu_id}: spaCy cannot use that GPU ({err}). A GPU needs CUDA, torch with "
            "CUDA and cupy for your CUDA version (e.g. pip install cupy-cuda12x); use --gpu-id -1 "
            "for the CPU"
        ) from None
