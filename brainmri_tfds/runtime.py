"""How TensorFlow runs on this machine, set before TensorFlow loads (importing `brainmri_tfds` does it).

TensorFlow turns on oneDNN's CPU kernels by default only on x86 CPUs with AVX512-VNNI, AVX512-BF16
or AMX; on other x86 CPUs (AVX2-only ones, AMD Zen 3 and older among them) they run the U-Net
faster as well (benchmarks/RESULTS.md), so they are asked for on every x86 CPU. A value already in
the environment wins: `TF_ENABLE_ONEDNN_OPTS=0` turns them off. Nothing changes once TensorFlow
has been imported.

`tensorflow_sees_a_gpu` answers without loading TensorFlow where no GPU driver is installed, so
that prediction on LiteRT never waits for it. It also says what this machine's CPU offers those
kernels (`cpu_flags`, `onednn_below_avx512`), for the choices made per machine: precision
(tuning/precision.py) and the batch-norm kernel (tuning/unet.py).
"""

from __future__ import annotations

import glob
import os
import platform
import sys
from pathlib import Path

ONEDNN = "TF_ENABLE_ONEDNN_OPTS"
# oneDNN's avx512_core: what its AVX-512 kernels need; and the variables that cap its instruction set.
_AVX512_CORE_FLAGS = {"avx512f", "avx512bw", "avx512vl", "avx512dq"}
_ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


def configure() -> None:
    """Asks for oneDNN's kernels on x86 CPUs unless the environment says otherwise."""
    if "tensorflow" not in sys.modules and platform.machine().lower() in ("x86_64", "amd64"):
        os.environ.setdefault(ONEDNN, "1")


# Where Linux shows a GPU TensorFlow could use: NVIDIA's driver (CUDA), AMD's (ROCm), WSL2's (CUDA on Windows).
_GPU_DRIVER_FILES = ("/dev/nvidia[0-9]*", "/proc/driver/nvidia/gpus/*", "/dev/kfd", "/dev/dxg")


def tensorflow_sees_a_gpu() -> bool:
    """Whether TensorFlow computes on a GPU in this process. On Linux without a GPU driver
    (`_GPU_DRIVER_FILES`) it cannot, and TensorFlow, seconds to load, is not asked; elsewhere, or
    with a driver, it is (after `tf.config.set_visible_devices([], "GPU")` it sees none)."""
    if sys.platform.startswith("linux") and not any(glob.glob(pattern) for pattern in _GPU_DRIVER_FILES):
        return False
    import tensorflow as tf

    return bool(tf.config.get_visible_devices("GPU"))


def onednn_enabled() -> bool:
    """Whether TensorFlow runs with oneDNN's CPU kernels in this process."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return os.environ.get(ONEDNN) == "1"


def read_cpuinfo() -> str:
    """Linux's /proc/cpuinfo, or '' where there is none."""
    path = Path("/proc/cpuinfo")
    return path.read_text() if path.is_file() else ""


def cpuinfo_field(cpuinfo: str, name: str) -> list[str]:
    """The values of one /proc/cpuinfo field (one per logical CPU), e.g. 'model name'."""
    return [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.split(":", 1)[0].strip() == name]


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags, as /proc/cpuinfo lists them ('avx2', 'avx512f', ...)."""
    cpuinfo = read_cpuinfo() if cpuinfo is None else cpuinfo
    return {flag for line in cpuinfo_field(cpuinfo, "flags") for flag in line.split()}


def onednn_below_avx512(cpuinfo: str | None = None, environ: dict | None = None) -> bool:
    """Whether oneDNN runs its AVX2-or-older x86 kernels here: an x86 CPU without AVX-512 (AMD Zen 3
    and older, Intel client chips), or one whose oneDNN is capped below it (`ONEDNN_MAX_CPU_ISA=AVX2`,
    which also lets an AVX-512 machine stand in for an AVX2 one)."""
    environ = os.environ if environ is None else environ
    cap = next((environ[name].upper() for name in _ISA_CAPS if environ.get(name)), "")
    if cap and cap not in ("ALL", "DEFAULT"):
        return "512" not in cap and not cap.startswith("AVX10")
    flags = cpu_flags(cpuinfo)
    return bool(flags) and "avx2" in flags and not _AVX512_CORE_FLAGS <= flags
