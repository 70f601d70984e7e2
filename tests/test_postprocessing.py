"""How probabilities become masks: the 3D clean-up, the threshold, flip averaging, the one default."""

import numpy as np
import pytest

from tuning.postprocessing import DEFAULT, InferenceSettings, flip_averaged, keep_components


def _volume():
    """3 slices: a big blob spanning slices 0-1, a small one on slice 2 far away."""
    volume = np.zeros((3, 16, 16), bool)
    volume[0:2, 2:8, 2:8] = True  # 72 voxels
    volume[2, 12:14, 12:14] = True  # 4 voxels
    return volume


@pytest.mark.parametrize("keep_fraction, kept", [(0.0, 76), (0.05, 76), (0.1, 72), (1.0, 72)])
def test_keep_components_removes_those_below_the_fraction_of_the_largest(keep_fraction, kept):
    assert keep_components(_volume(), keep_fraction).sum() == kept


def test_components_connect_across_slices():
    volume = np.zeros((2, 8, 8), bool)
    volume[0, 1:3, 1:3] = True
    volume[1, 3:5, 3:5] = True  # touches the first only diagonally, through the slice above
    assert keep_components(volume, 1.0).sum() == 8


def test_empty_volume_stays_empty():
    assert not keep_components(np.zeros((2, 4, 4), bool), 1.0).any()


def test_settings_refuse_values_out_of_range():
    with pytest.raises(ValueError, match="threshold"):
        InferenceSettings(threshold=1.0)
    with pytest.raises(ValueError, match="keep_fraction"):
        InferenceSettings(keep_fraction=1.5)


def test_the_default_is_threshold_half_largest_component_and_flip_averaging():
    assert DEFAULT == InferenceSettings() == InferenceSettings(threshold=0.5, keep_fraction=1.0, flip_average=True)


def test_mask_thresholds_above_the_threshold_then_keeps_the_largest_component():
    probability = np.zeros((1, 4, 4), np.float32)
    probability[0, 0, 0:2] = 0.6   # a component of 2 pixels
    probability[0, 3, 0:3] = 0.9   # one of 3
    probability[0, 2, 3] = 0.5     # not above 0.5
    expected = np.zeros((1, 4, 4), bool)
    expected[0, 3, 0:3] = True
    np.testing.assert_array_equal(DEFAULT.mask(probability), expected)
    assert InferenceSettings(keep_fraction=0.0).mask(probability).sum() == 5


def test_flip_averaged_mirrors_the_second_prediction_back():
    batch = np.zeros((1, 4, 4, 1), np.float32)
    batch[0, :, 0] = 1.0  # the left column bright

    def predict(images):  # "tumor" where the image is bright, and 0.5 everywhere in the right column
        out = images.copy()
        out[:, :, 3] = 0.5
        return out

    averaged = flip_averaged(predict, batch)[0, :, :, 0]
    # plain: left column 1, right column 0.5; mirrored: right column of the mirror (the left) 0.5, left of it (right) 1 -> back
    np.testing.assert_allclose(averaged[:, 0], (1.0 + 0.5) / 2)
    np.testing.assert_allclose(averaged[:, 3], (0.5 + 0.0) / 2)
    np.testing.assert_allclose(averaged[:, 1:3], 0.0)
