"""The tf.data pipeline: shapes, dtypes and ranges per channel mode; augmentation keeps alignment."""

import numpy as np
import pytest
import tensorflow as tf

from brainmri_tfds import augmentation, pipeline, preprocessing


@pytest.mark.parametrize("channels, depth", [("all", 3), ("flair", 1), ("gray", 1)])
def test_batches_have_the_promised_shapes_and_ranges(synthetic_data_dir, channels, depth):
    dataset = pipeline.make_dataset(
        "validation", data_dir=synthetic_data_dir, config="synthetic", image_size=64, channels=channels, batch_size=8
    )
    images, masks = next(iter(dataset))
    assert images.shape == (8, 64, 64, depth) and images.dtype == tf.float32
    assert masks.shape == (8, 64, 64, 1) and masks.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
    assert set(np.unique(masks.numpy())) <= {0.0, 1.0}


def test_train_split_covers_every_slice_once_per_epoch(synthetic_data_dir):
    dataset = pipeline.make_dataset("train", data_dir=synthetic_data_dir, config="synthetic", image_size=32, batch_size=None)
    raw = pipeline.load_split("train", synthetic_data_dir, "synthetic")
    assert sum(1 for _ in dataset) == sum(1 for _ in raw)


def test_flair_is_the_second_sequence():
    image = np.zeros((256, 256, 3), np.uint8)
    image[..., 1] = 200
    flair = preprocessing.prepare_image(image, 128, "flair")
    np.testing.assert_allclose(flair, 200 / 255, atol=1e-6)


def test_masks_stay_binary_when_resized():
    mask = np.zeros((256, 256, 1), np.uint8)
    mask[100:140, 90:133] = 1
    resized = preprocessing.prepare_mask(mask, 128)
    assert set(np.unique(resized)) == {0.0, 1.0}
    assert abs(resized.sum() * 4 - mask.sum()) < 0.05 * mask.sum()


def test_augmentation_moves_image_and_mask_together():
    rng = np.random.default_rng(0)
    masks = np.zeros((16, 64, 64, 1), np.float32)
    for i in range(16):
        y, x = rng.integers(12, 40, 2)
        masks[i, y : y + 14, x : x + 20] = 1.0
    images = np.repeat(masks, 3, axis=-1)  # the image shows exactly the mask
    augmented_images, augmented_masks = augmentation.augmenter(seed=1)(tf.constant(images), tf.constant(masks))
    moved = augmented_images.numpy()[..., 1] > 0.5
    truth = augmented_masks.numpy()[..., 0] > 0.5
    assert not np.array_equal(truth, masks[..., 0] > 0.5)  # something did move
    for shown, expected in zip(moved, truth):
        iou = (shown & expected).sum() / max((shown | expected).sum(), 1)
        assert iou > 0.9
    assert set(np.unique(augmented_masks.numpy())) <= {0.0, 1.0}


@pytest.mark.parametrize("strength", [1.0, 2.0])
def test_random_geometry_flips_rotates_and_zooms_about_the_centre(strength):
    transforms = augmentation.random_geometry(256, 64, seed=3, strength=strength).numpy()
    linear = transforms[:, [0, 1, 3, 4]].reshape(-1, 2, 2)
    zoom = np.sqrt(np.abs(np.linalg.det(linear)))
    widest = augmentation.MAX_ZOOM * strength
    assert ((1 - widest - 1e-5 <= zoom) & (zoom <= 1 + widest + 1e-5)).all()
    assert np.abs(zoom - 1).max() > 0.8 * widest  # the range is used, not just bounded
    angle = np.abs(np.arctan2(linear[:, 1, 0], linear[:, 1, 1])) / (2 * np.pi)  # of a turn (flip acts on x only)
    assert angle.max() <= augmentation.MAX_ROTATION * strength + 1e-5 and angle.max() > 0.8 * augmentation.MAX_ROTATION * strength
    flipped = np.linalg.det(linear) < 0
    assert 0.3 < flipped.mean() < 0.7  # about half are mirrored
    centre = np.array([31.5, 31.5])
    mapped = np.einsum("nij,j->ni", linear, centre) + transforms[:, [2, 5]]
    assert np.allclose(mapped, centre, atol=1e-3)  # the centre stays put
    assert np.allclose(transforms[:, 6:], 0.0)


