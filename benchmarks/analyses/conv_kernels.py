"""Benchmark: where a training step's convolution time goes, kernel by kernel (issue 22).

    python -m benchmarks.analyses.conv_kernels --depth 4 --base-filters 16 --image-size 128 --channels 1 --batch-size 16

Times, for every 3x3 convolution of the U-Net (`tuning.unet.build_unet`'s shapes; the decoder's
first convolution reads the up-sampled map and the skip concatenated), the three kernels a training
step runs: the forward pass, the gradient with respect to the input and the gradient with respect
to the weights, each alone, as TensorFlow runs it here (oneDNN's kernels, as `brainmri_tfds`
turns them on). Each is the median of `--repeats` runs after two warm-ups; a kernel's GFLOP/s is
its 2 x multiply-adds over that time, the same arithmetic for all three. The float32 matrix
product of `benchmarks/unet_flops.py` is the yardstick. Nothing else should run meanwhile.

With --alternatives, the weight gradient is also timed computed three other ways, each checked
against TensorFlow's to 1e-4: as a forward convolution of the transposed tensors (the input's
channels as the batch, the output gradient as the kernel), as nine matrix products (one per
kernel tap), and as im2col with one matrix product. So is the forward pass as Winograd's
F(2x2, 3x3) (2.25x fewer multiplications: each overlapping 4x4 input tile transformed, sixteen
matrix products with the kernel transformed beforehand, as prediction would keep it, and each
2x2 output tile transformed back), checked against TensorFlow's forward pass to 1e-4. Every
figure counts the direct convolution's arithmetic, so GFLOP/s compare times.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.unet_flops import add_shape_arguments, check_shape_arguments, matmul_gflops  # noqa: E402

KERNELS = ("forward", "input gradient", "weight gradient")
ALTERNATIVES = {  # name: the kernel of KERNELS it computes
    "as a forward convolution": "weight gradient",
    "as nine products": "weight gradient",
    "as im2col": "weight gradient",
    "forward as Winograd": "forward",
}
# Winograd's F(2x2, 3x3) transforms (Lavin and Gray 2016): input tile d -> B^T d B, kernel g -> G g G^T,
# product m -> A^T m A.
WINOGRAD_B_T = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
WINOGRAD_G = ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1))
WINOGRAD_A_T = ((1, 1, 1, 0), (0, 1, -1, -1))


def conv_shapes(depth: int, base_filters: int, image_size: int, channels: int) -> list[tuple[str, int, int, int]]:
    """(layer name, map side, input channels, output channels) of each 3x3 convolution, encoder first."""
    widths = [base_filters * 2**level for level in range(depth + 1)]
    shapes, inputs = [], channels
    for level, width in enumerate(widths):
        name = "bottleneck" if level == depth else f"enc{level}"
        side = image_size // 2**level
        shapes += [(f"{name}_conv1", side, inputs, width), (f"{name}_conv2", side, width, width)]
        inputs = width
    for level in reversed(range(depth)):
        side, width = image_size // 2**level, widths[level]
        shapes += [(f"dec{level}_conv1", side, 2 * width, width), (f"dec{level}_conv2", side, width, width)]
    return shapes


def weight_gradient_alternatives(x, dy) -> dict:
    """The 3x3 'SAME' convolution's weight gradient [3, 3, in, out] from its input x [n, s, s, in]
    and output gradient dy [n, s, s, out], computed each way in ALTERNATIVES."""
    import tensorflow as tf

    side, inputs, outputs = x.shape[1], x.shape[3], dy.shape[3]
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    taps = [padded[:, i:i + side, j:j + side, :] for i in range(3) for j in range(3)]
    flat_dy = tf.reshape(dy, [-1, outputs])
    return {
        "as a forward convolution": lambda: tf.transpose(tf.nn.conv2d(
            tf.transpose(padded, [3, 1, 2, 0]), tf.transpose(dy, [1, 2, 0, 3]), 1, "VALID"), [1, 2, 0, 3]),
        "as nine products": lambda: tf.reshape(tf.stack(
            [tf.matmul(tf.reshape(t, [-1, inputs]), flat_dy, transpose_a=True) for t in taps]),
            [3, 3, inputs, outputs]),
        "as im2col": lambda: tf.reshape(tf.matmul(tf.reshape(tf.concat(taps, -1), [-1, 9 * inputs]), flat_dy,
                                                  transpose_a=True), [3, 3, inputs, outputs]),
    }


def winograd_forward(x, kernel):
    """The 3x3 'SAME' convolution of x [n, s, s, in] with kernel [3, 3, in, out] as Winograd's
    F(2x2, 3x3); returns a function of no arguments (the kernel transformed once, outside it)."""
    import tensorflow as tf

    batch, side, _, inputs = x.shape
    outputs, tiles, odd = kernel.shape[3], (side + 1) // 2, side % 2  # an odd side: one zero row and column more
    g = tf.constant(WINOGRAD_G, tf.float32)
    transformed_kernel = tf.reshape(tf.einsum("ai,ijco,bj->abco", g, kernel, g), [16, inputs, outputs])

    def combine(matrix, values):
        """Rows of `matrix` (constants) times the list `values` of tensors."""
        return [tf.add_n([weight * value for weight, value in zip(row, values) if weight]) for row in matrix]

    def forward():
        # 2x2 blocks of the padded input: tile (i, j) covers blocks (i..i+1, j..j+1), so each of the
        # 16 positions of every overlapping 4x4 tile is one shifted slice of the blocks.
        blocks = tf.nn.space_to_depth(tf.pad(x, [[0, 0], [1, 1 + odd], [1, 1 + odd], [0, 0]]), 2)
        d = [[blocks[:, row // 2:row // 2 + tiles, col // 2:col // 2 + tiles,
                     ((row % 2) * 2 + col % 2) * inputs:((row % 2) * 2 + col % 2 + 1) * inputs]
              for col in range(4)] for row in range(4)]
        rows = [combine(WINOGRAD_B_T, [d[r][c] for r in range(4)]) for c in range(4)]  # rows[c][a] = (B^T d)[a, c]
        v = [value for a in range(4) for value in combine(WINOGRAD_B_T, [rows[c][a] for c in range(4)])]
        m = tf.matmul(tf.reshape(tf.stack(v), [16, -1, inputs]), transformed_kernel)
        m = tf.reshape(m, [4, 4, batch, tiles, tiles, outputs])
        halves = combine(WINOGRAD_A_T, [m[a] for a in range(4)])  # (A^T m)[p, b]
        y = [value for half in halves for value in combine(WINOGRAD_A_T, [half[b] for b in range(4)])]
        return tf.nn.depth_to_space(tf.concat(y, axis=-1), 2)[:, :side, :side, :]

    return forward


def time_kernels(batch: int, side: int, inputs: int, outputs: int, repeats: int,
                 alternatives: bool = False) -> dict[str, float]:
    """Median seconds of each kernel in KERNELS (and ALTERNATIVES) for one convolution shape."""
    import numpy as np
    import tensorflow as tf

    x = tf.random.normal((batch, side, side, inputs))
    kernel = tf.random.normal((3, 3, inputs, outputs))
    dy = tf.random.normal((batch, side, side, outputs))
    strides = [1, 1, 1, 1]
    runs = {
        "forward": lambda: tf.nn.conv2d(x, kernel, 1, "SAME"),
        "input gradient": lambda: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=x.shape, filter=kernel, out_backprop=dy, strides=strides, padding="SAME"),
        "weight gradient": lambda: tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=kernel.shape, out_backprop=dy, strides=strides, padding="SAME"),
        **(weight_gradient_alternatives(x, dy) if alternatives else {}),
        **({"forward as Winograd": winograd_forward(x, kernel)} if alternatives else {}),
    }
    runs = {name: tf.function(run) for name, run in runs.items()}
    expected = {kernel: runs[kernel]().numpy() for kernel in set(ALTERNATIVES.values())} if alternatives else {}
    for name, kernel_computed in ALTERNATIVES.items() if alternatives else ():
        reference = expected[kernel_computed]
        error = np.abs(runs[name]().numpy() - reference).max() / np.abs(reference).max()
        if error > 1e-4:
            raise AssertionError(f"the {kernel_computed} {name} is off by {error:.1e} of its largest value")
    seconds = {}
    for name, run in runs.items():
        run(), run()  # traces, then warms oneDNN's primitive cache
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run().numpy()
            times.append(time.perf_counter() - start)
        seconds[name] = float(np.median(times))
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shape_arguments(parser)
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per kernel (default 10)")
    parser.add_argument("--alternatives", action="store_true",
                        help="also time the weight gradient three other ways, the forward pass as Winograd (see above)")
    args = parser.parse_args(argv)
    check_shape_arguments(parser, args, "repeats")

    import brainmri_tfds  # noqa: F401  (oneDNN's kernels on, as in training)
    from tuning.precision import cpu_description

    print(f"CPU: {cpu_description()}; 3x3 convolutions of U-Net ({args.depth}, {args.base_filters}, "
          f"{args.image_size}, {args.channels}), batch {args.batch_size}, float32")
    kernels = KERNELS + (tuple(ALTERNATIVES) if args.alternatives else ())
    print(f"{'layer':16s} {'side':>4s} {'in':>4s} {'out':>4s} " + " ".join(f"{k + ' ms':>18s}" for k in kernels))
    totals = dict.fromkeys(kernels, 0.0)
    flops = 0.0
    for name, side, inputs, outputs in conv_shapes(args.depth, args.base_filters, args.image_size, args.channels):
        seconds = time_kernels(args.batch_size, side, inputs, outputs, args.repeats, args.alternatives)
        layer_flops = 2.0 * args.batch_size * side * side * 9 * inputs * outputs
        flops += layer_flops
        for kernel in kernels:
            totals[kernel] += seconds[kernel]
        print(f"{name:16s} {side:4d} {inputs:4d} {outputs:4d} "
              + " ".join(f"{1000 * seconds[k]:8.2f} ({layer_flops / seconds[k] / 1e9:5.0f} GF/s)" for k in kernels),
              flush=True)
    yardstick = matmul_gflops()
    print(f"\nall 3x3 convolutions ({flops / 1e9:.2f} GFLOP per kernel kind), against a float32 matrix product at "
          f"{yardstick:.0f} GFLOP/s:")
    for kernel in kernels:
        rate = flops / totals[kernel] / 1e9
        print(f"  {kernel:26s} {1000 * totals[kernel]:8.1f} ms  {rate:6.1f} GFLOP/s  {100 * rate / yardstick:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
