"""The speed benchmark runs and prints the figures issue readers compare (tiny sizes here)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_speed_benchmark_prints_every_figure(synthetic_data_dir):
    command = [sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--depth", "2", "--base-filters", "4",
               "--image-size", "32", "--channels", "1", "--batch-size", "4", "--steps", "2", "--warmup", "1",
               "--data-dir", synthetic_data_dir]
    result = subprocess.run(command, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("train_images_per_s", "train_images_per_s_pipeline", "predict_images_per_s", "peak_rss_mb"):
        assert figures[key] > 0
    assert figures["precision"] in ("float32", "mixed_bfloat16")
