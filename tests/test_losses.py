"""Training losses and metrics (tuning/losses.py) against hand computations."""

import keras
import numpy as np
import pytest

from tuning.losses import BceDice, BceTversky, DiceScore, IoUScore, make_loss


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


def test_bce_tversky_weighs_a_missed_pixel_more_than_a_false_alarm_computed_by_hand():
    import math

    truth = np.array([[[[1.0], [0.0]], [[1.0], [0.0]]]], np.float32)
    missed = np.array([[[[0.9], [0.1]], [[0.1], [0.1]]]], np.float32)  # TP 1.0, FP 0.2, FN 1.0
    extra = np.array([[[[0.9], [0.9]], [[0.9], [0.1]]]], np.float32)  # TP 1.8, FP 1.0, FN 0.2
    cross_entropy = -(3 * math.log(0.9) + math.log(0.1)) / 4  # the same for both: one pixel 0.1 off its truth
    loss = make_loss("bce_tversky")
    assert float(loss(truth, missed)) == pytest.approx(cross_entropy + 1 - 1.0 / (1.0 + 0.3 * 0.2 + 0.7 * 1.0), rel=1e-5)
    assert float(loss(truth, extra)) == pytest.approx(cross_entropy + 1 - 1.8 / (1.8 + 0.3 * 1.0 + 0.7 * 0.2), rel=1e-5)
    assert float(loss(truth, missed)) > float(loss(truth, extra))
    assert BceTversky.from_config(loss.get_config()).beta == 0.7


@pytest.mark.parametrize("name", ["bce_dice", "bce_tversky"])
def test_a_unet_compiled_with_the_loss_trains_and_loads_back(tmp_path, name):
    from tuning.unet import build_unet, compile_unet

    rng = np.random.default_rng(0)
    images = rng.random((4, 16, 16, 1), np.float32)
    masks = (images > 0.6).astype(np.float32)
    model = compile_unet(build_unet(16, 1, depth=1, base_filters=2, dropout=0.0), 1e-2, name)
    history = model.fit(images, masks, epochs=2, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.loss.name == name
