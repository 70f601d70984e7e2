"""SIGKILL in the middle of `tfds build` and `tuning/search.py`, then the same command again.

(The same for `train.py` is in test_train_evaluate.py.) These start real processes and take about
a minute together; they are marked slow and run in CI.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow_datasets as tfds

import brainmri_tfds  # noqa: F401  (registers lgg_mri)
from brainmri_tfds import layout, synthetic

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _kill_when(process: subprocess.Popen, ready, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not ready():
        assert process.poll() is None, "the process ended before the moment to kill it"
        assert time.time() < deadline, "the moment to kill never came"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()


def _visible_datasets(data_dir: Path) -> list[Path]:
    """Folders tfds.load would read: those with a dataset_info.json that are not TFDS work folders."""
    return [p.parent for p in data_dir.rglob("dataset_info.json") if "incomplete" not in str(p)]


@pytest.mark.slow
def test_killed_tfds_build_leaves_nothing_visible_and_reruns(tmp_path):
    manual_dir = tmp_path / "download"
    synthetic.write_patients(manual_dir, 8, seed=1)
    expected_keys = {s.key for s in layout.list_slices(layout.open_source(manual_dir))}
    data_dir = tmp_path / "tfds"
    command = ["tfds", "build", str(ROOT / "brainmri_tfds" / "lgg_mri"), "--manual_dir", str(manual_dir),
               "--data_dir", str(data_dir)]

    process = subprocess.Popen(command, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def writing_examples():  # killed once TFDS has started writing the first split's shards
        assert not _visible_datasets(data_dir), "a dataset became visible before the build finished"
        return any("incomplete" in str(p) for p in data_dir.rglob("*") if p.is_file())

    _kill_when(process, writing_examples)
    assert not _visible_datasets(data_dir)
    with pytest.raises((tfds.core.DatasetNotFoundError, AssertionError)):
        tfds.load("lgg_mri", data_dir=str(data_dir), download=False)

    rerun = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    keys = set()
    for split in ("train", "validation", "test"):
        for example in tfds.load("lgg_mri", split=split, data_dir=str(data_dir)).as_numpy_iterator():
            keys.add(f"{example['patient_id'].decode()}_{example['slice_index']}")
    assert keys == expected_keys  # every slice, once


@pytest.mark.slow
def test_killed_search_resumes_keeping_finished_trials(search_args, tmp_path):
    command = [sys.executable, str(ROOT / "tuning" / "search.py"), *search_args(2, 1)]
    project = tmp_path / "p"
    process = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def first_trial_finished():
        trial = project / "trial_0" / "trial.json"
        try:
            return json.loads(trial.read_text())["status"] == "COMPLETED"
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return False

    _kill_when(process, first_trial_finished)
    finished = project / "trial_0" / "trial.json"
    stamp, score = finished.stat().st_mtime_ns, json.loads(finished.read_text())["score"]

    rerun = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    trials = [json.loads(p.read_text()) for p in sorted(project.glob("trial_*/trial.json"))]
    assert [t["status"] for t in trials] == ["COMPLETED"] * 2, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert finished.stat().st_mtime_ns == stamp and trials[0]["score"] == score  # not redone
    best = json.loads((project / "best_hparams.json").read_text())
    assert best["score"] == max(t["score"] for t in trials)


@pytest.mark.slow
def test_search_killed_as_a_trial_starts_runs_that_trial(search_args, tmp_path):
    # Keras Tuner writes a new trial's trial.json, then the oracle.json that records it: a kill in
    # between leaves a trial the reloaded oracle never runs, stuck as RUNNING.
    from tuning import search

    assert search.main(search_args(1, 1)) == 0
    finished = tmp_path / "p" / "trial_0" / "trial.json"
    started = {**json.loads(finished.read_text()), "trial_id": "1", "status": "RUNNING", "score": None}
    (tmp_path / "p" / "trial_1").mkdir()
    (tmp_path / "p" / "trial_1" / "trial.json").write_text(json.dumps(started))
    stamp = finished.stat().st_mtime_ns

    assert search.main(search_args(2, 1)) == 0  # a new process's reload of the search folder
    trials = [json.loads(p.read_text()) for p in sorted((tmp_path / "p").glob("trial_*/trial.json"))]
    assert [(t["trial_id"], t["status"]) for t in trials] == [("0", "COMPLETED"), ("1", "COMPLETED")]
    assert finished.stat().st_mtime_ns == stamp  # kept, not run again


@pytest.mark.slow
def test_search_killed_as_a_trial_ends_does_not_redo_it(search_args, tmp_path):
    # Keras Tuner saves oracle.json with the finished trial still listed as running, then takes it
    # off the list: a kill in between leaves this oracle.json, and a reloaded oracle reruns the trial.
    from tuning import search

    assert search.main(search_args(1, 1)) == 0
    oracle_file, finished = tmp_path / "p" / "oracle.json", tmp_path / "p" / "trial_0" / "trial.json"
    oracle = json.loads(oracle_file.read_text())
    trial_id = json.loads(finished.read_text())["trial_id"]
    oracle["ongoing_trials"], oracle["end_order"] = {"tuner0": trial_id}, []
    oracle_file.write_text(json.dumps(oracle))
    stamp = finished.stat().st_mtime_ns

    assert search.main(search_args(1, 1)) == 0  # a new process's reload of the search folder
    assert finished.stat().st_mtime_ns == stamp  # kept, not run again
    assert not (tmp_path / "p" / "trial_1").exists()
    assert json.loads(oracle_file.read_text())["end_order"] == [trial_id]
