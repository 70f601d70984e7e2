"""How much arithmetic a U-Net step is, and how close a measured speed comes to what this CPU can do in float32.

    from unet_flops import efficiency          # beside speed.py and reference_torch.py
    result.update(efficiency(result))           # a result with depth, base_filters, ..., images/s

Both benchmarks build the same architecture (per level two 3x3 convolutions, 2x2 transposed
convolutions up, a 1x1 head), so one count serves both. FLOPs are 2 per multiply-add of the
convolutions; batch norm, ReLU, pooling and the loss add under 2% and are left out. A training
step is counted as 3 forward passes (forward, and the gradients with respect to inputs and
weights). Two yardsticks:
- the nominal peak, cores x FLOP per cycle x clock: 32 FLOP per cycle per core with AVX2 and FMA
  (two 256-bit FMA units, as Zen 2/3 and Intel client cores have), 64 with AVX-512 (two 512-bit
  units; chips with one reach half), 16 otherwise, at /proc/cpuinfo's `cpu MHz`. A VM reports
  the base clock there, and a core boosting above it beats this "peak";
- a float32 matrix product (4096 x 4096, numpy's BLAS on every core), timed in the same process:
  what this CPU does at its real clock, and the percentages are of it.
numpy only: reference_torch.py imports it without TensorFlow.
"""

from __future__ import annotations

import os

TRAIN_PASSES = 3  # forward + backward (input gradients) + weight gradients
SHAPE_DEFAULTS = {"depth": 4, "base-filters": 16, "image-size": 128, "channels": 1, "batch-size": 16}


def add_shape_arguments(parser) -> None:
    """--depth, --base-filters, --image-size, --channels and --batch-size: the benchmarked U-Net and batch."""
    for name, default in SHAPE_DEFAULTS.items():
        parser.add_argument(f"--{name}", type=int, default=default, help=f"(default {default})")


def check_shape_arguments(parser, args, *counts: str) -> None:
    """parser.error unless the shape arguments and the named `counts` (e.g. "repeats") are at least 1
    and the image halves evenly `depth` times."""
    names = ["depth", "base_filters", "channels", "batch_size", *counts]
    if min(getattr(args, name) for name in names) < 1:
        flags = [f"--{name.replace('_', '-')}" for name in names]
        parser.error(f"{', '.join(flags[:-1])} and {flags[-1]} must be at least 1")
    if args.image_size % 2**args.depth:
        parser.error(f"--image-size must be a multiple of 2**depth = {2**args.depth}")


def forward_flops(depth: int, base_filters: int, image_size: int, channels: int) -> float:
    """FLOPs of one image's forward pass through the convolutions."""
    widths = [base_filters * 2**level for level in range(depth + 1)]
    total, inputs = 0.0, channels
    for level, width in enumerate(widths):  # encoder levels, then the bottleneck
        pixels = (image_size // 2**level) ** 2
        total += 2 * pixels * 9 * (inputs * width + width * width)
        inputs = width
    for level in reversed(range(depth)):  # up-sampling and the decoder block at each level
        pixels = (image_size // 2**level) ** 2
        width = widths[level]
        total += 2 * pixels * widths[level + 1] * width  # 2x2 stride-2 transposed: each output pixel one tap
        total += 2 * pixels * 9 * (2 * width * width + width * width)
    return total + 2 * image_size**2 * widths[0]  # the 1x1 head


def fp32_peak_gflops(cpuinfo: str | None = None, cores: int | None = None) -> tuple[float, str]:
    """(this CPU's float32 peak in GFLOP/s, how it was worked out)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as handle:
                cpuinfo = handle.read()
        except OSError:
            cpuinfo = ""
    fields = dict(line.split(":", 1) for line in cpuinfo.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    per_cycle = 64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= flags else 16
    mhz = float(fields.get("cpu MHz", "nan"))
    cores = cores or len(os.sched_getaffinity(0))
    return cores * per_cycle * mhz / 1000.0, f"{cores} cores x {per_cycle} FLOP/cycle x {mhz / 1000:.2f} GHz"


def matmul_gflops(size: int = 4096, repeats: int = 3) -> float:
    """GFLOP/s of the fastest of `repeats` float32 products of two size x size matrices (numpy's BLAS)."""
    import time

    import numpy as np

    rng = np.random.default_rng(0)
    a, b = (rng.random((size, size), np.float32) for _ in range(2))
    a @ b  # warm-up
    fastest = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        fastest = min(fastest, time.perf_counter() - start)
    return 2 * size**3 / fastest / 1e9


def efficiency(result: dict) -> dict:
    """GFLOP/s achieved by a benchmark result's training and prediction, the CPU's nominal peak and
    its measured float32 matrix-product speed, and the achieved share of the latter."""
    per_image = forward_flops(result["depth"], result["base_filters"], result["image_size"], result["channels"])
    peak, how = fp32_peak_gflops()
    matmul = matmul_gflops()
    train = TRAIN_PASSES * per_image * result["train_images_per_s"] / 1e9
    predict = per_image * result["predict_images_per_s"] / 1e9
    return {
        "forward_gflop_per_image": round(per_image / 1e9, 3),
        "train_gflop_per_s": round(train, 1), "predict_gflop_per_s": round(predict, 1),
        "fp32_peak_gflop_per_s": round(peak, 1), "fp32_peak": how, "matmul_gflop_per_s": round(matmul, 1),
        "train_pct_of_matmul": round(100 * train / matmul, 1),
        "predict_pct_of_matmul": round(100 * predict / matmul, 1),
    }
