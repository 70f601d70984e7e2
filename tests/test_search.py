"""tuning/search.py: a tiny random search on synthetic data, its JSON, and resuming it."""

import json
from pathlib import Path

import pytest

from tuning import search


@pytest.mark.slow
def test_search_writes_best_hparams_and_resumes(search_args, tmp_path, synthetic_data_dir, capsys):
    assert search.main(search_args(1, 1)) == 0  # widths 4 and 8 searched
    assert "differs from train.py's defaults in base_filters 4 (default 16), batch_size 32 (default 16)" in (
        capsys.readouterr().out)
    best = json.loads((tmp_path / "p" / "best_hparams.json").read_text())
    assert best["data"] == {"dataset": "lgg_mri/synthetic", "image_size": 32, "channels": "flair",
                            "normalization": "patient", "context": 0, "crop": "brain",
                            "data_dir": str(Path(synthetic_data_dir))}
    assert best["objective"] == "val_patient_dice"
    winner = json.loads((tmp_path / "p" / f"trial_{best['trial_id']}" / "trial.json").read_text())
    assert best["score"] == pytest.approx(winner["score"])  # the winning trial's own validation score
    assert best["hyperparameters"]["batch_size"] == 32
    assert set(best["hyperparameters"]) >= {"depth", "base_filters", "loss", "learning_rate", "upsampling"}
    assert best["hyperparameters"]["base_filters"] == 4  # the first trial takes the smallest width given
    first = json.loads((tmp_path / "p" / "trial_0" / "trial.json").read_text())["hyperparameters"]["values"]
    defaults = {"depth": 4, "batch_norm": True, "dropout": 0.1, "upsampling": "transpose", "learning_rate": 1e-3,
                "loss": "bce_dice", "tumor_share": 0.5}  # the defaults train.py uses without --best
    assert {k: first[k] for k in defaults} == defaults
    first_trial = tmp_path / "p" / "trial_0" / "trial.json"
    stamp = first_trial.stat().st_mtime_ns

    assert search.main(search_args(2, 1)) == 0  # same search, one more trial allowed
    trials = sorted(p.name for p in (tmp_path / "p").glob("trial_*"))
    assert trials == ["trial_0", "trial_1"]
    assert first_trial.stat().st_mtime_ns == stamp  # the finished trial was not redone
    assert (tmp_path / "p" / "tensorboard").is_dir()


def test_missing_dataset_gives_the_build_command(tmp_path, capsys):
    code = search.main(["--dataset", "lgg_mri/synthetic", "--data-dir", str(tmp_path), "--directory", str(tmp_path)])
    assert code == 2
    assert "tfds build lgg_mri --imports brainmri_tfds --config synthetic" in capsys.readouterr().err


def test_keras_tuner_state_files_are_replaced_whole(tmp_path):
    from keras_tuner.src import utils

    from tuning.tuner_state import atomic_state_files

    path = tmp_path / "oracle.json"
    path.write_text('{"old": 1}')
    inode = path.stat().st_ino
    with atomic_state_files():
        utils.save_json(str(path), {"new": 2})
    assert json.loads(path.read_text()) == {"new": 2}
    assert path.stat().st_ino != inode  # a new file renamed over the old, never the old one truncated
    assert [p.name for p in tmp_path.iterdir()] == ["oracle.json"]
    inode = path.stat().st_ino
    utils.save_json(str(path), {"after": 3})  # outside, Keras Tuner's own writer again
    assert path.stat().st_ino == inode and json.loads(path.read_text()) == {"after": 3}


@pytest.mark.slow
def test_a_spent_time_budget_ends_the_search_with_the_epochs_finished(search_args, tmp_path, capsys):
    assert search.main(search_args(3, 3) + ["--time-budget", "0.001"]) == 0  # spent within the first epoch
    trials = [json.loads(p.read_text()) for p in sorted((tmp_path / "p").glob("trial_*/trial.json"))]
    assert [t["status"] for t in trials] == ["COMPLETED"]  # no second trial started
    assert len(trials[0]["metrics"]["metrics"]["val_patient_dice"]["observations"]) == 1  # stopped after epoch 1
    assert "time budget (0.001 minutes) is spent" in capsys.readouterr().out
    assert (tmp_path / "p" / "best_hparams.json").is_file()


def test_time_budget_must_not_be_negative(search_args, capsys):
    with pytest.raises(SystemExit):
        search.main(search_args(1, 1) + ["--time-budget", "-1"])
    assert "--time-budget" in capsys.readouterr().err
