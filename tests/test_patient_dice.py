"""The validation score the search and training log: the mean over patients of each patient's
Dice, so a patient with a small tumor counts as much as one with a large tumor."""

import numpy as np
import pytest
import tensorflow as tf

from tuning.patient_dice import METRIC, PatientDice


def _slices(masks):
    masks = np.asarray(masks, np.float32)[..., None]
    return tf.data.Dataset.from_tensor_slices((np.zeros_like(masks), masks))


def test_each_patient_counts_once_whatever_the_size_of_the_tumor():
    large, small = np.zeros((3, 8, 8)), np.zeros((3, 8, 8))
    large[0, :6, :6] = 1  # 36 pixels on slice 0 (patient A)
    small[1, :1, :2] = 1  # 2 pixels on slice 1 (patient B)
    truth = large + small
    callback = PatientDice(_slices(truth), [b"A", b"B", b"C"])
    found_large_only = large[..., None]
    # patient A perfect, patient B missed, patient C (no tumor, nothing predicted) perfect
    assert callback.score(found_large_only) == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    false_alarm = truth[..., None].copy()
    false_alarm[2, 0, 0] = 1  # one pixel on the patient without tumor
    assert callback.score(false_alarm) == pytest.approx(2 / 3)


def test_slices_of_one_patient_are_pooled():
    truth = np.zeros((2, 4, 4))
    truth[0, :2, :2] = 1
    truth[1, :2, :2] = 1
    predicted = truth.copy()
    predicted[1] = 0  # half the patient's tumor found
    callback = PatientDice(_slices(truth), [b"A", b"A"])
    assert callback.score(predicted[..., None]) == pytest.approx(2 * 4 / (4 + 8))


def test_the_score_reaches_the_logs_of_every_epoch():
    import keras

    truth = np.zeros((4, 8, 8))
    truth[:, 2:6, 2:6] = 1
    slices = _slices(truth)
    # a model that says "tumor" everywhere and does not learn (learning rate 0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(
        1, 1, activation="sigmoid", kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(10.0))])
    model.compile(keras.optimizers.SGD(learning_rate=0.0), "binary_crossentropy")
    history = model.fit(slices.batch(2), epochs=2, verbose=0,
                        callbacks=[PatientDice(slices, [b"A", b"A", b"B", b"B"])])
    # each patient: 2 slices x 16 tumor pixels of 64, all 128 pixels called: Dice 2 x 32 / (32 + 128) = 0.4
    assert history.history[METRIC] == pytest.approx([0.4, 0.4])


def test_patient_ids_must_match_the_slices():
    with pytest.raises(ValueError, match="patient ids"):
        PatientDice(_slices(np.zeros((3, 4, 4))), [b"A"])
