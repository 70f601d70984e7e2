"""The Keras Tuner hypermodel: its defaults are train.py's, and the values it searches are those given."""

import keras_tuner
import pytest

from tuning.hypermodel import UNetHyperModel
from tuning.runfolder import read_hyperparameters
from tuning.recipe import changes_from_defaults


def test_default_hyperparameter_values():
    hp = keras_tuner.HyperParameters()
    UNetHyperModel(image_size=64, channels=3).build(hp)
    assert hp.values == {
        "depth": 4,
        "base_filters": 16,
        "batch_norm": True,
        "dropout": 0.1,
        "upsampling": "transpose",
        "learning_rate": 1e-3,
        "loss": "bce_dice",
        "batch_size": 16,
        "tumor_share": 0.5,
        "tumor_weighting": "uniform",
        "augment_strength": 1.0,
        "ema_momentum": 0.0,
    }


def test_the_searchs_default_trial_is_what_train_py_trains_without_best():
    hp = keras_tuner.HyperParameters()
    UNetHyperModel(image_size=64, channels=3).build(hp)
    assert changes_from_defaults(*read_hyperparameters(hp.values, "trial")) == {}
    changed = read_hyperparameters({**hp.values, "depth": 3, "loss": "dice"}, "trial")
    assert changes_from_defaults(*changed) == {"depth": (3, 4), "loss": ("dice", "bce_dice")}


def test_fixed_values_override_defaults():
    hp = keras_tuner.HyperParameters()
    hp.Fixed("depth", 2)
    hp.Fixed("base_filters", 8)
    model = UNetHyperModel(image_size=32, channels=1).build(hp)
    assert model.name == "unet_d2_f8"


def test_searched_depths_are_those_given():
    hp = keras_tuner.HyperParameters()
    UNetHyperModel(image_size=32, channels=1, depths=(2, 3), base_filters=(4,)).build(hp)
    depth = next(h for h in hp.space if h.name == "depth")
    assert (depth.min_value, depth.max_value, hp.values["depth"]) == (2, 3, 3)  # the default 4 is out: the nearest


def test_searched_widths_are_those_given():
    hp = keras_tuner.HyperParameters()
    UNetHyperModel(image_size=32, channels=1, base_filters=(64, 32)).build(hp)
    assert hp.values["base_filters"] == 32  # the default width 16 is not among them: the smallest given
    assert next(h for h in hp.space if h.name == "base_filters").values == [32, 64]
    with pytest.raises(ValueError, match="base_filters"):
        UNetHyperModel(image_size=32, channels=1, base_filters=())
