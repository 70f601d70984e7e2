"""How TensorFlow runs on this machine, set before TensorFlow loads (importing `brainmri_tfds` does it).

TensorFlow turns on oneDNN's CPU kernels by default only on x86 CPUs with AVX512-VNNI, AVX512-BF16
or AMX; on other x86 CPUs (AVX2-only ones, AMD Zen 3 and older among them) they run the U-Net
faster as well (benchmarks/RESULTS.md), so they are asked for on every x86 CPU. A value already in
the environment wins: `TF_ENABLE_ONEDNN_OPTS=0` turns them off. Nothing changes once TensorFlow
has been imported.
"""

from __future__ import annotations

import os
import platform
import sys

ONEDNN = "TF_ENABLE_ONEDNN_OPTS"


def configure() -> None:
    """Asks for oneDNN's kernels on x86 CPUs unless the environment says otherwise."""
    if "tensorflow" not in sys.modules and platform.machine().lower() in ("x86_64", "amd64"):
        os.environ.setdefault(ONEDNN, "1")


def onednn_enabled() -> bool:
    """Whether TensorFlow runs with oneDNN's CPU kernels in this process."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return os.environ.get(ONEDNN) == "1"
