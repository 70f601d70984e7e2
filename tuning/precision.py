"""Which floating-point precision the U-Net computes in: the fastest that keeps its accuracy.

bfloat16 mixed precision (`mixed_bfloat16`: bfloat16 arithmetic, float32 weights, a float32
sigmoid output) is faster than float32 where the hardware does bfloat16 natively (CPUs with
AVX512_BF16 or AMX, recent GPUs) and much slower where it must be emulated. `auto` picks it only
where the hardware has it; the measured speeds and Dice are in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

PRECISIONS = ("auto", "float32", "mixed_bfloat16")
_BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_has_bfloat16(cpuinfo: str | None = None) -> bool:
    """True where the CPU (Linux /proc/cpuinfo flags) computes bfloat16 natively."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.is_file() else ""
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & _BF16_CPU_FLAGS)


def resolve_precision(name: str) -> str:
    """`float32` or `mixed_bfloat16`; `auto` is bfloat16 on a GPU or a bfloat16-capable CPU."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
    if name != "auto":
        return name
    import tensorflow as tf

    return "mixed_bfloat16" if tf.config.list_physical_devices("GPU") or cpu_has_bfloat16() else "float32"


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    """`--precision`, as search.py, train.py and the speed benchmark take it (default auto)."""
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="float32, mixed_bfloat16, or auto (default: bfloat16 where the hardware does it natively)")
