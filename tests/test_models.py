"""Shipping and packing models (tuning/models.py): several runs averaged into one model, weights
stored in float16 read back into float32 with the same masks, runs that cannot be averaged refused."""

import json
import zipfile

import keras
import numpy as np
import pytest

from brainmri_tfds.settings import DataSettings
from tuning import models
from tuning.runfolder import RunConfig


def _run(folder, bias: float, channels: str = "all", size: int = 32):
    """A run folder whose 'U-Net' is one convolution: sigmoid(2 x FLAIR + bias)."""
    inputs = 3 if channels == "all" else 1
    model = keras.Sequential([keras.Input((size, size, inputs), name="image"),
                              keras.layers.Conv2D(1, 1, activation="sigmoid", name="mask")])
    kernel = np.zeros((1, 1, inputs, 1), np.float32)
    kernel[0, 0, inputs // 2, 0] = 2.0
    model.layers[-1].set_weights([kernel, np.array([bias], np.float32)])
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    RunConfig(DataSettings("lgg_mri/synthetic", size, channels)).write(folder)
    (folder / "inference.json").write_text(json.dumps({"settings": {"threshold": 0.4}}))
    return folder


def _probability(folder, images):
    return keras.saving.load_model(folder / "model.keras", compile=False).predict(images, verbose=0)[..., 0]


def test_several_runs_ship_as_their_average_in_float16(tmp_path):
    first, second = _run(tmp_path / "a", -1.0), _run(tmp_path / "b", 1.0)
    images = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    flair = images[..., 1]
    expected = (1 / (1 + np.exp(-(2 * flair - 1))) + 1 / (1 + np.exp(-(2 * flair + 1)))) / 2  # by hand

    assert models.main(["--pack", str(first), str(second), str(tmp_path / "both.brainmri")]) == 0
    both = models.unpack(tmp_path / "both.brainmri")
    np.testing.assert_allclose(_probability(both, images), expected, atol=1e-6)
    assert json.loads((both / "inference.json").read_text())["settings"]["threshold"] == 0.4  # the first run's
    assert RunConfig.read(both).data.data_dir is None

    assert models.main(["--pack", str(first), str(second), str(tmp_path / "half.brainmri"), "--float16"]) == 0
    half = models.unpack(tmp_path / "half.brainmri")
    assert keras.saving.load_model(half / "model.keras", compile=False).weights[0].dtype == "float32"
    np.testing.assert_allclose(_probability(half, images), expected, atol=2e-3)
    assert _stored_dtypes(both) == {"float32"} and _stored_dtypes(half) == {"float16"}


def _stored_dtypes(folder) -> set[str]:
    """The dtypes of the weights inside a saved .keras file."""
    import io

    import h5py

    found = set()
    weights = zipfile.ZipFile(folder / "model.keras").read(models.WEIGHTS_FILE)
    with h5py.File(io.BytesIO(weights), "r") as stored:
        stored.visititems(lambda name, item: found.add(str(item.dtype)) if isinstance(item, h5py.Dataset) else None)
    return found


def test_litert_only_goes_with_ship(capsys):
    with pytest.raises(SystemExit):
        models.main(["--pack", "run", "x.brainmri", "--litert-only"])
    assert "--litert-only goes with --ship" in capsys.readouterr().err


def test_runs_that_prepare_their_input_differently_are_not_averaged(tmp_path, capsys):
    three, flair = _run(tmp_path / "three", 0.0), _run(tmp_path / "flair", 0.0, channels="flair")
    assert models.main(["--pack", str(three), str(flair), str(tmp_path / "x.brainmri")]) == 2
    assert "cannot be averaged" in capsys.readouterr().err and not (tmp_path / "x.brainmri").exists()


@pytest.mark.parametrize("argv", [["--pack", "only-one"], ["--ship", "only-one"]])
def test_a_run_and_where_to_write_are_both_needed(argv, capsys):
    with pytest.raises(SystemExit):
        models.main(argv)
    assert "give one run folder or more" in capsys.readouterr().err
