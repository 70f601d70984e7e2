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
