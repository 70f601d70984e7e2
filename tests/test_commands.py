"""The commands (tuning/commands/, tuning/search.py, tuning/crossval, tuning/predict.py,
tuning/models.py): each answers --help without loading TensorFlow, which takes 5-10 s to start on
a 2-core CPU; their flags' choices come from modules that do not import it."""

import subprocess
import sys

import pytest

COMMANDS = ["tuning.commands.train", "tuning.commands.evaluate", "tuning.search", "tuning.crossval.__main__",
            "tuning.predict", "tuning.models"]


@pytest.mark.parametrize("module", COMMANDS)
def test_help_comes_before_tensorflow_loads(module):
    probe = (f"import sys; from {module} import main\n"
             "try:\n    main(['--help'])\nexcept SystemExit as stop:\n    assert stop.code == 0, stop.code\n"
             "print('LOADED' if 'tensorflow' in sys.modules or 'keras' in sys.modules else 'NOT LOADED')")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout and done.stdout.strip().endswith("NOT LOADED"), done.stdout[-500:]
