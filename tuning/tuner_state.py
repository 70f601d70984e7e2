"""Keras Tuner's project files, made safe to kill: a search killed at any moment resumes with every
finished trial kept, none of them run again.

    with atomic_state_files():
        tuner = keras_tuner.Hyperband(...)           # reloads the project when it exists
        keep_finished_trials_on_resume(tuner)
        tuner.search(...)

Four gaps in Keras Tuner (1.4) that a kill falls into, found by
tests/test_interruptions.py::test_killed_search_resumes_keeping_finished_trials:

- It writes oracle.json, tuner0.json and trial.json in place: a kill while one is being written
  leaves it empty, and the rerun fails to parse it. `atomic_state_files` writes each to a
  temporary file and renames it over the old one, so a reader finds the old file or the new one.
- It writes the tuner's state (tuner0.json) only once the first trial has ended, after that
  trial's trial.json, and without that file a rerun reloads nothing and starts afresh.
  `keep_finished_trials_on_resume` saves it before any trial.
- Its oracle saves oracle.json at a trial's end while still listing the trial as running, and a
  reloaded oracle queues every running trial to run again. `keep_finished_trials_on_resume`
  takes the trials whose trial.json says they finished off that queue.
- A new trial's trial.json is written just before oracle.json records the trial: a kill in between
  leaves a trial the reloaded oracle loads but never runs (its status stays RUNNING), while it
  draws the same values again under the next number. `keep_finished_trials_on_resume` forgets
  such a trial, so it is drawn again under its own number and its files are written anew.
"""

from __future__ import annotations

import contextlib
import json

from tuning.runfolder import write_text


def _save_json_atomically(path, obj) -> str:
    """Keras Tuner's `utils.save_json` (same arguments and result), replacing the file whole."""
    text = json.dumps(obj)
    write_text(path, text)
    return text


@contextlib.contextmanager
def atomic_state_files():
    """Inside, Keras Tuner writes its JSON state files (local paths) by write-then-rename.

    Keras Tuner reads `utils.save_json` from its module at each call; that attribute is swapped for
    the duration and put back after. Remote paths (gs://...) keep Keras Tuner's own writer."""
    from keras_tuner.src import utils

    original = utils.save_json

    def save_json(path, obj):
        return original(path, obj) if "://" in str(path) else _save_json_atomically(path, obj)

    utils.save_json = save_json
    try:
        yield
    finally:
        utils.save_json = original


def keep_finished_trials_on_resume(tuner, distributed_worker: bool = False) -> None:
    """Saves the tuner's state now and takes finished trials off its oracle's retry queue (see the
    module's docstring). A distributed worker keeps no state (the chief's oracle does): nothing to do.
    (`trials`, `start_order`, `_retry_queue` and `end_order` are Keras Tuner's own; tests/test_interruptions.py fails if they change.)"""
    if distributed_worker:
        return
    oracle = tuner.oracle
    for trial_id in [t for t in oracle.trials if t not in oracle.start_order]:  # unknown to oracle.json
        del oracle.trials[trial_id]
    finished = [t for t in oracle._retry_queue if oracle.trials[t].status in ("COMPLETED", "FAILED")]
    oracle._retry_queue[:] = [t for t in oracle._retry_queue if t not in finished]
    oracle.end_order.extend(t for t in finished if t not in oracle.end_order)
    tuner.save()
