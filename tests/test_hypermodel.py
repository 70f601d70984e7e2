"""The U-Net builder and hypermodel: defaults, every depth and up-sampling, invalid structures."""

import json

import keras
import keras_tuner
import numpy as np
import pytest

from tuning.hypermodel import UNetHyperModel
from tuning.unet import UNetConfig, build_unet
from tuning.losses import BceDice, DiceScore, IoUScore


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
    assert UNetConfig(**hp.values).changes_from_defaults() == {}
    assert UNetConfig(**{**hp.values, "depth": 3, "loss": "dice"}).changes_from_defaults() == {
        "depth": (3, 4), "loss": ("dice", "bce_dice")}


@pytest.mark.parametrize("depth", [2, 3, 4, 5])
@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
def test_every_depth_and_upsampling_outputs_one_channel(depth, upsampling):
    model = build_unet(image_size=32, channels=1, depth=depth, base_filters=4, upsampling=upsampling)
    output = model(np.zeros((2, 32, 32, 1), np.float32))
    assert output.shape == (2, 32, 32, 1)
    names = [layer.name for layer in model.layers]
    assert f"enc{depth - 1}_conv1" in names and "dec0_conv2" in names


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


@pytest.mark.parametrize("image_size, channels, match", [(100, 3, "divisible"), (16, 3, "divisible"), (64, 0, "channels")])
def test_invalid_structure_is_a_clear_error(image_size, channels, match):
    with pytest.raises(ValueError, match=match):
        UNetHyperModel(image_size=image_size, channels=channels)


def test_config_rejects_unknown_hyperparameters():
    from tuning.runfolder import from_fields

    with pytest.raises(ValueError, match=r"best_hparams.json: unknown keys \['widht'\]"):
        from_fields(UNetConfig, {"depth": 3, "widht": 16}, "best_hparams.json")
    assert from_fields(UNetConfig, {"tumour_share": 0.3}, "old.json").tumor_share == 0.3  # renamed since


def _dice(truth, predicted, metric_class=DiceScore):
    metric = metric_class()
    metric.update_state(np.array(truth, np.float32), np.array(predicted, np.float32))
    return float(metric.result())


def test_dice_score_hand_computed():
    truth = [[1, 1, 0, 0]]
    assert _dice(truth, [[0.9, 0.2, 0.7, 0.1]]) == pytest.approx(2 * 1 / (2 + 2))  # TP 1, |T| 2, |P| 2
    assert _dice(truth, [[0.9, 0.8, 0.0, 0.0]]) == pytest.approx(1.0)
    assert _dice(truth, [[0.0, 0.0, 0.0, 0.0]]) == pytest.approx(0.0)  # one empty
    assert _dice([[0, 0, 0, 0]], [[0.0, 0.4, 0.0, 0.0]]) == pytest.approx(1.0)  # both empty: rule = 1
    assert _dice([[0, 0, 0, 0]], [[0.0, 0.6, 0.0, 0.0]]) == pytest.approx(0.0)


def test_iou_score_hand_computed_and_as_keras_binary_iou():
    truth, predicted = [[1, 1, 0, 0, 1]], [[0.9, 0.2, 0.7, 0.1, 0.6]]
    assert _dice(truth, predicted, IoUScore) == pytest.approx(2 / (2 + 2))  # TP 2, FP 1, FN 1
    keras_iou = keras.metrics.BinaryIoU(target_class_ids=[1])
    keras_iou.update_state(np.array(truth, np.float32), np.array(predicted, np.float32))
    assert _dice(truth, predicted, IoUScore) == pytest.approx(float(keras_iou.result()))
    assert _dice([[0, 0, 0, 0]], [[0.0, 0.4, 0.0, 0.0]], IoUScore) == pytest.approx(1.0)  # both empty: rule = 1


def test_bce_dice_is_cross_entropy_plus_soft_dice_computed_by_hand():
    import math

    truth = np.array([[[[1.0], [0.0]], [[1.0], [0.0]]]], np.float32)
    predicted = np.array([[[[0.8], [0.3]], [[0.6], [0.1]]]], np.float32)
    cross_entropy = -(math.log(0.8) + math.log(1 - 0.3) + math.log(0.6) + math.log(1 - 0.1)) / 4  # 0.2990
    soft_dice = 1 - 2 * (0.8 + 0.6) / (2 + (0.8 + 0.3 + 0.6 + 0.1))  # 1 - 2.8 / 3.8
    assert float(BceDice()(truth, predicted)) == pytest.approx(cross_entropy + soft_dice, rel=1e-4)


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


@pytest.mark.parametrize("flags, expected", [("fpu sse avx512f avx512_bf16", True), ("fpu amx_bf16 amx_tile", True),
                                             ("fpu sse avx2 avx512f", False), ("", False)])
def test_bfloat16_only_where_the_cpu_has_it(flags, expected):
    from tuning.precision import cpu_has_bfloat16

    assert cpu_has_bfloat16(f"processor\t: 0\nflags\t\t: {flags}\n") is expected