def test_missing_dataset_names_the_build_command(tmp_path):
    with pytest.raises(pipeline.DatasetNotBuiltError) as caught:
        pipeline.make_dataset("train", data_dir=str(tmp_path), config="synthetic")
    assert f"tfds build lgg_mri --imports brainmri_tfds --config synthetic --data_dir {tmp_path}" in str(caught.value)


def test_unknown_channel_mode_is_rejected(synthetic_data_dir):
    with pytest.raises(ValueError, match="channels"):
        pipeline.make_dataset("train", data_dir=synthetic_data_dir, config="synthetic", channels="rgb")


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_augmentation_can_show_a_patient_without_pre_and_post_contrast(rate):
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0.2, 0.8, (8, 32, 32, 3)), tf.float32)
    masks = tf.zeros((8, 32, 32, 1))
    augmented, _ = augmentation.augmenter(seed=3, missing_sequence_rate=rate)(images, masks)
    channels = augmented.numpy()
    same = np.all(np.abs(channels[..., 0] - channels[..., 1]) < 1e-6, axis=(1, 2)) & np.all(
        np.abs(channels[..., 2] - channels[..., 1]) < 1e-6, axis=(1, 2))
    assert same.all() if rate == 1.0 else not same.any()


def _numbered_slices(n: int, tumor: int) -> tf.data.Dataset:
    """n slices whose image holds their number; the first `tumor` of them have a one-pixel mask."""
    masks = np.zeros((n, 4, 4, 1), np.float32)
    masks[:tumor, 1, 1] = 1.0
    images = np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((n, 4, 4, 1), np.float32)
    return tf.data.Dataset.from_tensor_slices((images, masks)).shuffle(n, seed=0)


def test_oversampling_shows_tumor_at_the_asked_share_in_epochs_of_the_same_length():
    epochs = pipeline.batch(_numbered_slices(400, 80), 400, tumor_share=0.5, seed=3)
    drawn = []
    for images, masks in epochs.take(1).repeat(3):
        shown = tf.reduce_max(masks, axis=[1, 2, 3]).numpy() > 0
        assert len(shown) == 400
        assert 0.43 < shown.mean() < 0.57  # the split itself has 0.2
        drawn.append(set(images.numpy()[~shown, 0, 0, 0].astype(int)))
        assert drawn[-1] <= set(range(80, 400))  # clear slices are the split's own
    assert drawn[0] != drawn[1]  # each epoch leaves out other clear slices


def test_area_weighting_draws_tumor_slices_in_proportion_to_area_plus_a_tenth_of_the_mean():
    masks = np.zeros((200, 8, 8, 1), np.float32)
    masks[0, :1, :1] = 1.0  # 1 pixel
    masks[1, :4, :4] = 1.0  # 16 pixels
    masks[2, :, :] = 1.0  # 64 pixels
    images = np.arange(200, dtype=np.float32)[:, None, None, None] * np.ones((200, 8, 8, 1), np.float32)
    split = tf.data.Dataset.from_tensor_slices((images, masks)).shuffle(200, seed=0)
    drawn = np.array([float(image[0, 0, 0]) for image, mask in
                      pipeline.oversample_tumor(split, 0.5, seed=1, weighting="area").repeat(20)
                      if mask.numpy().max() > 0])
    floor = 0.1 * 81 / 3
    expected = np.array([1, 16, 64]) + floor
    counts = np.array([(drawn == k).sum() for k in range(3)])
    assert counts.sum() > 1500  # about half of 20 epochs of 200
    assert np.allclose(counts / counts.sum(), expected / expected.sum(), atol=0.04)
    uniform = [float(image[0, 0, 0]) for image, mask in pipeline.oversample_tumor(split, 0.5, seed=1).repeat(5)
               if mask.numpy().max() > 0]
    assert abs(uniform.count(2.0) / len(uniform) - 1 / 3) < 0.06


def test_oversampling_leaves_a_split_without_tumor_as_it_is():
    epoch = [float(i[0, 0, 0]) for i, _ in pipeline.oversample_tumor(_numbered_slices(30, 0), 0.5)]
    assert sorted(epoch) == list(range(30))


@pytest.mark.parametrize("share", [1.0, -0.2])
def test_oversampling_share_must_be_a_fraction(share):
    with pytest.raises(ValueError, match="tumor_share"):
        pipeline.oversample_tumor(_numbered_slices(10, 5), share)


