"""Phase 1: TSDAE-style denoising auto-encoder adaptation of the encoder.

noise.py  - registered noise functions (word deletion), applied on the fly
model.py  - encoder + pooling -> one vector -> tied decoder; reconstruction loss
train.py  - `train_dae`: config + texts file -> adapted encoder directory
"""

from .model import DenoisingAutoEncoder, build_decoder
from .noise import word_deletion
from .train import train_dae

__all__ = ["word_deletion", "DenoisingAutoEncoder", "build_decoder", "train_dae"]
