"""The tf.data pipeline over a built `lgg_mri` dataset, for training and for evaluation.

    make_dataset("train", image_size=128, channels="all", batch_size=16, shuffle=True, augment=True)

gives batches of `(image float32 [B, S, S, C] in [0, 1], mask float32 [B, S, S, 1] in {0, 1})`:
decode -> the preprocessing prediction uses too (`brainmri_tfds.preprocessing`: per-patient levels
and brain square, found in one extra pass over the split; per slice: normalise, crop, resize) ->
cache (uint8) -> [stack neighbouring slices: `context`] -> shuffle -> [oversample tumor slices] ->
batch -> augment -> prefetch.
Augmentation runs on whole batches (each slice still gets its own random transform), which is
several times faster on a CPU than slice by slice.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from brainmri_tfds.augmentation import augmenter
from brainmri_tfds.cropping import DEFAULT_CROP, split_boxes
from brainmri_tfds.normalization import split_levels
from brainmri_tfds.preprocessing import Preprocessor, neighbour_positions, stack_neighbours
from brainmri_tfds.settings import CHANNEL_MODES, DEFAULT_IMAGE_SIZE, TUMOR_WEIGHTINGS

SHUFFLE_BUFFER = 1024


class DatasetNotBuiltError(RuntimeError):
    """The requested dataset is not in data_dir; the message gives the command that builds it."""


def build_command(config: str, data_dir: str | None) -> str:
    """The exact `tfds build` command that prepares `lgg_mri/<config>` in `data_dir`."""
    command = f"tfds build lgg_mri --imports brainmri_tfds --config {config}"
    if config != "synthetic":
        command += " --manual_dir DIR_WITH_KAGGLE_ZIP"
    if data_dir:
        command += f" --data_dir {data_dir}"
    return command


def load_split(split: str, data_dir: str | None = None, config: str = "kaggle_3m") -> tf.data.Dataset:
    """The raw examples of a split (dicts of image, mask, patient_id, slice_index, ...), in key order.

    `split` is a split name or any TFDS split string, e.g. 'fold0+fold1' of `lgg_mri/kaggle_3m_folds`.
    """
    import brainmri_tfds.lgg_mri  # noqa: F401  (registers the builder)

    builder = tfds.builder(f"lgg_mri/{config}", data_dir=data_dir)
    if not builder.is_prepared():
        raise DatasetNotBuiltError(
            f"dataset lgg_mri/{config} is not built in {builder.data_dir_root}; build it with:\n  "
            + build_command(config, data_dir)
        )
    try:
        builder.info.splits[split]  # a name, or a TFDS split string such as 'fold0+fold1' or 'train[:50%]'
    except ValueError:
        raise ValueError(f"lgg_mri/{config} has no split {split!r}; it has {sorted(builder.info.splits)}") from None
    return builder.as_dataset(split=split, shuffle_files=False)


def _to_float(image: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.cast(image, tf.float32) / 255.0, tf.cast(mask, tf.float32)


def make_dataset(
    split: str,
    *,
    data_dir: str | None = None,
    config: str = "kaggle_3m",
    image_size: int = DEFAULT_IMAGE_SIZE,
    channels: str = "all",
    batch_size: int | None = 16,
    augment: bool = False,
    shuffle: bool = False,
    seed: int = 0,
    normalization: str = "patient",
    tumor_share: float = 0.0,
    tumor_weighting: str = "uniform",
    augment_strength: float = 1.0,
    context: int = 0,
    crop: str = DEFAULT_CROP,
) -> tf.data.Dataset:
    """Batches of (image, mask) for Keras, reshuffled every pass when `shuffle` is True (ask for it
    when training, whatever the split is called).

    `normalization` is 'patient' (each patient's channels scaled to a common brightness, see
    `brainmri_tfds.normalization`) or 'none' (the uint8 values as they are). `tumor_share`
    oversamples tumor slices, drawn by `tumor_weighting` (see `oversample_tumor`; 0, the default,
    keeps the split's share);
    `augment_strength` scales the augmentation's ranges (see `augmenter`). `context` > 0 gives each
    slice the chosen channels of the `context` slices before and after it in its patient's volume
    as well (2.5D input: C x (2 context + 1) channels, see `stack_neighbours`); the prepared split
    is then held in memory rather than in a tf.data cache. `crop` 'brain' (the default) cuts each
    patient's slices to the square about their brain before resizing (see `brainmri_tfds.cropping`;
    one more pass over the split finds each patient's square); 'none' resizes the whole slice.

    `batch_size=None` gives the prepared, cached, shuffled slices unbatched, for a caller that
    batches them itself with `batch()` (as the tuner does to search over batch size).
    """
    preprocessor = Preprocessor(image_size, channels, normalization, crop, context)
    # The cache and the shuffle buffer hold uint8 (a quarter of float32's memory: 0.6 GB rather than 2.3 GB for Kaggle's
    # 3,929 slices at 256x256x3); values become float32 after it.
    examples = load_split(split, data_dir, config)
    boxes = split_boxes(examples) if crop == "brain" else {}  # on the raw values
    levels = split_levels(examples) if normalization == "patient" else {}

    def prepare(image, mask, patient):  # NumPy, through tf.numpy_function
        patient = bytes(patient)
        box = boxes.get(patient)
        return preprocessor.slice_pass(image, levels.get(patient), box), preprocessor.mask_pass(mask, box)

    def prepare_example(example):
        image, mask = tf.numpy_function(prepare, [example["image"], example["mask"], example["patient_id"]],
                                        (tf.uint8, tf.uint8), stateful=False)
        image.set_shape((image_size, image_size, CHANNEL_MODES[channels]))
        mask.set_shape((image_size, image_size, 1))
        return image, mask, example["patient_id"], example["slice_index"]

    prepared = examples.map(prepare_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if context:
        dataset = with_neighbours(prepared, context)
    else:
        dataset = prepared.map(lambda image, mask, patient, index: (image, mask)).cache()
    if shuffle:  # before the float conversion, so the buffer too holds uint8
        dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if batch_size is None:
        if augment or tumor_share:
            raise ValueError("augment and tumor_share need a batch_size: they run in batch()")
        return dataset
    return batch(dataset, batch_size, augment=augment, seed=seed, tumor_share=tumor_share,
                 augment_strength=augment_strength, slice_channels=CHANNEL_MODES[channels],
                 tumor_weighting=tumor_weighting)


def with_neighbours(prepared: tf.data.Dataset, context: int) -> tf.data.Dataset:
    """(image uint8 [S, S, C], mask, patient_id, slice_index) of a split -> (image uint8
    [S, S, C x (2 context + 1)], mask) in the same order: each slice stacked with its `context`
    neighbours on each side in its patient's volume (see `stack_neighbours`). Reads the split once
    into memory (uint8: 190 MB for Kaggle's 3,929 slices at 128x128x3), so each stack is gathered,
    not stored."""
    images, masks, patients, indices = [], [], [], []
    for image, mask, patient, index in prepared.as_numpy_iterator():
        images.append(image)
        masks.append(mask)
        patients.append(patient)
        indices.append(index)
    if not images:
        raise ValueError("the split holds no slices")
    order = np.lexsort((np.array(indices), np.array(patients)))  # by patient, then slice index
    _, counts = np.unique(np.array(patients)[order], return_counts=True)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))  # each slice's place in patient and slice order
    positions = neighbour_positions(counts, context)[rank]
    slices = np.stack(images)[order]
    shape = (*slices.shape[1:3], slices.shape[3] * positions.shape[1])

    def stacked(position, mask):
        image = tf.numpy_function(lambda p: stack_neighbours(slices, p), [position], tf.uint8, stateful=False)
        image.set_shape(shape)
        return image, mask

    return tf.data.Dataset.from_tensor_slices((positions, np.stack(masks))).map(
        stacked, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def has_tumor(image: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Whether a slice's mask marks any pixel."""
    return tf.reduce_max(mask) > 0


def tumor_area(image: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """How many pixels a slice's mask marks (float32)."""
    return tf.reduce_sum(tf.cast(mask > 0, tf.float32))


def oversample_tumor(dataset: tf.data.Dataset, tumor_share: float, seed: int = 0,
                     weighting: str = "uniform") -> tf.data.Dataset:
    """Unbatched (image, mask) pairs -> as many pairs, drawn so that `tumor_share` of them (in
    expectation) show tumor: tumor slices repeat and slices without tumor are left out at random
    as needed. Each pass reshuffles the input, so a later epoch draws other slices. A split without
    any tumor slice, or without any clear slice, is returned as it is (there is nothing to mix).

    `weighting` says which tumor slices fill the tumor share: 'uniform', each as often as another;
    'area', each in proportion to its tumor area plus a tenth of the split's mean tumor area (as
    Buda et al.'s reference weights slices), so slices of large tumors are drawn more often and a
    small tumor's still come up. Area weighting draws by rejection: about max/mean area more
    slices pass through the pipeline before augmentation."""
    if not 0.0 < tumor_share < 1.0:
        raise ValueError(f"tumor_share must be between 0 and 1, got {tumor_share}")
    if weighting not in TUMOR_WEIGHTINGS:
        raise ValueError(f"tumor weighting must be one of {TUMOR_WEIGHTINGS}, got {weighting!r}")
    def add_slice(total, pair):  # [clear slices, tumor slices, tumor area, largest tumor area]
        area = tumor_area(*pair)
        shows = tf.cast(area > 0, tf.float32)
        return tf.stack([total[0] + 1.0 - shows, total[1] + shows, total[2] + area, tf.maximum(total[3], area)])

    clear, tumor, area_sum, area_max = (float(v) for v in dataset.reduce(tf.zeros(4), add_slice).numpy())
    if not clear or not tumor:
        return dataset
    tumor_slices = dataset.filter(has_tumor).repeat()
    if weighting == "area":
        floor = 0.1 * area_sum / tumor
        tumor_slices = tf.data.Dataset.zip(tumor_slices, tf.data.Dataset.random(seed=seed)).filter(
            lambda pair, draw: _uniform(draw) * (area_max + floor) < tumor_area(*pair) + floor
        ).map(lambda pair, draw: pair)
    streams = [tumor_slices,
               dataset.filter(lambda image, mask: tf.logical_not(has_tumor(image, mask))).repeat()]
    mixed = tf.data.Dataset.sample_from_datasets(streams, [tumor_share, 1.0 - tumor_share], seed=seed)
    return mixed.take(int(clear + tumor))


def _uniform(draw: tf.Tensor) -> tf.Tensor:
    """An int64 from `tf.data.Dataset.random` -> a float in [0, 1)."""
    return tf.cast(tf.math.floormod(draw, 2**24), tf.float32) / 2.0**24


def batch(dataset: tf.data.Dataset, batch_size: int, augment: bool = False, seed: int = 0,
          drop_remainder: bool = False, tumor_share: float = 0.0, augment_strength: float = 1.0,
          slice_channels: int | None = None, tumor_weighting: str = "uniform") -> tf.data.Dataset:
    """Unbatched (image, mask) pairs -> batches, augmented if asked (`augment_strength` scales the
    ranges; `slice_channels`, the channels of one slice of a stack; see `augmenter`), prefetched.
    `tumor_share` oversamples tumor slices to that share, drawn by `tumor_weighting` (see
    `oversample_tumor`; 0 keeps the split's own). `drop_remainder` leaves out a last partial batch
    (tf.distribute hands the slices of a partial batch to the first replicas, so a later one can
    get none, which batch norm cannot take)."""
    if tumor_share:
        dataset = oversample_tumor(dataset, tumor_share, seed, tumor_weighting)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if augment:
        dataset = dataset.map(augmenter(seed, strength=augment_strength, slice_channels=slice_channels),
                              num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
