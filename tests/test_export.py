"""tuning.export: the SavedModel and the ONNX file give the Keras model's probabilities on phantom
slices, a bfloat16 model included (exported in float32)."""

import json

import numpy as np
import pytest

from brainmri_tfds import synthetic
from brainmri_tfds.settings import DataSettings
from tuning.runfolder import RunConfig
from tuning.unet import build_unet

TOLERANCE = 1e-5  # float32 in, float32 out: the same arithmetic up to kernel order
BFLOAT16_TOLERANCE = 0.05  # the bfloat16 model itself against its float32 export: bfloat16 rounding


@pytest.fixture(scope="module")
def phantom_slices():
    """FLAIR-first phantom slices, as the model takes them at 64x64 (values in [0, 1])."""
    import tensorflow as tf

    images, _ = synthetic.make_patient(np.random.default_rng(0), 6)
    return tf.image.resize(images.astype(np.float32) / 255.0, (64, 64)).numpy()


@pytest.mark.parametrize("precision", ["float32", pytest.param("mixed_bfloat16", marks=pytest.mark.bfloat16)])
def test_exported_models_give_the_keras_probabilities(phantom_slices, tmp_path, precision):
    import keras
    import onnxruntime
    import tensorflow as tf

    from tuning.export import as_float32, main

    keras.utils.set_random_seed(0)
    model = build_unet(64, 3, depth=3, base_filters=8, precision=precision)
    model.save(tmp_path / "model.keras")
    RunConfig(DataSettings("lgg_mri/synthetic", 64, "all"), precision=precision).write(tmp_path)
    assert main(["--model", str(tmp_path / "model.keras")]) == 0

    reference = as_float32(model).predict_on_batch(phantom_slices)
    assert reference.dtype == np.float32 and 0.0 < reference.mean() < 1.0
    loaded = tf.saved_model.load(str(tmp_path / "export" / "saved_model"))
    saved = loaded.serve(tf.constant(phantom_slices)).numpy()
    session = onnxruntime.InferenceSession(str(tmp_path / "export" / "model.onnx"))
    onnx = session.run(None, {session.get_inputs()[0].name: phantom_slices})[0]
    np.testing.assert_allclose(saved, reference, atol=TOLERANCE)
    np.testing.assert_allclose(onnx, reference, atol=TOLERANCE)
    if precision == "mixed_bfloat16":  # the float32 rebuild is the bfloat16 model, up to its rounding
        np.testing.assert_allclose(model.predict_on_batch(phantom_slices), reference, atol=BFLOAT16_TOLERANCE)

    steps = json.loads((tmp_path / "export" / "preprocessing.json").read_text())
    assert steps["input"]["image_size"] == 64 and steps["input"]["channels"] == ["pre-contrast", "FLAIR", "post-contrast"]
    # no inference.json beside the model: the same defaults evaluate.py applies
    assert steps["postprocessing"] == {"threshold": 0.5, "keep_fraction": 1.0, "flip_average": True}
