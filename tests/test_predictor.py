"""Prediction as evaluate.py runs it: batch norm folded, each batch computed in streams, same result;
and a model's LiteRT copy, which gives the same probabilities."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def model():
    from tuning.unet import build_unet

    model = build_unet(image_size=32, channels=2, depth=2, base_filters=4)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # batch-norm statistics away from 0 and 1, so that folding does something
        if layer.name.endswith("_bn1"):
            layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=layer.moving_variance.shape))
    return model


@pytest.mark.parametrize("streams", [1, 2, 3])
def test_streamed_prediction_is_the_models_own_for_every_batch_size(model, streams):
    from tuning.evaluation.predictor import StreamedPredictor

    predictor = StreamedPredictor(model, streams)
    for size in (1, 2, 5):  # smaller than, equal to and not a multiple of the streams
        images = np.random.default_rng(size).random((size, 32, 32, 2), np.float32)
        predicted = predictor.predict_on_batch(images)
        assert predicted.shape == (size, 32, 32, 1)
        np.testing.assert_allclose(predicted, model.predict_on_batch(images), atol=1e-6)
    assert predictor._predict.experimental_get_tracing_count() == 1  # one graph for every batch size


@pytest.mark.parametrize("streams", [1, 2])
def test_each_stream_runs_its_own_copy_of_the_network(model, streams):
    from tuning.evaluation.predictor import StreamedPredictor

    predictor = StreamedPredictor(model, streams)
    graph = predictor._predict.get_concrete_function().graph
    sigmoids = [op for op in graph.get_operations() if op.type == "Sigmoid"]
    assert len(sigmoids) == streams  # one output layer per part, independent branches of one graph


def test_for_inference_folds_the_batch_norms_and_refuses_zero_streams(model):
    from tuning.evaluation.predictor import StreamedPredictor, for_inference
    from tuning.unet import FoldedBatchNorm

    predictor = for_inference(model, streams=2)
    assert predictor.streams == 2
    assert any(isinstance(layer, FoldedBatchNorm) for layer in predictor.model.layers)
    images = np.random.default_rng(0).random((4, 32, 32, 2), np.float32)
    np.testing.assert_allclose(predictor.predict_on_batch(images), model.predict_on_batch(images), atol=1e-5)
    with pytest.raises(ValueError, match="streams"):
        StreamedPredictor(model, 0)


@pytest.fixture(scope="module")
def litert_copies(model, tmp_path_factory):
    """The folded model's LiteRT copy, with float32 and with float16 weights (float16 -> path)."""
    from tuning.export import write_litert
    from tuning.unet import fold_batch_norm

    folder, folded = tmp_path_factory.mktemp("litert"), fold_batch_norm(model)
    return {float16: write_litert(folded, folder / f"{float16}.tflite", float16) for float16 in (False, True)}


@pytest.mark.parametrize("float16", [False, True])
def test_the_litert_copy_predicts_what_the_keras_model_does(model, litert_copies, float16):
    from tuning.evaluation.predictor import LiteRTPredictor

    predictor = LiteRTPredictor(litert_copies[float16])
    assert predictor.input_shape == (None, 32, 32, 2) and predictor.output_shape == (None, 32, 32, 1)
    for size in (1, 5, 2):  # every new batch size re-plans, and a size seen before still predicts right
        images = np.random.default_rng(size).random((size, 32, 32, 2), np.float32)
        np.testing.assert_allclose(predictor.predict_on_batch(images), model.predict_on_batch(images),
                                   atol=2e-3 if float16 else 1e-5)


def test_float16_halves_the_litert_copy_and_a_foreign_file_is_one_line(model, litert_copies, tmp_path):
    from tuning.evaluation.predictor import LiteRTPredictor

    weights = sum(int(np.prod(w.shape)) for w in model.weights if "moving" not in w.path)  # trained ones
    assert litert_copies[False].stat().st_size > 4 * weights > litert_copies[True].stat().st_size > 2 * weights
    foreign = tmp_path / "foreign.tflite"
    foreign.write_bytes(b"not a flat buffer" * 10)
    with pytest.raises(ValueError, match="foreign.tflite: not a loadable LiteRT model") as raised:
        LiteRTPredictor(foreign)
    assert "\n" not in str(raised.value)
