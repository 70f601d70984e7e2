"""Per-patient Dice on the validation patients after every epoch: the product's own score, as a
value Keras callbacks and Keras Tuner can monitor.

    callback = PatientDice(data.slices(split, shuffle=False), data.slice_patients(split))

adds `val_patient_dice` to each epoch's logs: for every validation patient, the Dice of all their
slices pooled (threshold 0.5, at the model's input size), averaged over the patients; a patient
with no tumor scores 1 when nothing is predicted. Keras' own `val_dice` pools every validation
pixel, so one large tumor outweighs several small ones; the product is scored per patient
(`tuning.evaluation.scoring`). Put the callback before the callbacks that read the value.
"""

from __future__ import annotations

import keras
import numpy as np

METRIC = "val_patient_dice"
BATCH = 32


class PatientDice(keras.callbacks.Callback):
    """Writes METRIC into the epoch's logs, from the model's predictions on `slices`."""

    def __init__(self, slices, patients):
        """`slices`: the validation (image, mask) pairs, unbatched, in a fixed order; `patients`:
        the patient of each, in that order."""
        super().__init__()
        self.images = slices.map(lambda image, mask: image).batch(BATCH).prefetch(2)
        truth = np.stack([mask[..., 0] > 0.5 for _, mask in slices.as_numpy_iterator()])
        if len(truth) != len(patients):
            raise ValueError(f"{len(truth)} validation slices but {len(patients)} patient ids")
        _, self.patient_of = np.unique(np.asarray(patients), return_inverse=True)
        self.truth = truth.reshape(len(truth), -1)
        self.true_area = self.per_patient(self.truth.sum(axis=1))
        self.forward = None

    def per_patient(self, per_slice: np.ndarray) -> np.ndarray:
        return np.bincount(self.patient_of, weights=per_slice)

    def score(self, probabilities: np.ndarray) -> float:
        """Mean per-patient Dice of probabilities [N, S, S, 1] against the validation masks."""
        predicted = probabilities.reshape(len(self.truth), -1) > 0.5
        overlap = self.per_patient(np.logical_and(predicted, self.truth).sum(axis=1))
        total = self.per_patient(predicted.sum(axis=1)) + self.true_area
        return float(np.mean(np.where(total > 0, 2.0 * overlap / np.maximum(total, 1.0), 1.0)))

    def on_train_begin(self, logs=None):
        self.forward = None  # a callback reused for another model must not run the last one's trace

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        from tuning.evaluation.predictor import StreamedPredictor, prediction_streams

        if self.forward is None:  # one traced function; called outside any distribution strategy's replicas
            self.forward = StreamedPredictor(self.model, prediction_streams())
        probabilities = np.concatenate([self.forward.predict_on_batch(batch) for batch in self.images])
        logs[METRIC] = self.score(probabilities)
