"""Training-time losses and metrics for binary masks (Keras). Held-out scoring lives in `tuning.evaluation.scoring`.

Shapes: `y_true`, `y_pred` are `[batch, H, W, 1]`, masks in {0, 1}, predictions in [0, 1].

- Losses: Keras' own binary cross-entropy and `keras.losses.Dice` (soft Dice over the whole
  batch), `BceDice`, their sum, and `BceTversky`, cross-entropy plus a soft Tversky loss that
  weighs missed tumor pixels more than false alarms (against masks painted too small; Salehi et
  al. 2017). Keras' own `tversky` is not used: its `alpha` weighs the false negatives and its
  `beta` the false positives, the other way round from its documentation and the paper.
- `DiceScore` and `IoUScore`: Dice (2 TP / (2 TP + FP + FN)) and IoU (TP / (TP + FP + FN)) of the
  thresholded prediction, accumulated over every pixel of an epoch. Empty-mask rule: when truth
  and prediction are both empty over everything seen, the score is 1.0 (nothing to find, nothing
  found). Both count with sums, not with Keras' `BinaryIoU`, whose confusion matrix is built with
  a slow scatter.
"""

from __future__ import annotations

import keras
from keras import ops

from tuning.recipe import LOSS_NAMES


@keras.saving.register_keras_serializable(package="brainmri")
class BceDice(keras.losses.Loss):
    """Binary cross-entropy plus soft Dice loss (both over the batch)."""

    def __init__(self, name: str = "bce_dice", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred))
        return bce + keras.losses.dice(y_true, y_pred)


@keras.saving.register_keras_serializable(package="brainmri")
class BceTversky(keras.losses.Loss):
    """Binary cross-entropy plus the soft Tversky loss 1 - TP / (TP + alpha FP + beta FN), both
    over the batch; beta > alpha makes a missed tumor pixel cost more than a false alarm."""

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, name: str = "bce_tversky", **kwargs):
        super().__init__(name=name, **kwargs)
        self.alpha, self.beta = alpha, beta

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred))
        true_positives = ops.sum(y_true * y_pred)
        false_positives = ops.sum((1.0 - y_true) * y_pred)
        false_negatives = ops.sum(y_true * (1.0 - y_pred))
        index = true_positives / (true_positives + self.alpha * false_positives + self.beta * false_negatives
                                  + keras.backend.epsilon())
        return bce + 1.0 - index

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta}


def make_loss(name: str) -> keras.losses.Loss:
    """The loss called `name`: one of LOSS_NAMES."""
    if name == "bce":
        return keras.losses.BinaryCrossentropy(name="bce")
    if name == "dice":
        return keras.losses.Dice(name="dice_loss")
    if name == "bce_dice":
        return BceDice()
    if name == "bce_tversky":
        return BceTversky()
    raise ValueError(f"loss must be one of {LOSS_NAMES}, got {name!r}")


class _OverlapScore(keras.metrics.Metric):
    """True positives and errors (FP + FN) of predictions thresholded at `threshold`, over all pixels seen."""

    def __init__(self, threshold: float = 0.5, name: str = "overlap", **kwargs):
        super().__init__(name=name, **kwargs)
        self.threshold = threshold
        self.true_positives = self.add_variable(shape=(), initializer="zeros", name="tp")
        self.errors = self.add_variable(shape=(), initializer="zeros", name="fp_fn")

    def update_state(self, y_true, y_pred, sample_weight=None):
        truth = ops.cast(ops.greater(ops.cast(y_true, "float32"), 0.5), "float32")
        predicted = ops.cast(ops.greater(ops.cast(y_pred, "float32"), self.threshold), "float32")
        tp = ops.sum(truth * predicted)
        self.true_positives.assign_add(tp)
        self.errors.assign_add(ops.sum(truth) + ops.sum(predicted) - 2.0 * tp)

    def _ratio(self, overlap):
        """overlap / (overlap + errors); 1.0 when nothing was found and nothing was there."""
        denominator = overlap + self.errors
        return ops.where(denominator > 0, overlap / ops.maximum(denominator, 1.0), 1.0)

    def reset_state(self):
        self.true_positives.assign(0.0)
        self.errors.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


@keras.saving.register_keras_serializable(package="brainmri")
class DiceScore(_OverlapScore):
    """Dice of predictions thresholded at `threshold`, over all pixels seen; 1.0 when both are empty."""

    def __init__(self, threshold: float = 0.5, name: str = "dice", **kwargs):
        super().__init__(threshold=threshold, name=name, **kwargs)

    def result(self):
        return self._ratio(2.0 * self.true_positives)


@keras.saving.register_keras_serializable(package="brainmri")
class IoUScore(_OverlapScore):
    """IoU (Jaccard) of predictions thresholded at `threshold`, over all pixels seen; 1.0 when both are empty."""

    def __init__(self, threshold: float = 0.5, name: str = "iou", **kwargs):
        super().__init__(threshold=threshold, name=name, **kwargs)

    def result(self):
        return self._ratio(self.true_positives)


def training_metrics(threshold: float = 0.5) -> list[keras.metrics.Metric]:
    """Dice and IoU (tumor class) for `model.compile`; logged as `dice`/`iou` and `val_dice`/`val_iou`."""
    return [
        DiceScore(threshold=threshold, name="dice"),
        IoUScore(threshold=threshold, name="iou"),
    ]
