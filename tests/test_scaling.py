"""Scaling out: Beam generation, tf.distribute training, and Keras Tuner's distributed search."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

import brainmri_tfds  # noqa: F401  (registers lgg_mri)
from brainmri_tfds import synthetic

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _examples(data_dir: Path, split: str) -> list[dict]:
    return list(tfds.load("lgg_mri", split=split, data_dir=str(data_dir)).as_numpy_iterator())


@pytest.mark.slow
def test_beam_generation_writes_the_same_examples(tmp_path):
    import apache_beam as beam

    manual_dir = tmp_path / "download"
    synthetic.write_patients(manual_dir, 6, seed=2, slices=(3, 5))
    plain, through_beam = tmp_path / "plain", tmp_path / "beam"
    tfds.builder("lgg_mri", data_dir=str(plain)).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    options = beam.options.pipeline_options.PipelineOptions(["--runner=DirectRunner"])
    tfds.builder("lgg_mri", data_dir=str(through_beam)).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir), beam_options=options))

    for split in ("train", "validation", "test"):
        expected, actual = _examples(plain, split), _examples(through_beam, split)
        assert len(actual) == len(expected) > 0
        for a, b in zip(expected, actual):  # same examples, in the same order
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Two logical CPUs stand in for two GPUs: MirroredStrategy then trains two replicas in one process.
_TWO_CPU_TRAIN = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import train
sys.exit(train.main(sys.argv[1:]))
"""


@pytest.mark.scale
def test_mirrored_training_scales_the_global_batch(synthetic_data_dir, tmp_path):
    out = tmp_path / "run"
    args = ["--dataset", "lgg_mri/synthetic", "--data-dir", synthetic_data_dir, "--image-size", "32",
            "--channels", "flair", "--epochs", "1", "--batch-size", "8", "--strategy", "mirrored", "--out", str(out)]
    command = [sys.executable, "-c", _TWO_CPU_TRAIN, *args]
    result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 replica(s) x batch 8" in result.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["replicas"] == 2 and config["global_batch_size"] == 16 and config["strategy"] == "mirrored"
    assert (out / "model.keras").is_file() and "best_val_dice" in config


@pytest.mark.scale
def test_distributed_search_runs_each_trial_once(search_args, tmp_path):
    command = [sys.executable, str(ROOT / "tuning" / "search.py"), *search_args(2, 1)]
    oracle = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(_free_port())}
    processes = {
        tuner_id: subprocess.Popen(command, cwd=ROOT, env={**ENV, **oracle, "KERASTUNER_TUNER_ID": tuner_id},
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for tuner_id in ("chief", "tuner0", "tuner1")
    }
    logs = {tuner_id: process.communicate(timeout=600)[0] for tuner_id, process in processes.items()}
    for tuner_id, process in processes.items():
        assert process.returncode == 0, f"{tuner_id}:\n{logs[tuner_id][-3000:]}"

    project = tmp_path / "p"
    trials = [json.loads(p.read_text()) for p in sorted(project.glob("trial_*/trial.json"))]
    assert len(trials) == 2 and all(t["status"] == "COMPLETED" for t in trials)
    trained = {tuner_id: sum(" - val_dice: " in line for line in logs[tuner_id].splitlines())
               for tuner_id in ("tuner0", "tuner1")}
    assert sum(trained.values()) == 2, trained  # every trial trained once, by one worker
    assert " - val_dice: " not in logs["chief"]  # the chief only hands out trials
    assert [tuner_id for tuner_id, log in logs.items() if "wrote " in log and "best_hparams.json" in log] == ["chief"]
    best = json.loads((project / "best_hparams.json").read_text())
    assert best["score"] == max(t["score"] for t in trials)
