"""A U-Net's architecture as values: what fixes its layers besides its input shape, and the check
that a U-Net of a given depth fits an input. Defined without Keras, so that run folders and the
commands' flags are read before TensorFlow loads; `tuning.unet` builds the layers.
"""

from __future__ import annotations

import dataclasses

UPSAMPLING = ("transpose", "bilinear")
DEPTHS = (2, 3, 4, 5)  # searched by default (`tuning/search.py --depths`)
BASE_FILTERS = (16, 32)  # first-layer widths searched by default; `search.py --base-filters` widens them


@dataclasses.dataclass(frozen=True)
class UNetArchitecture:
    """What fixes a U-Net's layers besides its input shape: the keyword arguments of `build_unet`
    (how it is trained: `tuning.recipe.TrainingRecipe`)."""

    depth: int = 4
    base_filters: int = 16
    batch_norm: bool = True
    dropout: float = 0.1
    upsampling: str = "transpose"

    def __post_init__(self):
        if self.upsampling not in UPSAMPLING:
            raise ValueError(f"upsampling must be one of {UPSAMPLING}, got {self.upsampling!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def keywords(self) -> dict:
        """The keyword arguments of `build_unet` besides the input shape."""
        return dataclasses.asdict(self)


def check_structure(image_size: int, channels: int, depths) -> None:
    """Raises ValueError unless a U-Net of every depth in `depths` fits `image_size` x `channels`."""
    if channels < 1:
        raise ValueError(f"channels must be at least 1, got {channels}")
    for depth in depths:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        if image_size < 2**depth or image_size % 2**depth:
            raise ValueError(
                f"image_size {image_size} must be divisible by 2**depth = {2**depth} (depth {depth}); "
                f"use a multiple of {2 ** max(depths)}"
            )
