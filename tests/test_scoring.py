"""Held-out scores against hand-computed 4x4 cases, including the empty-mask rules."""

import math

import numpy as np
import pytest

from tuning.evaluation import scoring


def _mask(rows):
    return np.array(rows, bool)


TRUTH = _mask([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]])
PRED = _mask([[0, 0, 0, 0], [0, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
EMPTY = np.zeros((4, 4), bool)


def test_confusion_and_overlap_by_hand():
    assert scoring.confusion(TRUTH, PRED) == (2, 1, 2, 11)
    assert scoring.dice(2, 1, 2) == pytest.approx(4 / 7)
    assert scoring.iou(2, 1, 2) == pytest.approx(2 / 5)


def test_empty_mask_rules():
    assert scoring.dice(*scoring.confusion(EMPTY, EMPTY)[:3]) == 1.0  # both empty
    assert scoring.dice(*scoring.confusion(TRUTH, EMPTY)[:3]) == 0.0  # one empty
    assert scoring.dice(*scoring.confusion(EMPTY, PRED)[:3]) == 0.0
    assert math.isnan(scoring.hd95(TRUTH, EMPTY))  # no boundary on one side: left out
    assert math.isnan(scoring.hd95(EMPTY, EMPTY))


def test_hd95_of_a_shifted_square():
    truth = np.zeros((20, 20), bool)
    truth[5:10, 5:10] = True
    shifted = np.roll(truth, 3, axis=1)
    assert scoring.hd95(truth, shifted) == pytest.approx(3.0, abs=0.01)
    assert scoring.hd95(truth, truth) == 0.0


def test_summary_by_hand():
    # Patient a: slice 1 TRUTH vs PRED, slice 2 empty in both. Patient b: tumor missed entirely.
    truth = {"a": np.stack([TRUTH, EMPTY]), "b": np.stack([TRUTH, EMPTY])}
    predicted = {"a": np.stack([PRED, EMPTY]), "b": np.stack([EMPTY, EMPTY])}
    report = scoring.summarize(truth, predicted)
    assert report["per_patient"]["a"]["dice"] == pytest.approx(4 / 7)
    assert report["per_patient"]["b"]["dice"] == 0.0
    assert report["volume_dice_mean"] == pytest.approx(2 / 7)
    assert report["volume_dice_median"] == pytest.approx(2 / 7)
    assert report["slice_dice_mean"] == pytest.approx((4 / 7 + 0) / 2)  # both-empty slices left out
    assert report["precision"] == pytest.approx(2 / 3)
    assert report["recall"] == pytest.approx(2 / 8)
    assert report["specificity"] == pytest.approx(1 - 1 / (64 - 8))
    assert report["pixel_accuracy"] == pytest.approx((64 - 1 - 6) / 64)
    assert report["tumor_detection"] == {"sensitivity": 0.5, "specificity": 1.0}
    assert report["n_patients"] == 2 and report["n_slices"] == 4
    assert report["n_patients_hd95"] == 1


def test_patient_without_tumor_predicted_clean_scores_one():
    report = scoring.summarize({"c": np.stack([EMPTY, EMPTY])}, {"c": np.stack([EMPTY, EMPTY])})
    assert report["volume_dice_mean"] == 1.0
    assert math.isnan(report["slice_dice_mean"])


def test_mean_interval_holds_the_mean_and_narrows_with_more_patients():
    rng = np.random.default_rng(0)
    widths = []
    for values in (rng.uniform(size=10), rng.uniform(size=400)):
        low, high = scoring.mean_interval(values)
        assert low < values.mean() < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 3  # 40 times the patients: about a sixth of the width
    assert scoring.mean_interval([0.8, 0.8, 0.8]) == (0.8, 0.8)  # nothing varies
    assert all(math.isnan(v) for v in scoring.mean_interval([0.5]))
    report = scoring.summarize({"a": np.stack([TRUTH]), "b": np.stack([TRUTH])}, {"a": np.stack([PRED]),
                                                                               "b": np.stack([EMPTY])})
    low, high = report["volume_dice_mean_ci95"]
    assert 0.0 <= low <= report["volume_dice_mean"] <= high <= 4 / 7
