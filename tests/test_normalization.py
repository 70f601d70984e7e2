"""Per-patient intensity normalisation: a dim scan and a bright one reach the model alike, and
training (tf.data) and inference (whole volumes) normalise a patient identically."""

import numpy as np
import pytest

from brainmri_tfds import normalization, pipeline
from brainmri_tfds.settings import DataSettings


def _volume(seed: int, scale: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    volume = rng.integers(20, 200, (6, 32, 32, 3)).astype(np.float64)
    volume[:, :4] = 0  # background
    return np.round(volume * scale).astype(np.uint8)


def test_a_dim_patient_is_brought_to_the_brightness_of_a_bright_one():
    bright, dim = _volume(0, 1.2), _volume(0, 0.4)
    assert np.percentile(dim, 99) < 0.4 * np.percentile(bright, 99)
    normalised = [normalization.apply_levels(v, normalization.patient_levels(v)) for v in (bright, dim)]
    for volume in normalised:
        brain = volume[:, 4:]
        assert volume.dtype == np.uint8 and (volume[:, :4] == 0).all()  # background stays 0
        assert np.percentile(brain, 99) >= 250 and np.percentile(brain, 50) > 100
    assert np.abs(normalised[0].astype(int) - normalised[1].astype(int)).mean() < 3  # rounding only


def test_levels_are_the_percentile_of_the_non_zero_values_per_channel():
    volume = np.zeros((1, 10, 100, 3), np.uint8)
    volume[0, :, :, 0] = np.arange(100)  # 0 (ignored) .. 99
    volume[0, :, :, 1] = 7
    levels = normalization.patient_levels(volume)
    assert levels[0] == pytest.approx(np.percentile(np.arange(1, 100), normalization.PERCENTILE), abs=1)
    assert levels[1] == 7 and levels[2] == 1  # an empty channel is left as it is


def test_training_and_inference_normalise_a_patient_alike(synthetic_data_dir):
    examples = pipeline.load_split("validation", synthetic_data_dir, "synthetic")
    by_pipeline = normalization.split_levels(examples)
    volumes: dict[bytes, list] = {}
    for example in examples.as_numpy_iterator():
        volumes.setdefault(example["patient_id"], []).append(example["image"])
    assert set(by_pipeline) == set(volumes) and len(volumes) >= 1
    for patient, slices in volumes.items():
        np.testing.assert_array_equal(by_pipeline[patient], normalization.patient_levels(np.stack(slices)))


def test_the_pipeline_feeds_each_slice_normalised_by_its_patients_levels(synthetic_data_dir):
    raw = list(pipeline.load_split("validation", synthetic_data_dir, "synthetic").as_numpy_iterator())
    levels = {p: normalization.patient_levels(np.stack([e["image"] for e in raw if e["patient_id"] == p]))
              for p in {e["patient_id"] for e in raw}}
    fed = pipeline.make_dataset("validation", data_dir=synthetic_data_dir, config="synthetic", image_size=256,
                                batch_size=None, shuffle=False, crop="none")
    for example, (image, _) in zip(raw, fed.as_numpy_iterator(), strict=True):
        expected = normalization.apply_levels(example["image"], levels[example["patient_id"]])
        assert np.abs(np.round(image * 255) - expected).max() <= 1
        assert not np.array_equal(expected, example["image"])


def test_unknown_normalisation_is_refused(synthetic_data_dir):
    with pytest.raises(ValueError, match="normalization"):
        pipeline.make_dataset("validation", data_dir=synthetic_data_dir, config="synthetic", normalization="zscore")
    with pytest.raises(ValueError, match="normalization"):
        DataSettings(normalization="zscore")


def test_models_trained_before_normalisation_keep_raw_values():
    from tuning.runfolder import from_fields

    old = from_fields(DataSettings, {"dataset": "lgg_mri", "image_size": 128, "channels": "all"}, "config.json")
    assert old.normalization == "none" and old.context == 0
    assert from_fields(DataSettings, DataSettings().to_json(), "config.json").normalization == "patient"
