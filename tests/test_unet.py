"""The U-Net (tuning/unet.py): every depth and up-sampling, invalid structures, saving in safe mode, bfloat16, batch norm fused, in parts and folded."""

import json

import keras
import numpy as np
import pytest

from tuning.hypermodel import UNetHyperModel
from tuning.unet import build_unet


@pytest.mark.parametrize("depth", [2, 3, 4, 5])
@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
def test_every_depth_and_upsampling_outputs_one_channel(depth, upsampling):
    model = build_unet(image_size=32, channels=1, depth=depth, base_filters=4, upsampling=upsampling)
    output = model(np.zeros((2, 32, 32, 1), np.float32))
    assert output.shape == (2, 32, 32, 1)
    names = [layer.name for layer in model.layers]
    assert f"enc{depth - 1}_conv1" in names and "dec0_conv2" in names


@pytest.mark.parametrize("image_size, channels, match", [(100, 3, "divisible"), (16, 3, "divisible"), (64, 0, "channels")])
def test_invalid_structure_is_a_clear_error(image_size, channels, match):
    with pytest.raises(ValueError, match=match):
        UNetHyperModel(image_size=image_size, channels=channels)


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
def test_model_saves_and_loads_in_safe_mode(tmp_path, upsampling):
    model = build_unet(image_size=32, channels=3, depth=2, base_filters=4, upsampling=upsampling)
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.Lambda)]
    from tuning.unet import compile_unet

    compile_unet(model, 1e-3, "bce_dice")
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(0).random((1, 32, 32, 3), np.float32)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
    json.dumps(loaded.get_config())


@pytest.mark.bfloat16
def test_bfloat16_unet_outputs_float32_probabilities(tmp_path):
    model = build_unet(image_size=32, channels=1, depth=2, base_filters=4, precision="mixed_bfloat16")
    assert model.get_layer("enc0_conv1").compute_dtype == "bfloat16"
    assert model.get_layer("enc0_conv1").variable_dtype == "float32"  # weights stay float32
    x = np.random.default_rng(0).random((2, 32, 32, 1), np.float32)
    out = model(x)
    assert keras.backend.standardize_dtype(out.dtype) == "float32" and 0.0 <= float(np.min(out)) and float(np.max(out)) <= 1.0
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    assert loaded.get_layer("enc0_conv1").compute_dtype == "bfloat16"


@pytest.mark.parametrize("precision", ["float32", pytest.param("mixed_bfloat16", marks=pytest.mark.bfloat16)])
def test_fused_batch_norm_matches_keras_batch_norm(precision):
    import numpy as np

    from tuning.unet import FusedBatchNormalization

    inputs = np.random.default_rng(0).normal(2.0, 3.0, (4, 8, 8, 5)).astype("float32")
    fused = FusedBatchNormalization(momentum=0.9, dtype=precision)
    plain = keras.layers.BatchNormalization(momentum=0.9, dtype=precision)
    fused.build(inputs.shape)
    plain.build(inputs.shape)
    # Inference uses the moving variance, which the fused kernel updates with the unbiased batch
    # variance (256/255 of Keras' here): outputs differ by about 0.2% then.
    for training, tolerance in ((True, 1e-4), (True, 1e-4), (False, 1e-2)):
        tolerance = max(tolerance, 3e-2 if precision == "mixed_bfloat16" else 0.0)
        a = np.asarray(fused(inputs, training=training), "float32")
        b = np.asarray(plain(inputs, training=training), "float32")
        assert np.abs(a - b).max() < tolerance * max(1.0, np.abs(b).max())
    assert np.allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), atol=1e-3)
    assert np.allclose(fused.moving_variance.numpy(), plain.moving_variance.numpy(), rtol=2e-2)


def test_batch_norm_in_parts_matches_the_fused_kernel(tmp_path):
    """The float32 path chosen where oneDNN's batch norm is slow (CPUs without AVX-512): same outputs,
    gradients and moving statistics as the fused kernel, in training and inference."""
    import tensorflow as tf

    from tuning.unet import FusedBatchNormalization

    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.normal(2.0, 3.0, (4, 8, 8, 24)).astype("float32"))
    upstream = tf.constant(rng.normal(0.0, 1.0, inputs.shape).astype("float32"))
    gamma, beta = rng.uniform(0.5, 1.5, 24).astype("float32"), np.linspace(-1.0, 1.0, 24, dtype="float32")
    layers = {name: FusedBatchNormalization(momentum=0.9, implementation=name) for name in ("fused", "parts")}
    results = {}
    for name, layer in layers.items():
        layer.build(inputs.shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs, training=True)
        gradients = tape.gradient(outputs, [inputs, layer.gamma, layer.beta], output_gradients=upstream)
        layer(inputs, training=True)  # a second step moves the statistics again
        results[name] = [outputs, *gradients, layer.moving_mean, layer.moving_variance, layer(inputs, training=False)]
    for fused, parts in zip(results["fused"], results["parts"]):
        fused, parts = np.asarray(fused), np.asarray(parts)
        assert np.abs(fused - parts).max() <= 1e-4 * max(1.0, np.abs(fused).max())
    # the choice is saved with the layer
    model = keras.Sequential([keras.Input((8, 8, 24)), layers["parts"]])
    model.save(tmp_path / "m.keras")
    assert keras.saving.load_model(tmp_path / "m.keras").layers[0].implementation == "parts"


def test_batch_norm_implementation_is_checked():
    from tuning.unet import FusedBatchNormalization

    with pytest.raises(ValueError, match="implementation must be one of"):
        FusedBatchNormalization(implementation="fast")
    with pytest.raises(ValueError, match="float32 only"):
        FusedBatchNormalization(implementation="parts", dtype="mixed_bfloat16")


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
def test_folded_batch_norm_predicts_as_the_model_does(upsampling):
    import keras

    from tuning.ensemble import average_models
    from tuning.unet import FoldedBatchNorm, fold_batch_norm

    rng = np.random.default_rng(0)
    model = build_unet(32, 3, depth=2, base_filters=4, upsampling=upsampling)
    for layer in model.layers:  # statistics far from the initial 0 and 1, as after training
        if isinstance(layer, keras.layers.BatchNormalization):
            for weight, low, high in ((layer.gamma, 0.5, 2), (layer.beta, -0.5, 0.5),
                                      (layer.moving_mean, -1, 1), (layer.moving_variance, 0.2, 3)):
                weight.assign(rng.uniform(low, high, weight.shape).astype(np.float32))
    images = rng.random((3, 32, 32, 3), dtype=np.float32)
    folded = fold_batch_norm(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    assert sum(isinstance(layer, FoldedBatchNorm) for layer in folded.layers) == 2 * (2 * 2 + 1)
    np.testing.assert_allclose(folded.predict_on_batch(images), model.predict_on_batch(images), atol=1e-5)
    pair = average_models([model, build_unet(32, 3, depth=2, base_filters=4, upsampling=upsampling)])
    np.testing.assert_allclose(fold_batch_norm(pair).predict_on_batch(images), pair.predict_on_batch(images), atol=1e-5)
