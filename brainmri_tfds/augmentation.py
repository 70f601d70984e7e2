"""Training-time augmentation of whole batches: one warp of image and mask together, missing
sequences as Kaggle stores them, and intensity jitter. Each slice of a batch gets its own random
transform; working on batches is several times faster on a CPU than slice by slice."""

from __future__ import annotations

import math

import tensorflow as tf

# Augmentation ranges at strength 1 (`augmenter(strength=...)` scales them all).
MAX_ROTATION = 0.05  # of a full turn: +-18 degrees
MAX_ZOOM = 0.1  # +-10%
MAX_INTENSITY = 0.1  # brightness shift and contrast factor, +-10%
# Kaggle's slices hold FLAIR in place of a sequence the patient lacks (2 of the 40 development
# patients have FLAIR in all three channels); a share of training slices are shown that way.
MISSING_SEQUENCE_RATE = 0.1


def random_geometry(batch: int, size: int, seed: int, strength: float = 1.0) -> tf.Tensor:
    """[batch, 8] projective transforms (output -> input pixel, as `keras.ops.image.affine_transform`
    takes them): a random left-right flip, rotation (up to strength x MAX_ROTATION) and zoom (up to
    strength x MAX_ZOOM) about the image centre, composed."""
    rotation, zoom_range = MAX_ROTATION * strength, MAX_ZOOM * strength
    flip = tf.where(tf.random.uniform((batch,), seed=seed) < 0.5, -1.0, 1.0)
    angle = tf.random.uniform((batch,), -rotation, rotation, seed=seed + 1) * 2.0 * math.pi
    zoom = 1.0 + tf.random.uniform((batch,), -zoom_range, zoom_range, seed=seed + 2)
    cos, sin = tf.cos(angle) * zoom, tf.sin(angle) * zoom
    a0, a1, b0, b1 = cos * flip, -sin, sin * flip, cos
    centre = (size - 1) / 2.0
    a2, b2 = centre - (a0 + a1) * centre, centre - (b0 + b1) * centre
    zero = tf.zeros_like(a0)
    return tf.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=1)


def augmenter(seed: int, missing_sequence_rate: float = MISSING_SEQUENCE_RATE, strength: float = 1.0,
              slice_channels: int | None = None):
    """Random flip, small rotation and zoom (image and mask together, one warp); where each slice
    has three channels (the three sequences), FLAIR copied over the other two in
    `missing_sequence_rate` of the examples, as Kaggle stores a patient without them (in a stack
    of neighbouring slices, in every slice of the stack); then intensity jitter. `strength` scales
    the rotation, zoom and intensity ranges (1: MAX_ROTATION, MAX_ZOOM, MAX_INTENSITY).
    `slice_channels` is the channels of one slice (default: all of the image's, no neighbours)."""
    import keras

    if not 0.0 < strength <= 4.0:
        raise ValueError(f"augmentation strength must be in (0, 4], got {strength}")
    intensity = keras.Sequential([
        keras.layers.RandomBrightness(MAX_INTENSITY * strength, value_range=(0.0, 1.0), seed=seed + 3),
        keras.layers.RandomContrast(MAX_INTENSITY * strength, seed=seed + 4),
    ])

    def augment(image: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        n = tf.shape(image)[-1]
        transform = random_geometry(tf.shape(image)[0], image.shape[1], seed, strength)
        moved = keras.ops.image.affine_transform(tf.concat([image, mask], axis=-1), transform,
                                                 interpolation="bilinear", fill_mode="constant")
        image, mask = moved[..., :n], moved[..., n:]
        channels = image.shape[-1]
        if (slice_channels or channels) == 3:
            flair = [3 * (c // 3) + 1 for c in range(channels)]  # each channel's slice's FLAIR
            missing = tf.random.uniform((tf.shape(image)[0], 1, 1, 1), seed=seed + 5) < missing_sequence_rate
            image = tf.where(missing, tf.gather(image, flair, axis=-1), image)
        image = tf.clip_by_value(intensity(image, training=True), 0.0, 1.0)
        return image, tf.cast(mask > 0.5, tf.float32)

    return augment
