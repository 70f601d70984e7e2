"""The one preprocessing (brainmri_tfds/preprocessing.py), NumPy throughout: its resizes worked by
hand on a 4-pixel line, and held bit for bit to what TensorFlow computes, which the pipeline used
before and every model so far was trained on."""

import numpy as np
import pytest
import tensorflow as tf

from brainmri_tfds import normalization, preprocessing

SIDES = [64, 65, 100, 127, 128, 129, 173, 200, 211, 255, 256]  # the brain squares' range (cropping.MIN_SIDE up)


def test_halving_a_line_weighs_a_widened_triangle_by_hand():
    """4 -> 2 pixels: output 0's centre lies at 1.0 in the source; the triangle, twice as wide when
    halving, gives the pixels centred at 0.5, 1.5 and 2.5 the weights 0.75, 0.75, 0.25, which
    sum to 1 as 3/7, 3/7, 1/7. The line 0, 0, 7, 7 becomes 1, 6."""
    indices, weights = preprocessing.antialiased_taps(4, 2)
    matrix = np.zeros((2, 4))
    for row in range(2):
        np.add.at(matrix[row], indices[row], weights[row])  # a padded tap has weight 0
    np.testing.assert_allclose(matrix, [[3 / 7, 3 / 7, 1 / 7, 0], [0, 1 / 7, 3 / 7, 3 / 7]], rtol=1e-6, atol=1e-7)
    image = np.tile(np.array([0, 0, 7, 7], np.float32)[None, :, None], (4, 1, 1))  # 4x4, one channel
    np.testing.assert_allclose(preprocessing.resize_antialiased(image, 2)[..., 0], [[1, 6], [1, 6]], rtol=1e-6)


def test_a_mask_keeps_the_pixel_under_each_centre_by_hand():
    mask = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 1, 0], [0, 0, 0, 0]], np.uint8)[..., None]
    # 4 -> 2: centres at 1.0 and 3.0 fall in pixels 1 and 3
    assert preprocessing.prepare_mask(mask, 2)[..., 0].tolist() == [[1.0, 1.0], [0.0, 0.0]]


@pytest.mark.parametrize("size", [64, 128, 256])
def test_the_image_resize_is_tensorflows_to_the_bit(size):
    rng = np.random.default_rng(size)
    picks = {"all": lambda t: t, "flair": lambda t: t[..., 1:2], "gray": tf.image.rgb_to_grayscale}
    for side in SIDES:
        image = rng.integers(0, 256, (2, side, side, 3), dtype=np.uint8)
        for channels, pick in picks.items():
            picked = pick(tf.image.convert_image_dtype(image, tf.float32))
            theirs = tf.image.resize(picked, (size, size), method="bilinear", antialias=True)
            np.testing.assert_array_equal(preprocessing.prepare_image(image, size, channels),
                                          tf.clip_by_value(theirs, 0.0, 1.0).numpy(),
                                          err_msg=f"{side} -> {size}, {channels}")


@pytest.mark.parametrize("size", [64, 128, 256])
def test_the_mask_resize_is_tensorflows_nearest(size):
    rng = np.random.default_rng(size)
    for side in SIDES:
        mask = rng.integers(0, 2, (2, side, side, 1), dtype=np.uint8)
        expected = tf.cast(tf.image.resize(mask, (size, size), method="nearest"), tf.float32).numpy()
        np.testing.assert_array_equal(preprocessing.prepare_mask(mask, size), expected, err_msg=f"{side} -> {size}")


def test_levels_and_rounding_are_tensorflows():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    levels = np.array([79.0, 150.0, 207.0], np.float32)
    scaled = tf.cast(image, tf.float32) * (255.0 / tf.constant(levels))
    expected = tf.cast(tf.round(tf.clip_by_value(scaled, 0.0, 255.0)), tf.uint8).numpy()
    np.testing.assert_array_equal(normalization.apply_levels(image, levels), expected)
    values = rng.random((1000,), np.float32)
    np.testing.assert_array_equal(preprocessing.to_uint8(values), tf.cast(tf.round(values * 255.0), tf.uint8).numpy())
