"""Benchmark: where a training (or prediction) step's time goes, op by op, from TensorFlow's profiler.

    python -m benchmarks.analyses.step_profile --depth 4 --base-filters 16 --image-size 128 --channels 1 --batch-size 16
    python -m benchmarks.analyses.step_profile --predict ...    # prediction as evaluate.py predicts (tuning/evaluation/predictor.py)

Builds and compiles the U-Net as train.py does (`build_unet`, `compile_unet`: BCE+Dice, Adam, the
Dice and IoU metrics), warms it up, then profiles `--steps` steps on one in-memory batch and sums
each TensorFlow op type's time on the executor threads, per step. TensorFlow runs independent ops
at the same time (a layer's input and weight gradients, for one), so the op times add up to more
than the step's wall time: they rank where the time goes, they are not a partition of it.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.unet_flops import add_shape_arguments, check_shape_arguments  # noqa: E402


def op_milliseconds(trace_dir: Path) -> collections.Counter:
    """Total milliseconds per op type on TensorFlow's executor threads, from a profiler trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    totals = collections.Counter()
    for path in trace_dir.rglob("*.xplane.pb"):
        space = xplane_pb2.XSpace()
        space.ParseFromString(path.read_bytes())
        for plane in space.planes:
            if plane.name != "/host:CPU":
                continue
            for line in plane.lines:
                if not line.name.startswith("tf_Compute"):
                    continue
                for event in line.events:
                    name = plane.event_metadata[event.metadata_id].name
                    if ":" in name and "::" not in name:  # "scope/op:OpType", not the executor's "Class::method"
                        totals[name.rsplit(":", 1)[1]] += event.duration_ps / 1e9
    return totals


def main(argv: list[str] | None = None) -> int:
    from tuning.unet import add_batch_norm_argument

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shape_arguments(parser)
    parser.add_argument("--steps", type=int, default=5, help="profiled steps (default 5)")
    parser.add_argument("--predict", action="store_true", help="profile prediction instead of training")
    parser.add_argument("--top", type=int, default=25, help="op types listed (default 25)")
    add_batch_norm_argument(parser)
    args = parser.parse_args(argv)
    check_shape_arguments(parser, args, "steps", "top")

    import brainmri_tfds  # noqa: F401  (oneDNN's kernels on, as in training)
    import numpy as np
    import tensorflow as tf

    from tuning.evaluation.predictor import for_inference
    from tuning.precision import cpu_description, resolve_precision
    from tuning.recipe import TrainingRecipe
    from tuning.unet import batch_norm_in_use, build_unet, compile_unet

    recipe = TrainingRecipe()
    precision = resolve_precision("auto")
    model = compile_unet(build_unet(args.image_size, args.channels, depth=args.depth, base_filters=args.base_filters,
                                    precision=precision,
                                    batch_norm_implementation=args.batch_norm),
                         recipe.learning_rate, recipe.loss)
    rng = np.random.default_rng(0)
    shape = (args.batch_size, args.image_size, args.image_size)
    images = rng.random(shape + (args.channels,), np.float32)
    masks = (rng.random(shape + (1,)) > 0.9).astype(np.float32)
    if args.predict:
        predictor = for_inference(model)
        step = lambda: predictor.predict_on_batch(images)  # noqa: E731
    else:
        step = lambda: model.train_on_batch(images, masks)  # noqa: E731
    for _ in range(3):
        step()
    with tempfile.TemporaryDirectory() as trace_dir:
        tf.profiler.experimental.start(trace_dir)
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        wall = (time.perf_counter() - start) / args.steps
        tf.profiler.experimental.stop()
        totals = op_milliseconds(Path(trace_dir))

    print(f"CPU: {cpu_description()}; {'prediction' if args.predict else 'training'} step of U-Net "
          f"({args.depth}, {args.base_filters}, {args.image_size}, {args.channels}), batch {args.batch_size}, "
          f"{precision}, batch norm {batch_norm_in_use(model)}")
    print(f"wall time {1000 * wall:.1f} ms a step (profiled); op times summed over both executor threads, "
          f"{sum(totals.values()) / args.steps:.1f} ms a step:")
    for op, milliseconds in totals.most_common(args.top):
        print(f"  {milliseconds / args.steps:8.1f} ms  {op}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
