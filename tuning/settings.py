"""What the scripts share: the data settings (flags <-> JSON) and atomic JSON files."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
from pathlib import Path

import brainmri_tfds
from brainmri_tfds.normalization import NORMALIZATIONS
from brainmri_tfds.pipeline import CHANNEL_MODES, DEFAULT_IMAGE_SIZE, parse_dataset_name

MAX_CONTEXT = 4


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """Which dataset a model sees and how: travels in best_hparams.json and config.json."""

    dataset: str = "lgg_mri"
    image_size: int = DEFAULT_IMAGE_SIZE
    channels: str = "all"
    data_dir: str | None = None
    normalization: str = "patient"
    context: int = 0  # neighbouring slices on each side stacked into the input (2.5D)

    def __post_init__(self):
        parse_dataset_name(self.dataset)
        if self.channels not in CHANNEL_MODES:
            raise ValueError(f"channels must be one of {sorted(CHANNEL_MODES)}, got {self.channels!r}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if not 0 <= self.context <= MAX_CONTEXT:
            raise ValueError(f"context must be 0 to {MAX_CONTEXT} slices on each side, got {self.context}")

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

    def slices(self, split: str, shuffle: bool | None = None, seed: int = 0):
        """The split's prepared, cached slices, unbatched (see `brainmri_tfds.make_dataset`; `shuffle`
        None shuffles the split named 'train' only, so training on any other split, such as the
        folds of a cross-validation, must ask for it)."""
        return brainmri_tfds.make_dataset(
            split, data_dir=self.data_dir, config=self.config, image_size=self.image_size,
            channels=self.channels, batch_size=None, shuffle=shuffle, seed=seed, normalization=self.normalization,
            context=self.context,
        )

    def to_json(self) -> dict:
        return {"dataset": self.dataset, "image_size": self.image_size, "channels": self.channels,
                "normalization": self.normalization, "context": self.context}

    @classmethod
    def from_json(cls, values: dict, data_dir: str | None = None) -> "DataSettings":
        """From config.json/best_hparams.json's "data"; files written before normalisation existed
        were trained on raw values, so a missing "normalization" means 'none'; and on single slices,
        so a missing "context" means 0."""
        return cls(values["dataset"], int(values["image_size"]), values["channels"], data_dir,
                   values.get("normalization", "none"), int(values.get("context", 0)))


def add_data_arguments(parser: argparse.ArgumentParser, defaults: bool = True) -> None:
    """--dataset, --data-dir, --image-size, --channels, --normalization, --context (defaults None when `defaults` is False,
    so a script can tell a flag the user gave from one it should read from a JSON file)."""
    base = DataSettings()
    parser.add_argument(
        "--dataset", default=base.dataset if defaults else None,
        help="lgg_mri (the Kaggle data, built with --manual_dir) or lgg_mri/synthetic"
        + (f" (default {base.dataset})" if defaults else ""),
    )
    parser.add_argument("--data-dir", help="TFDS data_dir (default: TFDS's, ~/tensorflow_datasets)")
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


def write_json(path: str | os.PathLike, values: dict) -> None:
    """Writes JSON atomically: a reader sees the old file or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as handle:
        json.dump(values, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(handle.name, path)


def read_json(path: str | os.PathLike, what: str) -> dict:
    """Reads a JSON file, with a one-line error naming it when it is missing or broken."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} {path} is not valid JSON ({err})") from err
