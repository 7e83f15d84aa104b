"""Joint ablation: one run over dae_weight * L_DAE + cl_weight * L_CL on a shared encoder.

objective.py - the summed loss and the DAE batch stream; train.py - `train_joint`.
"""

from .train import train_joint

__all__ = ["train_joint"]
