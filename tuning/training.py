"""Training one U-Net configuration: callbacks that keep the best model safely, and resume.

Files in the run folder `out`:
    model.keras          the best model so far by validation loss, replaced atomically
    model.best.json      which epoch that was, its loss and Dice (so a resumed run keeps comparing)
    history.csv          one row per finished epoch (appended across resumes)
    backup/              Keras BackupAndRestore state; a killed run resumes from the last epoch
    tensorboard/         TensorBoard logs
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras

from tuning.hypermodel import ema_callbacks
from tuning.settings import write_json

# Validation loss, not validation Dice, picks the model, cuts the learning rate and stops early: on
# real patients the thresholded Dice of an epoch-1 model that paints blobs can top every later
# epoch (seen: 0.73 at epoch 1, then early stopping kept that model, test Dice 0.18), while the
# loss falls steadily.
MONITOR = "val_loss"


class KeepBestModel(keras.callbacks.Callback):
    """Saves the model whenever `val_loss` falls, writing a temporary file then renaming it,
    so `model.keras` is never half-written; the best score survives a resume in a JSON file."""

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        self.path = Path(path)
        self.record = self.path.with_suffix(".best.json")
        self.best = json.loads(self.record.read_text())["score"] if self.record.is_file() else float("inf")

    def on_epoch_end(self, epoch, logs=None):
        score = (logs or {}).get(MONITOR)
        if score is None or score >= self.best:
            return
        self.best = float(score)
        partial = self.path.with_name(f".{self.path.stem}.partial.keras")
        self.model.save(partial)
        os.replace(partial, self.path)
        write_json(self.record, {"epoch": epoch + 1, "score": self.best, "monitor": MONITOR,
                                 "val_dice": float(logs.get("val_dice", float("nan")))})


def training_callbacks(out: Path, patience: int, ema_momentum: float = 0.0) -> list[keras.callbacks.Callback]:
    """Best-model keeping, resume, history, TensorBoard, LR reduction and early stopping; with
    `ema_momentum`, all but the resume state see the weights' moving average."""
    return [
        keras.callbacks.BackupAndRestore(str(out / "backup"), delete_checkpoint=True),  # the raw weights
        *ema_callbacks(ema_momentum),
        KeepBestModel(out / "model.keras"),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(out / "tensorboard")),
        keras.callbacks.ReduceLROnPlateau(monitor=MONITOR, mode="min", factor=0.5, patience=max(1, patience // 2),
                                          min_lr=1e-6, verbose=1),
        keras.callbacks.EarlyStopping(monitor=MONITOR, mode="min", patience=patience, verbose=1),
    ]


def read_history(out: str | os.PathLike) -> dict[str, list[float]]:
    """history.csv as columns; a resumed run's repeated epochs keep their last row."""
    import csv

    rows: dict[int, dict] = {}
    with open(Path(out) / "history.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            rows[int(row["epoch"])] = row
    ordered = [rows[e] for e in sorted(rows)]
    return {key: [float(r[key]) for r in ordered] for key in (ordered[0] if ordered else {})}
