"""The data settings: which dataset a model sees and how, as flags and as JSON.

They travel in best_hparams.json and config.json (`tuning.runfolder` reads and writes those), so
a model is always fed the way it was trained, from the same data_dir. The options and their
checks are defined here, without TensorFlow, so that the commands read their flags (and answer
`--help`) before TensorFlow loads; `brainmri_tfds.preprocessing` and `brainmri_tfds.pipeline`
apply them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os

from brainmri_tfds.cropping import CROPS, DEFAULT_CROP
from brainmri_tfds.normalization import NORMALIZATIONS

CHANNEL_MODES = {"all": 3, "flair": 1, "gray": 1}  # mode -> number of model input channels
CHANNEL_NAMES = {"all": ["pre-contrast", "FLAIR", "post-contrast"], "flair": ["FLAIR"],
                 "gray": ["gray (ITU-R 601-2 luma of pre-contrast, FLAIR, post-contrast)"]}
DEFAULT_IMAGE_SIZE = 128
MIN_IMAGE_SIZE = 8
MAX_CONTEXT = 4  # neighbouring slices on each side (2.5D input)


def check_options(image_size: int, channels: str, normalization: str, context: int, crop: str = DEFAULT_CROP) -> None:
    """Raises ValueError naming the first option a slice cannot be prepared with."""
    if channels not in CHANNEL_MODES:
        raise ValueError(f"channels must be one of {sorted(CHANNEL_MODES)}, got {channels!r}")
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be at least {MIN_IMAGE_SIZE}, got {image_size}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if not 0 <= context <= MAX_CONTEXT:
        raise ValueError(f"context must be 0 to {MAX_CONTEXT} slices on each side, got {context}")
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")


TUMOR_WEIGHTINGS = ("uniform", "area")  # which tumor slices fill the oversampled share (`pipeline.oversample_tumor`)


def parse_dataset_name(dataset: str) -> str:
    """The config of 'lgg_mri' (kaggle_3m) or 'lgg_mri/<config>'."""
    name, _, config = dataset.partition("/")
    if name != "lgg_mri":
        raise ValueError(f"unknown dataset {dataset!r}: expected 'lgg_mri' or 'lgg_mri/synthetic'")
    return config or "kaggle_3m"


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """Which dataset a model sees and how: travels in best_hparams.json and config.json."""

    dataset: str = "lgg_mri"
    image_size: int = DEFAULT_IMAGE_SIZE
    channels: str = "all"
    data_dir: str | None = None
    normalization: str = "patient"
    context: int = 0  # neighbouring slices on each side stacked into the input (2.5D)
    crop: str = DEFAULT_CROP  # 'brain': each patient's slices cut to the square about the brain before resizing

    def __post_init__(self):
        parse_dataset_name(self.dataset)
        check_options(self.image_size, self.channels, self.normalization, self.context, self.crop)

    @property
    def config(self) -> str:
        return parse_dataset_name(self.dataset)

    @property
    def slice_channels(self) -> int:
        """Channels of one slice (3 for all sequences)."""
        return CHANNEL_MODES[self.channels]

    @property
    def n_channels(self) -> int:
        """Channels of the model's input: one slice's, times the slices stacked."""
        return self.slice_channels * (2 * self.context + 1)

    def slices(self, split: str, shuffle: bool, seed: int = 0):
        """The split's prepared, cached slices, unbatched and reshuffled every pass if `shuffle`
        (see `brainmri_tfds.make_dataset`)."""
        from brainmri_tfds.pipeline import make_dataset

        return make_dataset(
            split, data_dir=self.data_dir, config=self.config, image_size=self.image_size,
            channels=self.channels, batch_size=None, shuffle=shuffle, seed=seed, normalization=self.normalization,
            context=self.context, crop=self.crop,
        )

    def slice_patients(self, split: str) -> list[bytes]:
        """The patient of each slice of `slices(split, shuffle=False)`, in that order."""
        from brainmri_tfds.pipeline import load_split

        examples = load_split(split, self.data_dir, self.config)
        return list(examples.map(lambda example: example["patient_id"]).as_numpy_iterator())

    def to_json(self) -> dict:
        """Every field; data_dir as an absolute path (None: TFDS's default), so that a later step
        run from another folder finds the same data."""
        data_dir = self.data_dir
        if data_dir and "://" not in data_dir:
            data_dir = os.path.abspath(os.path.expanduser(data_dir))
        return {**dataclasses.asdict(self), "data_dir": data_dir}


def add_data_arguments(parser: argparse.ArgumentParser, defaults: bool = True) -> None:
    """--dataset, --data-dir, --image-size, --channels, --normalization, --context, --crop (defaults None when `defaults` is False,
    so a script can tell a flag the user gave from one it should read from a JSON file)."""
    base = DataSettings()
    parser.add_argument(
        "--dataset", default=base.dataset if defaults else None,
        help="lgg_mri (the Kaggle data, built with --manual_dir) or lgg_mri/synthetic"
        + (f" (default {base.dataset})" if defaults else ""),
    )
    parser.add_argument("--data-dir", help="TFDS data_dir (default: " + ("TFDS's, ~/tensorflow_datasets)" if defaults else
                        "the one the JSON file records, else TFDS's, ~/tensorflow_datasets)"))
    parser.add_argument(
        "--image-size", type=int, default=base.image_size if defaults else None,
        help="model input size in pixels" + (f" (default {base.image_size})" if defaults else ""),
    )
    parser.add_argument(
        "--channels", choices=sorted(CHANNEL_MODES), default=base.channels if defaults else None,
        help="all = pre-contrast, FLAIR, post-contrast; flair; gray = the seed tutorial's grayscale"
        + (f" (default {base.channels})" if defaults else ""),
    )
    parser.add_argument(
        "--normalization", choices=NORMALIZATIONS, default=base.normalization if defaults else None,
        help="patient = scale each patient's channels to a common brightness (99th percentile -> 255); "
             "none = raw values" + (f" (default {base.normalization})" if defaults else ""),
    )
    parser.add_argument(
        "--context", type=int, default=base.context if defaults else None,
        help="2.5D input: also give the model the chosen channels of this many neighbouring slices on each side "
             "(1: slices i-1, i, i+1)" + (f" (default {base.context})" if defaults else ""),
    )
    parser.add_argument(
        "--crop", choices=CROPS, default=base.crop if defaults else None,
        help="brain = cut each patient's slices to the square about the brain before resizing (the mask is put "
             "back on the 256x256 grid); none = resize the whole slice"
             + (f" (default {base.crop})" if defaults else ""),
    )
