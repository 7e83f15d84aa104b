"""Joint ablation: one run over dae_weight * L_DAE + cl_weight * L_CL on a shared encoder.

train.py - `train_joint`: config + corpus -> encoder directory (then phase 3 as usual).
"""
from .train import JointStep, train_joint

__all__ = ["JointStep", "train_joint"]
