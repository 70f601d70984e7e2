"""Training a U-Net configuration into a run folder: safe to kill, resumed when run again.

    record = train_run(run, out, members=1, strategy=strategy)   # run: a tuning.runfolder.RunConfig

Files in a run folder (a member's folder member<i>/ has the same):
    model.keras          the best model so far by validation loss, replaced whole
    model.best.json      which epoch that was, its loss and Dice (so a resumed run keeps comparing)
    config.json          the RunConfig; with the outcome once training has ended
    history.csv          one row per finished epoch (appended across resumes)
    training_curves.png  loss and Dice per epoch
    backup/              Keras BackupAndRestore state; a killed run resumes from the last epoch
    epochs/              epoch_<n>.weights.h5 for every finished epoch n, with --keep-epoch-weights
    tensorboard/         TensorBoard logs
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import keras

from brainmri_tfds import pipeline
from tuning import runfolder
from tuning.patient_dice import METRIC, PatientDice
from tuning.postprocessing import DEFAULT
from tuning.runfolder import RunConfig
from tuning.unet import build_unet, compile_unet, ema_callbacks

# Validation loss, not the thresholded validation Dice, picks the model, cuts the learning rate and
# stops early: an early model that paints blobs can score a high thresholded Dice on a few
# validation patients while its loss is still poor.
MONITOR = "val_loss"


class KeepBestModel(keras.callbacks.Callback):
    """Saves the model whenever `val_loss` falls, replacing `model.keras` whole; the best score
    survives a resume in a JSON file."""

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
        with runfolder.atomic_path(self.path) as partial:
            self.model.save(partial)
        runfolder.write_json(self.record, {"epoch": epoch + 1, "score": self.best, "monitor": MONITOR,
                                           "val_dice": float(logs.get("val_dice", float("nan"))),
                                           METRIC: float(logs.get(METRIC, float("nan")))})


class KeepEpochWeights(keras.callbacks.Callback):
    """Saves each finished epoch's weights as `folder`/epoch_<n>.weights.h5 (n from 1), replaced whole."""

    def __init__(self, folder: str | os.PathLike):
        super().__init__()
        self.folder = Path(folder)

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch_{epoch + 1:03d}.weights.h5"
        partial = self.folder / f".partial-{name}"  # Keras wants the .weights.h5 ending
        self.model.save_weights(partial)
        os.replace(partial, self.folder / name)


