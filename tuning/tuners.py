"""Which Keras Tuner runs the search, who in a distributed search is a worker, and what the search found."""

from __future__ import annotations

import os
import time

import keras

from brainmri_tfds.settings import DataSettings
from tuning.patient_dice import METRIC
from tuning.runfolder import BestHparams, read_hyperparameters

OBJECTIVE_NAME = METRIC  # mean per-patient Dice on the validation patients, as the product is scored


def make_tuner(name: str, hypermodel, max_trials: int, max_epochs: int, seed: int, directory: str,
               project_name: str, overwrite: bool, hyperparameters=None):
    """The Keras Tuner of that name, maximising the validation patients' mean Dice (the search
    passes `validation_patients` to `UNetHyperModel.fit`); `hyperparameters` holds values fixed
    in advance (the rest are searched)."""
    import keras_tuner

    # Say max explicitly: Keras Tuner guesses the direction from the name only for metrics it knows.
    common = dict(
        objective=keras_tuner.Objective(OBJECTIVE_NAME, direction="max"), seed=seed, directory=directory,
        project_name=project_name, overwrite=overwrite, max_consecutive_failed_trials=2,
        hyperparameters=hyperparameters,
    )
    if name == "hyperband":
        return keras_tuner.Hyperband(hypermodel, max_epochs=max_epochs, factor=3, **common)
    if name == "bayesian":
        return keras_tuner.BayesianOptimization(hypermodel, max_trials=max_trials, **common)
    if name == "random":
        return keras_tuner.RandomSearch(hypermodel, max_trials=max_trials, **common)
    raise ValueError(f"unknown tuner {name!r}")


def is_distributed_worker() -> bool:
    """True in a worker of Keras Tuner's distributed mode (the chief runs the oracle)."""
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in os.environ.get("KERASTUNER_TUNER_ID", "")


def best_trials_table(tuner, limit: int = 5) -> str:
    """The best finished trials, one row each: id, validation patients' mean Dice, hyperparameters."""
    trials = tuner.oracle.get_best_trials(limit)
    if not trials:
        return "no finished trials"
    names = list(trials[0].hyperparameters.values)
    rows = [["trial", OBJECTIVE_NAME, *names]]
    for trial in trials:
        values = [trial.hyperparameters.values.get(n) for n in names]
        score = "failed" if trial.score is None else f"{trial.score:.4f}"
        rows.append([trial.trial_id, score, *[f"{v:.2g}" if isinstance(v, float) else str(v) for v in values]])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows)


def try_defaults_first(tuner) -> None:
    """Makes the search's first new trial the hypermodel's defaults (the configuration `train.py`
    trains without --best), so the winner is never a configuration that scored below them on the
    search's own objective. The tuners draw new values from their oracle's `_random_values` (Keras
    Tuner's own; tests/test_search.py fails if that changes); a rerun that already tried the
    defaults goes on drawing at random."""
    oracle = tuner.oracle
    draw = oracle._random_values

    def defaults_then_random():
        defaults = dict(oracle.hyperparameters.values)
        return draw() if not defaults or oracle._duplicate(defaults) else defaults

    oracle._random_values = defaults_then_random


class TimeBudget(keras.callbacks.Callback):
    """The search's time limit, counted from this object's making: once it is spent no trial starts
    (after `guard(tuner)`; the run's first trial always does), and a trial still running stops at
    the end of its epoch, scored on the epochs it finished. Pass it to `tuner.search` as a callback."""

    def __init__(self, minutes: float):
        super().__init__()
        self.minutes = minutes
        self.deadline = time.monotonic() + 60.0 * minutes

    def spent(self) -> bool:
        return time.monotonic() >= self.deadline

    def on_epoch_end(self, epoch, logs=None):
        if self.spent():
            self.model.stop_training = True

    def guard(self, tuner) -> None:
        """Makes `tuner`'s oracle answer "stop" (Keras Tuner's own way to end `search`) once the
        budget is spent."""
        from keras_tuner.engine.trial import Trial, TrialStatus

        oracle = tuner.oracle
        create = oracle.create_trial
        started = []

        def create_unless_spent(tuner_id):
            if started and self.spent():
                return Trial(oracle.get_space(), status=TrialStatus.STOPPED)
            trial = create(tuner_id)
            started.append(trial.trial_id)
            return trial

        oracle.create_trial = create_unless_spent


def best_result(tuner, data: DataSettings, tuner_name: str) -> BestHparams:
    """The winner, its score and trial id, and the data settings `train.py --best` needs."""
    trial = tuner.oracle.get_best_trials(1)[0]
    # Hyperband adds bookkeeping entries (tuner/epochs, tuner/round ...): not model settings.
    values = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
    architecture, recipe = read_hyperparameters(values, f"trial {trial.trial_id}")
    return BestHparams(architecture, recipe, data, trial.score, OBJECTIVE_NAME, trial.trial_id, tuner_name)
