"""Shared fixtures: small synthetic datasets built once per test session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory):
    """A TFDS data_dir holding the built `lgg_mri/synthetic` dataset."""
    import tensorflow_datasets as tfds

    import brainmri_tfds  # noqa: F401

    data_dir = str(tmp_path_factory.mktemp("tfds"))
    tfds.builder("lgg_mri/synthetic", data_dir=data_dir).download_and_prepare()
    return data_dir
