"""Training losses and metrics (tuning/losses.py) against hand computations."""

import keras
import numpy as np
import pytest

from tuning.losses import BceDice, DiceScore, IoUScore


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
