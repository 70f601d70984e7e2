"""Benchmark: the per-patient Dice a model at a given input size could reach at best.

    python -m benchmarks.analyses.resolution_ceiling --data-dir /tmp/dk --image-size 128

Takes every true mask down to --image-size as training does (nearest), back up to the native
256x256 as evaluate.py does (bilinear, threshold 0.5), and scores it against the original with
evaluate.py's per-patient Dice. A perfect model at that size scores this; the gap to 1.0 is what
the input size alone costs. Also prints how many slices show tumor. Reads a built `lgg_mri`
config (default kaggle_3m: all its splits).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="TFDS data_dir holding a built lgg_mri")
    parser.add_argument("--config", default="kaggle_3m", choices=("kaggle_3m", "kaggle_3m_folds", "synthetic"),
                        help="lgg_mri config (default kaggle_3m)")
    parser.add_argument("--image-size", type=int, default=128, help="model input size (default 128)")
    args = parser.parse_args(argv)

    import tensorflow as tf
    from brainmri_tfds import DatasetNotBuiltError, load_split, prepare_mask
    from brainmri_tfds.layout import NATIVE_SIZE
    from tuning.evaluation.scoring import mean_patient_dice

    try:
        examples = load_split("all", args.data_dir, args.config)
    except DatasetNotBuiltError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    truths: dict[str, list] = {}
    round_trips: dict[str, list] = {}
    for example in examples.as_numpy_iterator():
        patient = example["patient_id"].decode()
        small = prepare_mask(example["mask"], args.image_size)
        back = tf.image.resize(small, (NATIVE_SIZE, NATIVE_SIZE), method="bilinear").numpy()[..., 0] > 0.5
        truths.setdefault(patient, []).append(example["mask"][..., 0] > 0)
        round_trips.setdefault(patient, []).append(back)
    truth = {p: np.stack(v) for p, v in truths.items()}
    best = {p: np.stack(v) for p, v in round_trips.items()}
    worst = min(mean_patient_dice({p: truth[p]}, {p: best[p]}) for p in truth)
    slices = [s for volume in truth.values() for s in volume]
    print(f"{len(slices):,} slices of {len(truth)} patients, {sum(s.any() for s in slices):,} showing tumor")
    print(f"{args.image_size}px input, {len(truth)} patients: best possible per-patient Dice "
          f"mean {mean_patient_dice(truth, best):.4f}, worst patient {worst:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
