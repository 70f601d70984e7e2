"""One preprocessing, for training and for prediction: a patient's uint8 slices as Kaggle stores
them (256x256, pre-contrast, FLAIR, post-contrast) -> the model's input. NumPy throughout, so
that prediction with LiteRT never loads TensorFlow.

    preprocessor = Preprocessor.from_settings(run.data)
    patient = preprocessor.patient_pass(volume)            # per patient: intensity levels, brain square
    slices = preprocessor.slice_pass(volume, patient)      # per slice: uint8 [n, S, S, C]
    batch = preprocessor.model_input(slices, positions)    # float32 in [0, 1], neighbours stacked

The per-patient pass finds, from the whole volume as stored, the levels of the normalisation
(`brainmri_tfds.normalization`) and the brain's square (`brainmri_tfds.cropping`). The per-slice
pass scales each slice by those levels, cuts it to the square, keeps the model's channels,
resizes it (bilinear, antialiased) and rounds it to uint8, as the tf.data cache holds it. The
tf.data pipeline (`brainmri_tfds.pipeline`) computes the per-patient pass over a split in one
sweep of histograms and row/column profiles, which gives the same values, and then calls the
same `slice_pass` through `tf.numpy_function`; prediction (`tuning.evaluation.inference`) calls
both passes on each volume. The resizes compute what TensorFlow's `tf.image.resize` computes
(antialiased bilinear: its triangle kernel, widened when shrinking; nearest for masks), bit for
bit, so the models trained while the pipeline called TensorFlow's resize see the same input
(tests/test_preprocessing.py holds the two to it). `to_json` writes the parameters a caller
without this project needs (`tuning.export`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from brainmri_tfds import cropping, normalization
from brainmri_tfds.cropping import DEFAULT_CROP
from brainmri_tfds.layout import NATIVE_SIZE
from brainmri_tfds.settings import CHANNEL_NAMES, DEFAULT_IMAGE_SIZE, check_options

GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], np.float32)  # ITU-R 601-2 luma, as tf.image.rgb_to_grayscale
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)


def antialiased_taps(source: int, target: int) -> tuple[np.ndarray, np.ndarray]:
    """(source indices, weights float32), each [target, taps]: output pixel i of a line of `target`
    resized from `source` is sum_k weights[i, k] * line[indices[i, k]]. The triangle kernel about
    each output pixel's centre in the source, widened by the shrink factor when shrinking (so
    every source pixel counts), its weights summing to 1; in float32 as TensorFlow computes them."""
    scale = np.float32(target) / np.float32(source)
    inverse = np.float32(1.0 / np.float64(scale))
    width = max(inverse, _ONE)  # the kernel's half-width in source pixels
    taps = min(2 * int(np.ceil(width)) + 1, source)
    centre = (np.arange(target, dtype=np.float32) + _HALF) * inverse
    first = np.clip(np.ceil(centre - width - _HALF), 0, source - 1).astype(np.int64)
    end = np.clip(np.floor(centre + width - _HALF), 0, source - 1).astype(np.int64) + 1
    indices = first[:, None] + np.arange(taps)
    distance = (indices.astype(np.float32) + _HALF - centre[:, None]) * (_ONE / width)
    weights = np.maximum(np.float32(0.0), _ONE - np.abs(distance)).astype(np.float32)
    weights[indices >= end[:, None]] = 0.0
    total = np.zeros(target, np.float32)
    for k in range(taps):  # summed tap by tap, in TensorFlow's order
        total += weights[:, k]
    return np.minimum(indices, source - 1), weights * (_ONE / total)[:, None]


def _resize_axis(image: np.ndarray, size: int, axis: int) -> np.ndarray:
    indices, weights = antialiased_taps(image.shape[axis], size)
    shape = [1] * image.ndim
    shape[axis] = size
    out = np.zeros(image.shape[:axis] + (size,) + image.shape[axis + 1:], np.float32)
    for k in range(indices.shape[1]):
        out += weights[:, k].reshape(shape) * np.take(image, indices[:, k], axis=axis)
    return out


def resize_antialiased(image: np.ndarray, size: int) -> np.ndarray:
    """float32 image(s) [..., H, W, C] -> [..., size, size, C]: bilinear with antialiasing, rows
    first, then columns (`tf.image.resize(..., "bilinear", antialias=True)` to the bit)."""
    image = np.asarray(image, np.float32)
    return _resize_axis(_resize_axis(image, size, image.ndim - 3), size, image.ndim - 2)


def nearest_indices(source: int, target: int) -> np.ndarray:
    """[target] source index of each output pixel: the one under its centre (half-pixel centres)."""
    scale = np.float32(source) / np.float32(target)
    centres = (np.arange(target, dtype=np.float32) + _HALF) * scale
    return np.minimum(np.floor(centres).astype(np.int64), source - 1)


def prepare_image(image: np.ndarray, image_size: int, channels: str) -> np.ndarray:
    """uint8 slice(s) [..., H, W, 3] -> float32 [..., S, S, C] in [0, 1] for the chosen channels
    (one of `settings.CHANNEL_MODES`)."""
    image = np.asarray(image, np.uint8).astype(np.float32) * np.float32(1.0 / 255.0)
    if channels == "flair":
        image = image[..., 1:2]
    elif channels == "gray":
        image = (image @ GRAY_WEIGHTS)[..., None]
    return np.clip(resize_antialiased(image, image_size), 0.0, 1.0)


def neighbour_positions(slice_counts, context: int) -> np.ndarray:
    """Positions [sum(slice_counts), 2 context + 1] of each slice's neighbours, for patients'
    volumes (in slice order) laid end to end with `slice_counts` slices each: slice i with the
    `context` slices before and after it. Beyond a patient's first or last slice, that slice
    stands in (as if the volume were padded by repeating its end slices)."""
    counts = np.asarray(slice_counts, np.int64)
    last = np.repeat(np.cumsum(counts) - 1, counts)[:, None]  # each slice's patient's last position
    first = last - np.repeat(counts, counts)[:, None] + 1
    own = np.arange(counts.sum())[:, None]
    return np.clip(own + np.arange(-context, context + 1), first, last)


def stack_neighbours(slices: np.ndarray, positions) -> np.ndarray:
    """Slices [N, H, W, C] and positions [..., K] (see `neighbour_positions`) -> [..., H, W, K x C]:
    the slices at those positions, their channels side by side (the first position's C channels
    first). Slice i of a patient with one slice of context on each side: channels of i-1, i, i+1."""
    gathered = np.asarray(slices)[np.asarray(positions)]  # [..., K, H, W, C]
    moved = np.moveaxis(gathered, -4, -2)  # [..., H, W, K, C]
    return moved.reshape(*moved.shape[:-2], moved.shape[-2] * moved.shape[-1])


def prepare_mask(mask: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 mask(s) [..., H, W, 1] in {0, 1} -> float32 [..., S, S, 1] in {0, 1} (nearest pixel)."""
    mask = np.asarray(mask)
    rows = nearest_indices(mask.shape[-3], image_size)
    cols = nearest_indices(mask.shape[-2], image_size)
    return np.take(np.take(mask, rows, axis=-3), cols, axis=-2).astype(np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float32 values in [0, 1] -> uint8 0..255, rounded (half to even)."""
    return np.round(np.asarray(image, np.float32) * np.float32(255.0)).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class PatientParameters:
    """What the per-patient pass finds: the normalisation's levels [C] (None: no normalisation)
    and the brain's square [top, left, side] (None: the whole slice)."""

    levels: np.ndarray | None = None
    box: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class Preprocessor:
    """The steps between Kaggle's uint8 slices and the model's input, as `DataSettings` names them."""

    image_size: int = DEFAULT_IMAGE_SIZE
    channels: str = "all"
    normalization: str = "patient"
    crop: str = DEFAULT_CROP
    context: int = 0

    def __post_init__(self):
        check_options(self.image_size, self.channels, self.normalization, self.context, self.crop)

    @classmethod
    def from_settings(cls, data) -> "Preprocessor":
        """From a `brainmri_tfds.settings.DataSettings` (or anything with the same fields)."""
        return cls(data.image_size, data.channels, data.normalization, data.crop, data.context)

    def patient_pass(self, volume: np.ndarray) -> PatientParameters:
        """The parameters of one patient's uint8 slices [n, 256, 256, 3] (numpy)."""
        volume = np.asarray(volume)
        levels = normalization.patient_levels(volume) if self.normalization == "patient" else None
        box = cropping.brain_box(volume) if self.crop == "brain" else None
        return PatientParameters(levels, box)

    def slice_pass(self, image, levels=None, box=None) -> np.ndarray:
        """uint8 slice(s) [..., 256, 256, 3] -> uint8 [..., S, S, C]: scaled by the patient's
        `levels`, cut to its `box`, the model's channels, resized (a `patient_pass`'s arrays)."""
        if self.normalization == "patient":
            image = normalization.apply_levels(image, levels)
        if self.crop == "brain":
            image = cropping.crop_to_box(image, box)
        return to_uint8(prepare_image(image, self.image_size, self.channels))

    def mask_pass(self, mask, box=None) -> np.ndarray:
        """uint8 mask(s) [..., 256, 256, 1] in {0, 1} -> uint8 [..., S, S, 1], cut and resized as the image."""
        if self.crop == "brain":
            mask = cropping.crop_to_box(mask, box)
        return prepare_mask(mask, self.image_size).astype(np.uint8)

    def volume_pass(self, volume: np.ndarray) -> tuple[np.ndarray, PatientParameters]:
        """Both passes over one patient's uint8 slices [n, 256, 256, 3] in slice order: (uint8
        [n, S, S, C], the parameters, whose box `paste_back` needs)."""
        patient = self.patient_pass(volume)
        return self.slice_pass(volume, patient.levels, patient.box), patient

    def model_input(self, slices, positions) -> np.ndarray:
        """float32 [..., S, S, C x (2 context + 1)] in [0, 1]: the uint8 `slices` [n, S, S, C] of one
        patient at `positions` (`neighbour_positions`) with their neighbours."""
        return stack_neighbours(np.asarray(slices, np.float32) / np.float32(255.0), positions)

    def paste_back(self, probability: np.ndarray, patient: PatientParameters) -> np.ndarray:
        """[n, S, S] predicted at the model's size -> [n, 256, 256] on the native grid (bilinear;
        zero outside the brain's square)."""
        box = patient.box if patient.box is not None else np.array([0, 0, NATIVE_SIZE])
        return cropping.paste_from_box(probability, box, NATIVE_SIZE)

    def to_json(self) -> dict:
        """The parameters of every step, for a caller without this project (preprocessing.json)."""
        return {
            "input": {"native_slice": f"{NATIVE_SIZE}x{NATIVE_SIZE} uint8, axial, rows anterior to posterior, "
                                      "columns right to left, channels pre-contrast, FLAIR, post-contrast",
                      "image_size": self.image_size, "channels": CHANNEL_NAMES[self.channels],
                      "neighbouring_slices_each_side": self.context},
            "per_patient": {
                "normalization": ({"method": "patient", "percentile": normalization.PERCENTILE,
                                   "rule": "per channel, over all the patient's slices: the percentile of the "
                                           "non-zero uint8 values is the level; the value 1 .. 255 at which the "
                                           "cumulative count first reaches percentile/100 of them"}
                                  if self.normalization == "patient" else {"method": "none"}),
                "crop": ({"method": "brain", "floor": cropping.FLOOR, "min_side": cropping.MIN_SIDE,
                          "rule": "over all slices and channels as stored, the rows and columns holding a value "
                                  ">= floor x the maximum; the square about them (at least min_side, the shorter "
                                  "side widened about its centre, rounded, moved inside the slice)"}
                         if self.crop == "brain" else {"method": "none"}),
            },
            "per_slice": ["scale each channel by 255 / level, round, clip to 0..255 (when normalised)",
                          "cut to the square (when cropped)", "keep the channels listed",
                          f"resize to {self.image_size}x{self.image_size}, bilinear with antialiasing",
                          "round to uint8, then divide by 255 (float32)"],
            "output": {"meaning": "probability of tumor per pixel at image_size; resize it (bilinear) to the "
                                  "square (or 256x256 uncropped) and put it in place, zero outside"},
        }
