"""How a model's probabilities become a patient's mask: defined here once, used by evaluate.py,
brainmri-predict, export and cross-validation.

    settings = InferenceSettings()                   # DEFAULT: threshold 0.5, largest 3D component, flip averaging
    probability = flip_averaged(predict, batch)      # when settings.flip_average
    mask = settings.mask(probability_volume)         # [slices, H, W] bool

- `flip_average`: the model also sees each slice mirrored left-right; the two probability maps
  (the second mirrored back) are averaged.
- `threshold`: a pixel is tumor where the probability exceeds it.
- `keep_fraction`: the thresholded slices of a patient, stacked in slice order, form a volume;
  its 3D connected components (26-connectivity) smaller than `keep_fraction` times the largest
  one are removed. 0 keeps everything, 1 keeps the largest component only (as the dataset
  authors' PyTorch port does).

The defaults are fixed, not chosen per model (docs/experiments.md tells why);
`python -m tuning.crossval settings` scores the alternatives when asked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class InferenceSettings:
    """How probabilities become a patient's mask; `InferenceSettings()` is the project's default."""

    threshold: float = 0.5
    keep_fraction: float = 1.0
    flip_average: bool = True

    def __post_init__(self):
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold}")
        if not 0.0 <= self.keep_fraction <= 1.0:
            raise ValueError(f"keep_fraction must be in [0, 1], got {self.keep_fraction}")

    def mask(self, probability: np.ndarray) -> np.ndarray:
        """Boolean mask [slices, H, W] of one patient from its probabilities [slices, H, W]."""
        return keep_components(probability > self.threshold, self.keep_fraction)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


DEFAULT = InferenceSettings()


def keep_components(volume: np.ndarray, keep_fraction: float) -> np.ndarray:
    """`volume` [slices, H, W] bool without the 3D components smaller than keep_fraction x the largest."""
    if keep_fraction <= 0.0 or not volume.any():
        return volume
    from scipy import ndimage

    labels, count = ndimage.label(volume, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel())[1:]  # voxels per component 1..count
    kept = np.flatnonzero(sizes >= keep_fraction * sizes.max()) + 1
    return np.isin(labels, kept)


def flip_averaged(predict: Callable[[np.ndarray], np.ndarray], batch: np.ndarray) -> np.ndarray:
    """The mean of `predict(batch)` and the prediction of the left-right mirrored batch, mirrored
    back; `batch` and the predictions are [N, H, W, C]."""
    mirrored = np.asarray(predict(np.ascontiguousarray(batch[:, :, ::-1])))
    return (np.asarray(predict(batch)) + mirrored[:, :, ::-1]) / 2.0
