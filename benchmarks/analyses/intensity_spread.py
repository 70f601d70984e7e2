"""Benchmark: how much brightness differs between patients (why normalisation is per patient).

    python -m benchmarks.analyses.intensity_spread --data-dir /tmp/dk --config kaggle_3m_folds

Prints, per channel, the range over patients of the level `brainmri_tfds.normalization` maps to
255 (the 99th percentile of a patient's non-zero voxels), and the patients at both ends.
Reads a built `lgg_mri` config (default kaggle_3m: all its splits).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CHANNEL_NAMES = ("pre-contrast", "FLAIR", "post-contrast")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="TFDS data_dir holding a built lgg_mri")
    parser.add_argument("--config", default="kaggle_3m", choices=("kaggle_3m", "kaggle_3m_folds", "synthetic"),
                        help="lgg_mri config (default kaggle_3m)")
    args = parser.parse_args(argv)

    from brainmri_tfds import DatasetNotBuiltError, load_split
    from brainmri_tfds.normalization import split_levels

    try:
        levels = split_levels(load_split("all", args.data_dir, args.config))
    except DatasetNotBuiltError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{len(levels)} patients: 99th percentile of non-zero voxels per patient")
    for channel, name in enumerate(CHANNEL_NAMES):
        ranked = sorted(levels, key=lambda p: levels[p][channel])
        low, high = ranked[0], ranked[-1]
        print(f"  {name:14s} {levels[low][channel]:5.0f} ({low.decode()}) .. {levels[high][channel]:5.0f} "
              f"({high.decode()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