def learning_rate_schedule(name: str, learning_rate: float, epochs: int, patience: int) -> keras.callbacks.Callback:
    """The callback that moves the learning rate: "plateau" halves it whenever the validation loss
    has not fallen for `patience` // 2 epochs; "cosine" sets epoch e's (from 0) to `learning_rate` x
    (1 + cos(pi e / `epochs`)) / 2, from the full rate down to nearly 0 in the last epoch. Both
    survive a resume: plateau's rate is in the restored optimizer, cosine's follows the epoch."""
    import math

    if name == "cosine":
        return keras.callbacks.LearningRateScheduler(
            lambda epoch: learning_rate * (1.0 + math.cos(math.pi * epoch / epochs)) / 2.0)
    if name == "plateau":
        return keras.callbacks.ReduceLROnPlateau(monitor=MONITOR, mode="min", factor=0.5,
                                                 patience=max(1, patience // 2), min_lr=1e-6, verbose=1)
    raise ValueError(f"unknown learning-rate schedule {name!r}")


def training_callbacks(out: Path, patience: int, ema_momentum: float = 0.0, patient_dice: PatientDice | None = None,
                       epoch_weights: bool = False,
                       schedule: keras.callbacks.Callback | None = None) -> list[keras.callbacks.Callback]:
    """Best-model keeping, resume, history, TensorBoard, the learning-rate `schedule` (default:
    plateau's, `learning_rate_schedule`) and early stopping, after `patient_dice` (which adds the
    validation patients' mean Dice to the logs) if given, and every epoch's weights in out/epochs/
    if `epoch_weights`; with `ema_momentum`, all but the resume state see the weights' moving
    average."""
    return [
        keras.callbacks.BackupAndRestore(str(out / "backup"), delete_checkpoint=True),  # the raw weights
        *ema_callbacks(ema_momentum),
        *([patient_dice] if patient_dice else []),
        *([KeepEpochWeights(out / "epochs")] if epoch_weights else []),
        KeepBestModel(out / "model.keras"),
        schedule or learning_rate_schedule("plateau", 0.0, 0, patience),  # before the logger: it logs the rate
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(out / "tensorboard")),
        keras.callbacks.EarlyStopping(monitor=MONITOR, mode="min", patience=patience, verbose=1),
    ]


def read_history(out: str | os.PathLike) -> dict[str, list[float]]:
    """history.csv as columns (those of its first epoch: a column that a resume by a newer version
    added without a header is left out); a resumed run's repeated epochs keep their last row."""
    import csv

    rows: dict[int, dict] = {}
    with open(Path(out) / "history.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            rows[int(row["epoch"])] = row
    ordered = [rows[e] for e in sorted(rows)]
    return {key: [float(r[key]) for r in ordered] for key in (ordered[0] if ordered else {})}


def training_batches(run: RunConfig, seed: int):
    """The training split of `run`, reshuffled every epoch, oversampled, augmented and batched."""
    whole_batches = run.replicas > 1  # tf.distribute must not hand a replica an empty share
    return pipeline.batch(run.data.slices(run.splits["train"], shuffle=True, seed=seed), run.global_batch_size,
                          augment=run.augment, seed=seed, drop_remainder=whole_batches,
                          tumor_share=run.recipe.tumor_share, augment_strength=run.recipe.augment_strength,
                          slice_channels=run.data.slice_channels, tumor_weighting=run.recipe.tumor_weighting)


def validation_scoring(run: RunConfig):
    """(batches for Keras' validation pass, the PatientDice callback), both from one prepared
    validation split."""
    split = run.splits["validation"]
    slices = run.data.slices(split, shuffle=False)
    batches = pipeline.batch(slices, run.global_batch_size, drop_remainder=run.replicas > 1)
    return batches, PatientDice(slices, run.data.slice_patients(split))


def fit(run: RunConfig, folder: Path, train, validation, patient_dice: PatientDice,
        strategy, epoch_weights: bool = False) -> RunConfig | None:
    """Trains `run`'s model into `folder` (resuming there), scoring `validation` batches and
    `patient_dice` each epoch (and keeping every epoch's weights if `epoch_weights`); the finished
    RunConfig, or None if interrupted."""
    from tuning.evaluation.figures import training_curves

    folder.mkdir(parents=True, exist_ok=True)
    run.write(folder)
    keras.utils.set_random_seed(run.seed)
    with strategy.scope():
        model = compile_unet(
            build_unet(run.data.image_size, run.data.n_channels, **run.architecture.keywords(), precision=run.precision),
            run.recipe.learning_rate, run.recipe.loss, run.recipe.ema_momentum)
    data = run.data
    print(f"training {model.name} ({model.count_params():,} parameters) on {data.dataset} {data.image_size}px/"
          f"{data.channels}/{data.normalization} normalisation/context {data.context}/crop {data.crop} in "
          f"{run.precision}, {run.replicas} replica(s) x batch {run.recipe.batch_size} -> {folder}", flush=True)
    try:
        model.fit(train, validation_data=validation, epochs=run.epochs, shuffle=False,  # tf.data shuffles
                  callbacks=training_callbacks(folder, run.patience, run.recipe.ema_momentum, patient_dice,
                                               epoch_weights, learning_rate_schedule(
                                                   run.recipe.lr_schedule, run.recipe.learning_rate, run.epochs,
                                                   run.patience)),
                  verbose=2)
    except KeyboardInterrupt:
        return None
    best = runfolder.read_json(folder / "model.best.json", "best-model record")
    done = dataclasses.replace(run, best_epoch=best["epoch"], best_val_loss=best["score"],
                               best_val_dice=best["val_dice"], best_val_patient_dice=best.get(METRIC))
    done.write(folder)
    training_curves(read_history(folder), folder / "training_curves.png")
    print(f"best validation loss {best['score']:.4f} (Dice {best['val_dice']:.4f} pooled, "
          f"{best.get(METRIC, float('nan')):.4f} per patient) at epoch {best['epoch']}; saved {folder / 'model.keras'}")
    return done


def train_run(run: RunConfig, out: Path, members: int, strategy, epoch_weights: bool = False) -> RunConfig | None:
    """Trains `run` into `out`, or `members` models with consecutive seeds into out/member<i>/ and
    their ensemble (probabilities averaged) as out/model.keras. A model already trained with the
    same settings is not trained again. With `epoch_weights`, every epoch's weights are kept too
    (`KeepEpochWeights`). The finished RunConfig, or None if interrupted."""
    from tuning.ensemble import save_ensemble

    folders = [out] if members == 1 else [out / f"member{i}" for i in range(members)]
    validation, patient_dice = validation_scoring(run)
    done = []
    for index, folder in enumerate(folders):
        member = dataclasses.replace(run, seed=run.seed + index)
        name = f"member {index + 1}/{members} (seed {member.seed}): " if members > 1 else ""
        finished = runfolder.finished_training(folder, member)
        if finished:
            print(f"{name}already trained in {folder} (best epoch {finished.best_epoch}): not training it again")
        else:
            print(name, end="")
            finished = fit(member, folder, training_batches(member, member.seed), validation, patient_dice, strategy,
                           epoch_weights)
            if finished is None:
                return None
        done.append(finished)
    if members == 1:
        return done[0]
    save_ensemble(folders, out / "model.keras")
    outcome = [{"folder": f.name, "seed": d.seed, "best_epoch": d.best_epoch, "best_val_loss": d.best_val_loss,
                "best_val_dice": d.best_val_dice, "best_val_patient_dice": d.best_val_patient_dice}
               for f, d in zip(folders, done)]
    ensemble = dataclasses.replace(run, members=outcome)
    ensemble.write(out)
    print(f"saved the ensemble of {members} models (probabilities averaged) as {out / 'model.keras'}")
    return ensemble


def inference_record(out: Path, run: RunConfig) -> runfolder.InferenceChoice:
    """How out/model.keras's probabilities become masks (the fixed defaults), with what they score
    on `run`'s validation patients."""
    from tuning.evaluation.inference import predict_patients, read_slices
    from tuning.evaluation.predictor import for_inference
    from tuning.evaluation.scoring import mean_patient_dice

    model = for_inference(keras.saving.load_model(out / "model.keras", compile=False))
    split = run.splits["validation"]
    volumes = predict_patients(model, read_slices(run.data, split), run.data, DEFAULT.flip_average, progress=False)
    score = mean_patient_dice({p: v.truth_volume for p, v in volumes.items()},
                              {p: DEFAULT.mask(v.probability) for p, v in volumes.items()})
    return runfolder.InferenceChoice(DEFAULT, split, score)