def test_oversampling_refuses_an_unknown_weighting():
    with pytest.raises(ValueError, match="tumor weighting"):
        pipeline.oversample_tumor(_numbered_slices(10, 5), 0.5, weighting="volume")


def test_neighbour_positions_stay_inside_each_patient():
    positions = preprocessing.neighbour_positions([3, 1, 2], context=1)
    assert positions.tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 2], [3, 3, 3], [4, 4, 5], [4, 5, 5]]
    assert preprocessing.neighbour_positions([4], context=0).tolist() == [[0], [1], [2], [3]]


def test_stacked_slices_keep_their_channels_together_in_slice_order():
    slices = np.arange(4)[:, None, None, None] * 10 + np.arange(3) * np.ones((4, 2, 2, 3), np.int32)  # slice*10 + channel
    stacked = preprocessing.stack_neighbours(slices, preprocessing.neighbour_positions([4], context=1))
    assert stacked.shape == (4, 2, 2, 9)
    assert stacked[1, 0, 0].tolist() == [0, 1, 2, 10, 11, 12, 20, 21, 22]
    assert stacked[3, 1, 1].tolist() == [20, 21, 22, 30, 31, 32, 30, 31, 32]
    one = preprocessing.stack_neighbours(slices, preprocessing.neighbour_positions([4], context=1)[0])
    assert one.shape == (2, 2, 9) and one[0, 0].tolist() == [0, 1, 2, 0, 1, 2, 10, 11, 12]


def test_context_gives_each_slice_its_neighbours_from_the_same_patient(synthetic_data_dir):
    def slices(context):
        dataset = pipeline.make_dataset("train", data_dir=synthetic_data_dir, config="synthetic", image_size=32,
                                        channels="flair", batch_size=None, shuffle=False, context=context)
        return [(image, mask) for image, mask in dataset.as_numpy_iterator()]

    single, stacked = slices(0), slices(1)
    assert len(stacked) == len(single) and stacked[0][0].shape == (32, 32, 3)
    for (image, mask), (stack, stack_mask) in zip(single, stacked):  # the same slices in the same order,
        np.testing.assert_array_equal(stack[..., 1:2], image)  # each in the middle of its stack
        np.testing.assert_array_equal(stack_mask, mask)
    centres = {stack[..., 1].tobytes() for stack, _ in stacked}
    assert all(stack[..., 0].tobytes() in centres and stack[..., 2].tobytes() in centres for stack, _ in stacked)
    patients = len({p for p in pipeline.load_split("train", synthetic_data_dir, "synthetic")
                    .map(lambda ex: ex["patient_id"]).as_numpy_iterator()})
    ends = [np.array_equal(stack[..., 2], stack[..., 1]) for stack, _ in stacked]  # a last slice stands in for
    assert sum(ends) == patients  # its missing next neighbour: one per patient


@pytest.mark.parametrize("slice_channels, stacked_sequences", [(3, True), (1, False)])
def test_missing_sequence_augmentation_treats_each_slice_of_a_stack(slice_channels, stacked_sequences):
    rng = np.random.default_rng(0)
    channels = 9 if slice_channels == 3 else 3
    images = tf.constant(rng.uniform(0.2, 0.8, (4, 16, 16, channels)), tf.float32)
    augmented, _ = augmentation.augmenter(seed=3, missing_sequence_rate=1.0, slice_channels=slice_channels)(
        images, tf.zeros((4, 16, 16, 1)))
    triples = augmented.numpy().reshape(4, 16, 16, channels // 3, 3)
    flair_everywhere = np.abs(triples - triples[..., 1:2]).max() < 1e-6
    assert flair_everywhere == stacked_sequences


def test_a_split_is_shuffled_only_when_asked_whatever_its_name(synthetic_data_dir):
    def order(split, **kwargs):
        dataset = pipeline.make_dataset(split, data_dir=synthetic_data_dir, config="synthetic", image_size=16,
                                        channels="flair", batch_size=None, **kwargs)
        return [float(image.numpy().sum()) for image, _ in dataset]

    stored = order("train")  # no shuffle asked for: the stored order, pass after pass, even for "train"
    assert order("train") == stored
    shuffled = order("train", shuffle=True, seed=1)
    assert sorted(shuffled) == sorted(stored) and shuffled != stored
    folds = order("train+validation", shuffle=True, seed=1)  # a split with another name is shuffled just the same
    assert folds != order("train+validation")
