"""Benchmark: how much of each slice the brain fills (what the brain crop gains in resolution).

    python -m benchmarks.analyses.brain_boxes --data-dir /tmp/dk --config kaggle_3m_folds

Prints the side of each patient's brain square (`brainmri_tfds.cropping`, on the values as stored,
as training and inference find it) over the patients of a built `lgg_mri` config
(default kaggle_3m: all its splits), with its quartiles. A side of 180 means the crop shows the
brain 256/180 = 1.42 times larger at the same input size.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="TFDS data_dir holding a built lgg_mri")
    parser.add_argument("--config", default="kaggle_3m", choices=("kaggle_3m", "kaggle_3m_folds", "synthetic"),
                        help="lgg_mri config (default kaggle_3m)")
    args = parser.parse_args(argv)

    import numpy as np
    from brainmri_tfds import DatasetNotBuiltError, load_split
    from brainmri_tfds.cropping import split_boxes

    try:
        examples = load_split("all", args.data_dir, args.config)
    except DatasetNotBuiltError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    boxes = split_boxes(examples)
    sides = np.array([box[2] for box in boxes.values()])
    native = 256
    print(f"{len(sides)} patients: side of the brain square in pixels of the {native}x{native} slice")
    print(f"  min {sides.min()}, quartiles {np.percentile(sides, 25):.0f} / {np.median(sides):.0f} / "
          f"{np.percentile(sides, 75):.0f}, max {sides.max()}")
    print(f"  the brain is shown {native / np.median(sides):.2f}x larger at the median "
          f"({native / sides.max():.2f}x .. {native / sides.min():.2f}x)")
    for patient in sorted(boxes, key=lambda p: boxes[p][2])[:3]:
        print(f"  smallest: {patient.decode()} {boxes[patient].tolist()} (top, left, side)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
