"""Which floating-point precision the U-Net computes in: the fastest that keeps its accuracy.

bfloat16 mixed precision (`mixed_bfloat16`: bfloat16 arithmetic, float32 weights, a float32
sigmoid output) is faster than float32 where the hardware does bfloat16 natively (CPUs with
AVX512_BF16 or AMX, recent GPUs) and much slower where it must be emulated. `auto` picks it only
where the hardware has it; the measured speeds and Dice are in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse

from brainmri_tfds.runtime import cpu_flags, cpuinfo_field, onednn_below_avx512, read_cpuinfo

PRECISIONS = ("auto", "float32", "mixed_bfloat16")
_BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_has_bfloat16(cpuinfo: str | None = None) -> bool:
    """True where the CPU (Linux /proc/cpuinfo flags) computes bfloat16 natively."""
    return bool(cpu_flags(cpuinfo) & _BF16_CPU_FLAGS)


def cpu_description(cpuinfo: str | None = None) -> str:
    """The CPU's model, its logical CPUs and whether it does bfloat16, e.g. 'AMD EPYC, 2 CPUs, no bfloat16',
    as every time or speed figure names its machine."""
    import os

    cpuinfo = read_cpuinfo() if cpuinfo is None else cpuinfo
    model = (cpuinfo_field(cpuinfo, "model name") or ["unknown CPU"])[0]
    bf16 = "bfloat16 (AVX512_BF16/AMX)" if cpu_has_bfloat16(cpuinfo) else "no bfloat16"
    return f"{model}, {os.cpu_count()} CPUs, {bf16}"


def resolve_precision(name: str) -> str:
    """`float32` or `mixed_bfloat16`; `auto` is bfloat16 on a GPU or a bfloat16-capable CPU (not one
    whose oneDNN is capped below AVX-512 by `ONEDNN_MAX_CPU_ISA`, which has no bfloat16 kernels then)."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
    if name != "auto":
        return name
    import tensorflow as tf

    bfloat16_cpu = cpu_has_bfloat16() and not onednn_below_avx512()
    return "mixed_bfloat16" if tf.config.list_physical_devices("GPU") or bfloat16_cpu else "float32"


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    """`--precision`, as search.py, train.py and the speed benchmark take it (default auto)."""
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="float32, mixed_bfloat16, or auto (default: bfloat16 where the hardware does it natively)")
