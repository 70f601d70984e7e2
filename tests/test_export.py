"""tuning.export: the SavedModel, the ONNX file and the LiteRT file give the Keras model's
probabilities on phantom slices, a bfloat16 model included (exported in float32)."""

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

    from tuning.evaluation.predictor import LiteRTPredictor
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
    litert = LiteRTPredictor(tmp_path / "export" / "model.tflite").predict_on_batch(phantom_slices)
    np.testing.assert_allclose(saved, reference, atol=TOLERANCE)
    np.testing.assert_allclose(onnx, reference, atol=TOLERANCE)
    np.testing.assert_allclose(litert, reference, atol=TOLERANCE)
    if precision == "mixed_bfloat16":  # the float32 rebuild is the bfloat16 model, up to its rounding
        np.testing.assert_allclose(model.predict_on_batch(phantom_slices), reference, atol=BFLOAT16_TOLERANCE)

    steps = json.loads((tmp_path / "export" / "preprocessing.json").read_text())
    assert steps["input"]["image_size"] == 64 and steps["input"]["channels"] == ["pre-contrast", "FLAIR", "post-contrast"]
    # no inference.json beside the model: the same defaults evaluate.py applies
    assert steps["postprocessing"] == {"threshold": 0.5, "keep_fraction": 1.0, "flip_average": True}


def _levels(volume, percentile):
    """preprocessing.json's per-patient normalisation: per channel, the first value 1..255 whose
    cumulative count of non-zero values reaches percentile/100 of them."""
    levels = []
    for channel in range(volume.shape[-1]):
        counts = np.bincount(volume[..., channel].ravel(), minlength=256)[1:]
        total = counts.sum()
        levels.append(float(np.argmax(np.cumsum(counts) >= total * percentile / 100) + 1) if total else 1.0)
    return np.array(levels)


def _square(volume, floor, min_side):
    """preprocessing.json's brain crop: the square about the rows and columns holding a value >= floor x the maximum."""
    brightest = volume.max(axis=(0, 3))
    rows = np.flatnonzero(brightest.max(axis=1) >= floor * brightest.max())
    cols = np.flatnonzero(brightest.max(axis=0) >= floor * brightest.max())
    side = min(256, max(min_side, rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1))
    top = int(np.clip(round((rows[0] + rows[-1] + 1) / 2 - side / 2), 0, 256 - side))
    left = int(np.clip(round((cols[0] + cols[-1] + 1) / 2 - side / 2), 0, 256 - side))
    return top, left, side


def test_onnx_following_preprocessing_json_gives_evaluates_masks(tmp_path):
    """As the README tells a user without this project: preprocessing.json's parameters, numpy,
    OpenCV and onnxruntime alone give the masks evaluate.py gives (prediction: one shared path)."""
    import cv2
    import keras
    import onnxruntime
    from scipy import ndimage

    from tuning.evaluation.inference import predict_patients
    from tuning.export import main
    from tuning.postprocessing import DEFAULT

    image = keras.Input((64, 64, 3))
    model = keras.Model(image, keras.layers.Conv2D(1, 1, activation="sigmoid")(image))
    model.layers[-1].set_weights([np.array([0.0, 40.0, 0.0], np.float32).reshape(1, 1, 3, 1),
                                  np.array([-28.0], np.float32)])  # tumor where the normalised FLAIR is bright
    model.save(tmp_path / "model.keras")
    data = DataSettings("lgg_mri/synthetic", 64, "all")  # patient normalisation, brain crop: the defaults
    RunConfig(data).write(tmp_path)
    assert main(["--model", str(tmp_path / "model.keras"), "--formats", "onnx"]) == 0
    steps = json.loads((tmp_path / "export" / "preprocessing.json").read_text())
    session = onnxruntime.InferenceSession(str(tmp_path / "export" / "model.onnx"))

    images, _ = synthetic.make_patient(np.random.default_rng(3), 8)
    size = steps["input"]["image_size"]
    levels = _levels(images, steps["per_patient"]["normalization"]["percentile"])
    crop = steps["per_patient"]["crop"]
    top, left, side = _square(images, crop["floor"], crop["min_side"])
    scaled = np.clip(np.round(images * (255.0 / levels)), 0, 255)[:, top:top + side, left:left + side]
    slices = np.stack([cv2.resize(s.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA) for s in scaled])
    slices = (np.round(np.clip(slices, 0, 255)) / 255.0).astype(np.float32)

    def predict(batch):
        return session.run(None, {session.get_inputs()[0].name: batch})[0][..., 0]

    post = steps["postprocessing"]
    probability = (predict(slices) + predict(np.ascontiguousarray(slices[:, :, ::-1]))[:, :, ::-1]) / 2 \
        if post["flip_average"] else predict(slices)
    native = np.zeros((len(images), 256, 256), np.float32)
    native[:, top:top + side, left:left + side] = [cv2.resize(p, (side, side), interpolation=cv2.INTER_LINEAR)
                                                   for p in probability]
    mask = native > post["threshold"]
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if count and post["keep_fraction"] == 1.0:
        mask = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1

    slices_in = [("p", k, image, None) for k, image in enumerate(images)]
    ours = DEFAULT.mask(predict_patients(model, slices_in, data, DEFAULT.flip_average, progress=False)["p"].probability)
    assert post == DEFAULT.to_json() and ours.sum() > 100
    overlap = 2 * (mask & ours).sum() / (mask.sum() + ours.sum())
    assert overlap > 0.97, overlap  # OpenCV's area resize stands in for TensorFlow's antialiased bilinear one
