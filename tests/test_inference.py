"""From slices to probabilities: flip averaging, ensembles, neighbouring slices."""

import numpy as np

from tuning.evaluation.inference import predict_probabilities
from brainmri_tfds.settings import DataSettings


def test_flip_average_mirrors_the_prediction_back():
    import keras

    image = keras.Input((8, 8, 1))
    left_half = keras.layers.Lambda(lambda x: x * 0 + keras.ops.reshape(
        keras.ops.cast(keras.ops.arange(8) < 4, "float32"), (1, 1, 8, 1)))(image)
    model = keras.Model(image, left_half)  # says "tumor" on the left half whatever it sees
    data = DataSettings(dataset="lgg_mri/synthetic", image_size=8, channels="flair")
    images = np.zeros((1, 256, 256, 3), np.uint8)
    plain = predict_probabilities(model, images, data, flip_average=False)
    averaged = predict_probabilities(model, images, data, flip_average=True)
    assert plain[0, 128, 10] > 0.9 and plain[0, 128, 245] < 0.1
    assert np.allclose(averaged[0, 128, [10, 245]], 0.5, atol=0.05)


class _Constant:
    """A stand-in model that says `value` for every pixel."""

    def __init__(self, value: float):
        self.value = value

    def predict_on_batch(self, batch):
        return np.full((*batch.shape[:3], 1), self.value, np.float32)


def test_ensemble_averages_its_members_per_patient_in_slice_order():
    from tuning.evaluation.inference import predict_ensemble

    rng = np.random.default_rng(0)
    slices = [("b", 2, rng.integers(0, 255, (256, 256, 3), np.uint8), None),
              ("a", 1, rng.integers(0, 255, (256, 256, 3), np.uint8), None),
              ("b", 1, rng.integers(0, 255, (256, 256, 3), np.uint8), None)]
    flair = DataSettings(dataset="lgg_mri/synthetic", image_size=8, channels="flair")
    every = DataSettings(dataset="lgg_mri/synthetic", image_size=16, channels="all")
    volumes = predict_ensemble([(_Constant(0.2), flair), (_Constant(0.7), every)], lambda: iter(slices),
                               flip_average=False, progress=False)
    assert sorted(volumes) == ["a", "b"] and volumes["b"].index == [1, 2]
    for volume in volumes.values():
        assert volume.probability.shape == (len(volume.index), 256, 256)
        np.testing.assert_allclose(volume.probability, 0.45, atol=1e-3)
    alone = predict_ensemble([(_Constant(0.2), flair)], lambda: iter(slices), flip_average=False, progress=False)
    np.testing.assert_allclose(alone["a"].probability, 0.2, atol=1e-3)


class _PreviousSlice:
    """A stand-in model whose 'probability' is the first channel of its input: with one slice of
    context on each side, the previous slice."""

    def predict_on_batch(self, batch):
        return np.asarray(batch)[..., :1]


def test_prediction_with_context_sees_each_slice_between_its_neighbours():
    from tuning.evaluation.inference import predict_patients

    brightness = {1: 40, 2: 80, 3: 120}
    slices = [("p", index, np.full((256, 256, 3), value, np.uint8), None)
              for index, value in [(3, 120), (1, 40), (2, 80)]]  # out of slice order
    data = DataSettings(dataset="lgg_mri/synthetic", image_size=8, channels="flair", normalization="none", context=1)
    volume = predict_patients(_PreviousSlice(), slices, data, flip_average=False, progress=False)["p"]
    assert volume.index == [1, 2, 3]
    seen = volume.probability[:, 128, 128] * 255
    np.testing.assert_allclose(seen, [brightness[1], brightness[1], brightness[2]], atol=1.0)  # the first is its own
