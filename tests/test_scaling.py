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
