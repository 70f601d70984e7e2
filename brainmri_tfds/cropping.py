"""Cropping to the brain before resizing, so that at a given input size the brain, and the tumor
in it, gets more of the model's pixels.

As the dataset authors do (Buda et al. 2019), a patient's volume is reduced to the voxels at or
above `FLOOR` times its maximum; the rows and columns of the 256x256 slices where any such voxel
lies, over all the patient's slices and channels, give the brain's bounding box. It becomes a
square (the short side widened about its centre, then moved to lie inside the slice), at least
`MIN_SIDE` pixels wide. Every slice of the patient is cut to that square before it is resized;
probabilities predicted on the cut are resized back to the square and put in place on the
256x256 grid (zero outside it).

    box = brain_box(volume)                          # [top, left, side], from uint8 [slices, H, W, C]
    image = crop_to_box(image, box)                  # numpy, [..., side, side, C]
    probability = paste_from_box(cut, box, 256)     # numpy, [..., 256, 256]

Both the tf.data pipeline (training) and inference (whole patient volumes) use these functions,
and both find the square on the values as stored (before the normalisation, as the authors do),
so a model sees the same crop in both (`brainmri_tfds.preprocessing` composes them).
`python -m benchmarks.analyses.brain_boxes` measures the squares of a built dataset.
"""

from __future__ import annotations

import numpy as np

CROPS = ("none", "brain")
DEFAULT_CROP = "brain"  # ahead of whole slices in the 80-patient cross-validation (docs/experiments.md)
FLOOR = 0.1  # of the volume's maximum: dimmer voxels are background
MIN_SIDE = 64  # pixels of the 256x256 slice: a smaller box is a stray bright spot, not a brain


def box_from_profiles(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """[top, left, side] (int32) from the brightest value of each row [H] and column [W] over a
    volume: the square about the voxels at or above FLOOR x the maximum, inside the H x W slice
    (the whole slice's square when the volume is dark)."""
    rows, cols = np.asarray(rows, np.float64), np.asarray(cols, np.float64)
    height, width = len(rows), len(cols)
    full = min(height, width)
    peak = rows.max(initial=0.0)
    if peak <= 0:
        return np.array([(height - full) // 2, (width - full) // 2, full], np.int32)
    kept_rows = np.flatnonzero(rows >= FLOOR * peak)
    kept_cols = np.flatnonzero(cols >= FLOOR * peak)
    side = min(full, max(MIN_SIDE, kept_rows[-1] - kept_rows[0] + 1, kept_cols[-1] - kept_cols[0] + 1))
    centre_row = (kept_rows[0] + kept_rows[-1] + 1) / 2.0
    centre_col = (kept_cols[0] + kept_cols[-1] + 1) / 2.0
    top = int(np.clip(round(centre_row - side / 2.0), 0, height - side))
    left = int(np.clip(round(centre_col - side / 2.0), 0, width - side))
    return np.array([top, left, side], np.int32)


def brain_box(volume: np.ndarray) -> np.ndarray:
    """[top, left, side] of the brain's square in a patient's slices [slices, H, W, C] (numpy)."""
    volume = np.asarray(volume)
    brightest = volume.max(axis=(0, 3))  # [H, W] over slices and channels
    return box_from_profiles(brightest.max(axis=1), brightest.max(axis=0))


def split_boxes(examples) -> dict[bytes, np.ndarray]:
    """{patient_id: [top, left, side]} over a tf.data dataset of examples (one pass)."""
    import tensorflow as tf

    def profiles(example):
        brightest = tf.reduce_max(example["image"], axis=-1)  # [H, W]
        return example["patient_id"], tf.reduce_max(brightest, axis=1), tf.reduce_max(brightest, axis=0)

    rows_of: dict[bytes, np.ndarray] = {}
    cols_of: dict[bytes, np.ndarray] = {}
    for patient, rows, cols in examples.map(profiles, num_parallel_calls=tf.data.AUTOTUNE).as_numpy_iterator():
        rows_of[patient] = np.maximum(rows_of.get(patient, rows), rows)
        cols_of[patient] = np.maximum(cols_of.get(patient, cols), cols)
    return {patient: box_from_profiles(rows_of[patient], cols_of[patient]) for patient in rows_of}


def crop_to_box(image, box) -> np.ndarray:
    """image(s) [..., H, W, C] cut to the square `box` [top, left, side] (numpy)."""
    top, left, side = (int(v) for v in box)
    return np.asarray(image)[..., top:top + side, left:left + side, :]


def paste_from_box(cut: np.ndarray, box, native: int) -> np.ndarray:
    """Maps [N, S, S] predicted on a box's cut -> [N, native, native]: resized (bilinear) to the
    box and put in its place; zero outside it."""
    import cv2

    top, left, side = (int(v) for v in box)
    out = np.zeros((len(cut), native, native), np.float32)
    for i, plane in enumerate(np.asarray(cut, np.float32)):
        out[i, top:top + side, left:left + side] = cv2.resize(plane, (side, side), interpolation=cv2.INTER_LINEAR)
    return out
