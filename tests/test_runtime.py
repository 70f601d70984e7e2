"""brainmri_tfds.runtime: oneDNN's CPU kernels are asked for on every x86 CPU, before TensorFlow loads,
unless the user said otherwise."""

import os
import subprocess
import sys

import pytest

from brainmri_tfds import runtime


@pytest.mark.parametrize("machine, preset, expected", [
    ("x86_64", None, "1"),      # asked for
    ("x86_64", "0", "0"),       # the user's choice wins
    ("aarch64", None, None),    # left to TensorFlow elsewhere
])
def test_onednn_is_asked_for_on_x86_unless_set(monkeypatch, machine, preset, expected):
    monkeypatch.setattr(runtime.platform, "machine", lambda: machine)
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)  # as before TensorFlow loads
    monkeypatch.delenv(runtime.ONEDNN, raising=False)
    if preset is not None:
        monkeypatch.setenv(runtime.ONEDNN, preset)
    runtime.configure()
    assert os.environ.get(runtime.ONEDNN) == expected


def test_importing_brainmri_tfds_first_turns_onednn_on_in_tensorflow():
    if runtime.platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("oneDNN is set only on x86")
    env = {k: v for k, v in os.environ.items() if k != runtime.ONEDNN}
    code = "import brainmri_tfds; from brainmri_tfds import runtime; print(runtime.onednn_enabled())"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "True", result.stderr[-2000:]


ZEN3 = "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma\n"
XEON = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512vl avx512dq avx512_bf16\n"


@pytest.mark.parametrize("cpuinfo, environ, expected", [
    (ZEN3, {}, True),                                       # an AVX2 CPU
    (XEON, {}, False),                                      # AVX-512
    (XEON, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, True),           # capped below it
    (XEON, {"ONEDNN_MAX_CPU_ISA": "avx512_core_bf16"}, False),
    (XEON, {"DNNL_MAX_CPU_ISA": "SSE41"}, True),            # oneDNN's older name for the cap
    (ZEN3, {"ONEDNN_MAX_CPU_ISA": "ALL"}, True),
    ("", {}, False),                                        # no /proc/cpuinfo: not an x86 we know
    ("processor\t: 0\nFeatures\t: fp asimd sve\n", {}, False),  # ARM
])
def test_onednn_below_avx512(cpuinfo, environ, expected):
    assert runtime.onednn_below_avx512(cpuinfo, environ) is expected


@pytest.mark.parametrize("driver_files, expected", [([], False), (["/dev/nvidia0"], "asked")])
def test_without_a_gpu_driver_tensorflow_is_not_asked(monkeypatch, driver_files, expected):
    """On Linux without a GPU driver TensorFlow cannot see a GPU, and loading it to ask takes seconds."""
    monkeypatch.setattr(runtime.sys, "platform", "linux")
    monkeypatch.setattr(runtime.glob, "glob", lambda pattern: driver_files)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # importing it now raises ImportError
    if expected == "asked":
        with pytest.raises(ImportError):
            runtime.tensorflow_sees_a_gpu()
    else:
        assert runtime.tensorflow_sees_a_gpu() is False
