"""Per-patient intensity normalisation: each patient's channels stretched to a common brightness.

The Kaggle slices are uint8, but scanners and sites differ: over the 40 development patients the
99th percentile of FLAIR runs from 79 to 207. A model trained on bright patients misses the whole
tumor of a dim one. As the dataset authors do (Buda et al. 2019, per volume), every channel of a
patient is scaled so that the `PERCENTILE`th percentile of its non-zero voxels over all the
patient's slices becomes 255 (brighter voxels saturate); 0 stays 0. Values stay uint8, so the
cache keeps its size.

    levels = patient_levels(volume)             # [C] float32, from uint8 [slices, H, W, C]
    image = apply_levels(image, levels)          # uint8 in, uint8 out (numpy)

Both the tf.data pipeline (training) and inference (whole patient volumes) use these functions,
so a model sees the same normalisation in both.
"""

from __future__ import annotations

import numpy as np

PERCENTILE = 99.0
LEVELS = 256
NORMALIZATIONS = ("patient", "none")


def levels_from_histogram(histogram: np.ndarray) -> np.ndarray:
    """[C] float32 levels from per-channel counts [C, 256] of uint8 values: the PERCENTILEth
    percentile of the non-zero values (1.0 for a channel that is all zero)."""
    counts = np.asarray(histogram, np.float64)[:, 1:]
    cumulative = np.cumsum(counts, axis=1)
    total = cumulative[:, -1:]
    above = cumulative >= np.maximum(total, 1.0) * PERCENTILE / 100.0
    levels = np.argmax(above, axis=1) + 1.0
    return np.where(total[:, 0] > 0, levels, 1.0).astype(np.float32)


def channel_histogram(images: np.ndarray) -> np.ndarray:
    """Counts [C, 256] of the uint8 values of images [..., C]."""
    channels = images.shape[-1]
    flat = np.asarray(images, np.uint8).reshape(-1, channels)
    return np.stack([np.bincount(flat[:, c], minlength=LEVELS) for c in range(channels)])


def patient_levels(volume: np.ndarray) -> np.ndarray:
    """[C] levels of one patient's uint8 slices [slices, H, W, C]."""
    return levels_from_histogram(channel_histogram(volume))


def apply_levels(image, levels) -> np.ndarray:
    """uint8 image(s) [..., C] scaled so `levels` [C] become 255, clipped, rounded (half to even), uint8."""
    scaled = np.asarray(image, np.uint8).astype(np.float32) * (np.float32(255.0) / np.asarray(levels, np.float32))
    return np.round(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


def split_levels(examples) -> dict[bytes, np.ndarray]:
    """{patient_id: [C] levels} over a tf.data dataset of raw examples (one pass, histograms only)."""
    import tensorflow as tf

    def histogram(example):
        image = tf.reshape(tf.cast(example["image"], tf.int32), (-1, example["image"].shape[-1]))
        counts = tf.map_fn(lambda channel: tf.math.bincount(channel, minlength=LEVELS, maxlength=LEVELS),
                           tf.transpose(image), fn_output_signature=tf.int32)
        return example["patient_id"], counts

    totals: dict[bytes, np.ndarray] = {}
    for patient, counts in examples.map(histogram, num_parallel_calls=tf.data.AUTOTUNE).as_numpy_iterator():
        totals[patient] = totals.get(patient, 0) + counts
    return {patient: levels_from_histogram(counts) for patient, counts in totals.items()}
