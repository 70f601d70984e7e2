"""The brain crop: each patient's slices cut to the square about the brain before resizing, the
same square in training and inference, and predictions put back on the 256x256 grid."""

import numpy as np
import pytest

from brainmri_tfds import cropping, pipeline, preprocessing
from brainmri_tfds.settings import DataSettings


def _head(top: int, left: int, height: int, width: int, slices: int = 4) -> np.ndarray:
    volume = np.zeros((slices, 256, 256, 3), np.uint8)
    volume[:, top:top + height, left:left + width, 1] = 120
    volume[:, top:top + height, left:left + width, 0] = 60
    return volume


def test_the_square_holds_the_brain_and_lies_inside_the_slice():
    top, left, side = cropping.brain_box(_head(40, 60, 160, 120))
    assert side == 160 and top == 40  # the long side sets the square
    assert left == 60 + 120 // 2 - 80  # the short side widened about its centre
    top, left, side = cropping.brain_box(_head(0, 200, 100, 50))  # at the edge: moved inside, not padded
    assert side == 100 and 0 <= left <= 256 - side and left <= 200 and left + side >= 250


def test_dim_voxels_do_not_widen_the_square_but_bright_ones_do():
    volume = _head(40, 40, 150, 150)
    volume[0, 0:5, 0:5, 2] = int(120 * cropping.FLOOR) - 2  # noise below the floor
    assert cropping.brain_box(volume)[2] == 150
    volume[0, 250, 250, 2] = 120  # a bright voxel far away belongs to the head
    assert cropping.brain_box(volume)[2] == 250 - 40 + 1


def test_a_dark_or_tiny_volume_keeps_a_sane_square():
    assert cropping.brain_box(np.zeros((3, 256, 256, 3), np.uint8)).tolist() == [0, 0, 256]
    assert cropping.brain_box(_head(100, 100, 5, 5))[2] == cropping.MIN_SIDE


def test_a_prediction_on_the_cut_goes_back_to_its_place():
    box = cropping.brain_box(_head(30, 50, 180, 140))
    mask = np.zeros((1, 256, 256, 1), np.uint8)
    mask[0, 100:150, 90:130] = 1
    cut = cropping.crop_to_box(mask, box)
    small = preprocessing.prepare_mask(cut, 128)[..., 0]
    back = cropping.paste_from_box(small, box, 256) > 0.5
    inter = np.logical_and(back, mask[..., 0] > 0).sum()
    assert 2 * inter / (back.sum() + mask.sum()) > 0.97
    top, left, side = box
    outside = np.ones((256, 256), bool)
    outside[top:top + side, left:left + side] = False
    assert not back[0][outside].any()


def test_training_and_inference_cut_a_patient_alike(synthetic_data_dir):
    examples = pipeline.load_split("validation", synthetic_data_dir, "synthetic")
    by_pipeline = cropping.split_boxes(examples)
    volumes: dict[bytes, list] = {}
    for example in examples.as_numpy_iterator():
        volumes.setdefault(example["patient_id"], []).append(example["image"])
    assert set(by_pipeline) == set(volumes) and volumes
    for patient, slices in volumes.items():
        np.testing.assert_array_equal(by_pipeline[patient], cropping.brain_box(np.stack(slices)))
        assert by_pipeline[patient][2] < 256  # the phantom's head does not fill the slice


def test_the_pipeline_feeds_the_cut_slices(synthetic_data_dir):
    raw = list(pipeline.load_split("validation", synthetic_data_dir, "synthetic").as_numpy_iterator())
    boxes = {p: cropping.brain_box(np.stack([e["image"] for e in raw if e["patient_id"] == p]))
             for p in {e["patient_id"] for e in raw}}
    fed = pipeline.make_dataset("validation", data_dir=synthetic_data_dir, config="synthetic", image_size=64,
                                batch_size=None, normalization="none", crop="brain")
    for example, (image, mask) in zip(raw, fed.as_numpy_iterator(), strict=True):
        box = boxes[example["patient_id"]]
        expected = preprocessing.prepare_image(cropping.crop_to_box(example["image"], box), 64, "all")
        assert image.shape == (64, 64, 3) and mask.shape == (64, 64, 1)
        assert np.abs(image - expected).max() <= 1 / 255 + 1e-6
        np.testing.assert_array_equal(mask, preprocessing.prepare_mask(cropping.crop_to_box(example["mask"], box), 64))


def test_an_unknown_crop_is_refused_and_old_models_keep_whole_slices():
    from tuning.runfolder import from_fields

    with pytest.raises(ValueError, match="crop"):
        DataSettings(crop="skull")
    old = from_fields(DataSettings, {"dataset": "lgg_mri", "image_size": 128, "channels": "all"}, "config.json")
    assert old.crop == "none"
    assert from_fields(DataSettings, DataSettings(crop="brain").to_json(), "config.json").crop == "brain"
