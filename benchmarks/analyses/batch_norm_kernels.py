"""Benchmark: the U-Net's batch norms, fused kernel against the float32 path in parts (issue 22).

    python -m benchmarks.analyses.batch_norm_kernels --depth 4 --base-filters 16 --image-size 128 --channels 1 --batch-size 16
    ONEDNN_MAX_CPU_ISA=AVX2 python -m benchmarks.analyses.batch_norm_kernels ...   # oneDNN's AVX2 kernels

Times, for the batch norm after every 3x3 convolution of the U-Net (`conv_kernels.conv_shapes`),
what a training step runs (batch norm with the batch's statistics and the ReLU after it, forward
and backward) and what validation runs (batch norm with the moving statistics), with each of
`tuning.unet.FusedBatchNormalization`'s implementations: `fused` (TensorFlow's fused kernel,
oneDNN's where `brainmri_tfds` turns oneDNN on) and `parts` (two sums, a 1x1 depthwise convolution,
the fused gradient kernel). Each figure is the median of `--repeats` runs after two warm-ups. The
layer picks `parts` by itself (`implementation="auto"`) where oneDNN runs below AVX-512 in float32.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.analyses.conv_kernels import conv_shapes  # noqa: E402
from benchmarks.unet_flops import add_shape_arguments, check_shape_arguments  # noqa: E402

IMPLEMENTATIONS = ("fused", "parts")
PASSES = ("training", "inference")


def time_batch_norm(batch: int, side: int, channels: int, repeats: int) -> dict[tuple[str, str], float]:
    """Median seconds of each (implementation, pass) for one [batch, side, side, channels] batch norm."""
    import numpy as np
    import tensorflow as tf

    from tuning.unet import FusedBatchNormalization

    x = tf.random.normal((batch, side, side, channels))
    upstream = tf.random.normal(x.shape)
    seconds = {}
    for implementation in IMPLEMENTATIONS:
        layer = FusedBatchNormalization(momentum=0.9, implementation=implementation)
        layer.build(x.shape)

        @tf.function
        def training():
            with tf.GradientTape() as tape:
                tape.watch(x)
                outputs = tf.nn.relu(layer(x, training=True))
            return tape.gradient(outputs, [x, layer.gamma, layer.beta], output_gradients=upstream)

        @tf.function
        def inference():
            return layer(x, training=False)

        for name, run in (("training", training), ("inference", inference)):
            run(), run()  # traces, then warms oneDNN's primitive cache
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                tf.nest.map_structure(lambda t: t.numpy(), run())
                times.append(time.perf_counter() - start)
            seconds[implementation, name] = float(np.median(times))
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shape_arguments(parser)
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per figure (default 10)")
    args = parser.parse_args(argv)
    check_shape_arguments(parser, args, "repeats")

    import brainmri_tfds  # noqa: F401  (oneDNN's kernels on, as in training)
    from brainmri_tfds.runtime import onednn_below_avx512
    from tuning.precision import cpu_description
    from tuning.unet import resolve_batch_norm

    print(f"CPU: {cpu_description()}; oneDNN below AVX-512: {onednn_below_avx512()} (auto picks "
          f"{resolve_batch_norm('auto', 'float32')}); batch norms of U-Net ({args.depth}, {args.base_filters}, "
          f"{args.image_size}, {args.channels}), batch {args.batch_size}, float32")
    columns = [(implementation, name) for name in PASSES for implementation in IMPLEMENTATIONS]
    print(f"{'layer':16s} {'side':>4s} {'ch':>4s} " + " ".join(f"{f'{n} {i} ms':>18s}" for i, n in columns))
    totals = dict.fromkeys(columns, 0.0)
    for name, side, _, channels in conv_shapes(args.depth, args.base_filters, args.image_size, args.channels):
        seconds = time_batch_norm(args.batch_size, side, channels, args.repeats)
        for column in columns:
            totals[column] += seconds[column]
        print(f"{name.replace('conv', 'bn'):16s} {side:4d} {channels:4d} "
              + " ".join(f"{1000 * seconds[c]:18.2f}" for c in columns), flush=True)
    print(f"{'all':16s} {'':4s} {'':4s} " + " ".join(f"{1000 * totals[c]:18.1f}" for c in columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
