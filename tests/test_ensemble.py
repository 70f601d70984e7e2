"""Ensembles (tuning/ensemble.py): the models averaged must fit together."""

import pytest

from tuning.unet import build_unet


def test_an_ensemble_needs_two_models_of_one_input_shape():
    from tuning.ensemble import average_models

    small, large = build_unet(32, 1, depth=2, base_filters=4), build_unet(64, 1, depth=2, base_filters=4)
    with pytest.raises(ValueError, match="at least two"):
        average_models([small])
    with pytest.raises(ValueError, match="different inputs"):
        average_models([small, large])