def test_cpu_description_names_the_model_and_bfloat16():
    from tuning.precision import cpu_description

    zen3 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma\n"
    assert cpu_description(zen3).startswith("AMD EPYC, ") and cpu_description(zen3).endswith(", no bfloat16")
    xeon = "processor\t: 0\nmodel name\t: Intel Xeon\nflags\t\t: avx512f avx512_bf16 amx_bf16\n"
    assert cpu_description(xeon).endswith(", bfloat16 (AVX512_BF16/AMX)")


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


@pytest.mark.parametrize("ema_momentum", [0.0, 0.9])
def test_kept_model_is_the_one_validation_scored(tmp_path, ema_momentum):
    """With a moving average of the weights, validation, the kept model.keras and the final
    validation loss all use the average, not the raw weights."""
    from tuning.unet import compile_unet
    from tuning.training import read_history, training_callbacks

    rng = np.random.default_rng(0)
    x = rng.random((16, 16, 16, 1), np.float32)
    y = (x > 0.5).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = compile_unet(build_unet(16, 1, depth=1, base_filters=2, dropout=0.0), 1e-2, "bce_dice", ema_momentum)
    model.fit(x, y, batch_size=4, validation_data=(x, y), epochs=3, verbose=0,
              callbacks=training_callbacks(tmp_path, patience=5, ema_momentum=ema_momentum))
    best = json.loads((tmp_path / "model.best.json").read_text())
    assert best["score"] == min(read_history(tmp_path)["val_loss"])
    kept = keras.saving.load_model(tmp_path / "model.keras")
    assert kept.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)["loss"] == pytest.approx(best["score"], rel=1e-4)
    assert (kept.optimizer.use_ema is True) == (ema_momentum > 0)


def test_cosine_schedule_decays_the_learning_rate_over_the_run_and_resumes_on_it(tmp_path):
    """Epoch e trains at 1e-2 x (1 + cos(pi e / 4)) / 2, also after a kill: a rerun restarts from the
    last finished epoch at that epoch's rate."""
    from tuning.unet import compile_unet
    from tuning.training import learning_rate_schedule, read_history, training_callbacks

    x = np.random.default_rng(0).random((8, 16, 16, 1), np.float32)
    y = (x > 0.5).astype(np.float32)

    class KillAfterSecondEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    def fit(extra):
        model = compile_unet(build_unet(16, 1, depth=1, base_filters=2, dropout=0.0), 1e-2, "bce_dice")
        callbacks = training_callbacks(tmp_path, patience=5, schedule=learning_rate_schedule("cosine", 1e-2, 4, 5))
        model.fit(x, y, batch_size=4, validation_data=(x, y), epochs=4, verbose=0, callbacks=callbacks + extra)

    with pytest.raises(KeyboardInterrupt):
        fit([KillAfterSecondEpoch()])
    fit([])
    expected = [1e-2 * (1 + np.cos(np.pi * e / 4)) / 2 for e in range(4)]
    assert read_history(tmp_path)["learning_rate"] == pytest.approx(expected, rel=1e-5)


def test_history_of_a_run_resumed_by_a_newer_version_keeps_its_columns(tmp_path):
    """A run begun without the learning-rate column and resumed with it: rows longer than the header."""
    from tuning.training import read_history

    (tmp_path / "history.csv").write_text("epoch,loss,val_loss\n0,0.9,0.8\n1,0.7,0.6,0.001\n")
    assert read_history(tmp_path) == {"epoch": [0.0, 1.0], "loss": [0.9, 0.7], "val_loss": [0.8, 0.6]}


def test_unknown_learning_rate_schedule_is_refused():
    with pytest.raises(ValueError, match="lr_schedule"):
        UNetConfig(lr_schedule="step")


def test_ema_momentum_must_be_below_one():
    with pytest.raises(ValueError, match="ema_momentum"):
        UNetConfig(ema_momentum=1.0)


def test_an_ensemble_needs_two_models_of_one_input_shape():
    from tuning.ensemble import average_models

    small, large = build_unet(32, 1, depth=2, base_filters=4), build_unet(64, 1, depth=2, base_filters=4)
    with pytest.raises(ValueError, match="at least two"):
        average_models([small])
    with pytest.raises(ValueError, match="different inputs"):
        average_models([small, large])


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


@pytest.mark.parametrize("ema_momentum", [0.0, 0.9])
def test_the_training_step_is_traced_once_per_fit(ema_momentum):
    # A training step that creates the optimizer's variables is traced twice: seconds per fit.
    import tensorflow as tf

    from tuning.unet import compile_unet

    model = compile_unet(build_unet(32, 1, depth=2, base_filters=4), 1e-3, "bce_dice", ema_momentum)
    traced, step = [], model.train_step
    model.train_step = lambda data: traced.append(1) or step(data)
    images = np.random.default_rng(0).random((8, 32, 32, 1), np.float32)
    model.fit(tf.data.Dataset.from_tensor_slices((images, images > 0.9)).batch(4), epochs=2, verbose=0)
    assert len(traced) == 1
