"""tuning/search.py: a tiny random search on synthetic data, its JSON, and resuming it."""

import json

import pytest

from tuning import search


@pytest.mark.slow
def test_search_writes_best_hparams_and_resumes(search_args, tmp_path):
    widths = ["--base-filters", "4", "8"]  # searched instead of the default 16 and 32
    assert search.main(search_args(1, 1) + widths) == 0
    best = json.loads((tmp_path / "p" / "best_hparams.json").read_text())
    assert best["data"] == {"dataset": "lgg_mri/synthetic", "image_size": 32, "channels": "flair",
                            "normalization": "patient"}
    assert best["objective"] == "val_dice" and 0.0 <= best["score"] <= 1.0
    assert best["hyperparameters"]["batch_size"] == 32
    assert set(best["hyperparameters"]) >= {"depth", "base_filters", "loss", "learning_rate", "upsampling"}
    assert best["hyperparameters"]["base_filters"] == 4  # the first trial takes the smallest width given
    first_trial = tmp_path / "p" / "trial_0" / "trial.json"
    stamp = first_trial.stat().st_mtime_ns

    assert search.main(search_args(2, 1) + widths) == 0  # same search, one more trial allowed
    trials = sorted(p.name for p in (tmp_path / "p").glob("trial_*"))
    assert trials == ["trial_0", "trial_1"]
    assert first_trial.stat().st_mtime_ns == stamp  # the finished trial was not redone
    assert (tmp_path / "p" / "tensorboard").is_dir()


def test_missing_dataset_gives_the_build_command(tmp_path, capsys):
    code = search.main(["--dataset", "lgg_mri/synthetic", "--data-dir", str(tmp_path), "--directory", str(tmp_path)])
    assert code == 2
    assert "tfds build lgg_mri --imports brainmri_tfds --config synthetic" in capsys.readouterr().err
