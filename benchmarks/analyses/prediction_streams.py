"""Analysis: prediction images/s with each batch cut into 1, 2, ... streams, alternating in one process.

    python -m benchmarks.analyses.prediction_streams                          # (4, 16, 128, 1, 16)
    python -m benchmarks.analyses.prediction_streams --base-filters 32 --image-size 256 --channels 3 --steps 6
    bash benchmarks/as_avx2.sh python -m benchmarks.analyses.prediction_streams   # oneDNN's AVX2 kernels

Builds the U-Net as train.py does (untrained weights: the time does not depend on them), folds its
batch norms and times `predict_on_batch` of `tuning.evaluation.predictor.for_inference(model,
streams)` for each `--streams` value in turn, `--rounds` times (the order alternating), so that
the VM's slow and fast moments fall on every variant alike. Prints each round's images/s and
each variant's median, and the median's ratio to the first variant's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.speed import median_predict_seconds  # noqa: E402  (also turns oneDNN's kernels on, as in training)
from benchmarks.unet_flops import add_shape_arguments, check_shape_arguments  # noqa: E402


def parse_args(argv):
    from tuning.precision import add_precision_argument

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shape_arguments(parser)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2], help="variants timed (default 1 2)")
    parser.add_argument("--rounds", type=int, default=8, help="times each variant is timed (default 8)")
    parser.add_argument("--steps", type=int, default=30, help="batches per timing, its median taken (default 30)")
    add_precision_argument(parser)
    args = parser.parse_args(argv)
    check_shape_arguments(parser, args, "rounds", "steps")
    if min(args.streams) < 1:
        parser.error("--streams must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import numpy as np

    from tuning.evaluation.predictor import for_inference
    from tuning.precision import cpu_description, resolve_precision
    from tuning.unet import build_unet

    precision = resolve_precision(args.precision)
    model = build_unet(args.image_size, args.channels, args.depth, args.base_filters, precision=precision)
    images = np.random.default_rng(0).random((args.batch_size, args.image_size, args.image_size, args.channels),
                                              np.float32)
    predictors = {streams: for_inference(model, streams) for streams in args.streams}
    for predictor in predictors.values():
        predictor.predict_on_batch(images)  # traced and warm
        predictor.predict_on_batch(images)
    print(f"CPU: {cpu_description()}; U-Net ({args.depth}, {args.base_filters}, {args.image_size}, {args.channels}), "
          f"batch {args.batch_size}, {precision}; prediction images/s, {args.steps} batches a timing")
    rates = {streams: [] for streams in predictors}
    for round_ in range(args.rounds):
        order = list(predictors) if round_ % 2 == 0 else list(reversed(predictors))
        for streams in order:
            rates[streams].append(len(images) / median_predict_seconds(predictors[streams], images, args.steps, 0))
        print(f"round {round_ + 1}: " + "  ".join(f"{s} streams {rates[s][-1]:.1f}" for s in predictors), flush=True)
    first = statistics.median(rates[args.streams[0]])
    for streams, values in rates.items():
        median = statistics.median(values)
        print(f"{streams} streams: median {median:.1f} images/s ({median / first:.2f}x), "
              f"range {min(values):.1f}-{max(values):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
