"""train.py and evaluate.py end to end on synthetic data: files, resume, report, predictions."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import evaluate
import train
from brainmri_tfds import synthetic

ROOT = Path(__file__).resolve().parents[1]
REPORT_FIELDS = {
    "volume_dice_mean", "volume_dice_mean_ci95", "volume_dice_median", "volume_dice_std", "slice_dice_mean", "iou",
    "precision", "recall", "specificity", "hd95_mean", "pixel_accuracy", "tumor_detection", "n_patients", "n_slices",
    "per_patient",
}


def _train_args(data_dir, out, epochs=1):
    return ["--dataset", "lgg_mri/synthetic", "--data-dir", data_dir, "--image-size", "32", "--channels", "flair",
            "--epochs", str(epochs), "--batch-size", "32", "--out", str(out)]


@pytest.fixture(scope="module")
def trained(synthetic_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert train.main([*_train_args(synthetic_data_dir, out), "--tumor-share", "0.5", "--tumor-weighting", "area",
                       "--augment-strength", "2", "--ema-momentum", "0.9", "--lr-schedule", "cosine"]) == 0
    return out


@pytest.mark.slow
def test_one_epoch_writes_model_config_history_and_curves(trained, synthetic_data_dir):
    config = json.loads((trained / "config.json").read_text())
    assert config["data"] == {"dataset": "lgg_mri/synthetic", "image_size": 32, "channels": "flair",
                              "normalization": "patient", "context": 0, "crop": "brain",
                              "data_dir": str(Path(synthetic_data_dir))}
    assert config["hyperparameters"]["depth"] == 4 and config["seed"] == 0
    assert config["hyperparameters"]["tumor_share"] == 0.5 and config["hyperparameters"]["augment_strength"] == 2
    assert config["hyperparameters"]["tumor_weighting"] == "area"
    assert config["hyperparameters"]["ema_momentum"] == 0.9 and config["hyperparameters"]["lr_schedule"] == "cosine"
    assert {"tensorflow", "keras"} <= set(config["versions"])
    assert (trained / "model.keras").stat().st_size > 0
    assert {"val_dice", "val_patient_dice"} <= set((trained / "history.csv").read_text().splitlines()[0].split(","))
    assert cv2.imread(str(trained / "training_curves.png")) is not None
    assert not list(trained.glob(".*partial*"))


@pytest.mark.slow
def test_evaluate_needs_only_the_model(trained, synthetic_data_dir, tmp_path):
    code = evaluate.main(["--model", str(trained / "model.keras"), "--data-dir", synthetic_data_dir,
                          "--out", str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert REPORT_FIELDS <= set(report)
    assert report["n_patients"] == 2
    assert report["volume_dice_mean"] == pytest.approx(np.mean([p["dice"] for p in report["per_patient"].values()]))
    low, high = report["volume_dice_mean_ci95"]
    assert 0.0 <= low <= report["volume_dice_mean"] <= high <= 1.0
    assert set(report["tumor_detection"]) == {"sensitivity", "specificity"}
    assert cv2.imread(str(tmp_path / "dice_per_patient.png")) is not None
    overlays = list((tmp_path / "overlays").glob("*.png"))
    assert len(overlays) >= 3 and all(cv2.imread(str(p)) is not None for p in overlays)

    model = str(trained / "model.keras")  # an ensemble of the model with itself scores as the model alone
    assert evaluate.main(["--model", model, model, "--data-dir", synthetic_data_dir, "--out", str(tmp_path / "two")]) == 0
    pair = json.loads((tmp_path / "two" / "report.json").read_text())
    assert pair["model"] == [model, model] and pair["n_patients"] == 2
    assert pair["volume_dice_mean"] == pytest.approx(report["volume_dice_mean"], abs=1e-3)


@pytest.mark.slow
def test_evaluate_finds_the_data_the_model_was_trained_on(trained, tmp_path, capsys):
    assert evaluate.main(["--model", str(trained / "model.keras"), "--out", str(tmp_path / "eval")]) == 0  # no --data-dir
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["n_patients"] == 2

    moved = tmp_path / "moved"  # the same model, its config.json naming a data_dir that no longer holds the data
    moved.mkdir()
    (moved / "model.keras").write_bytes((trained / "model.keras").read_bytes())
    config = json.loads((trained / "config.json").read_text())
    config["data"]["data_dir"] = str(tmp_path / "gone")
    (moved / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert evaluate.main(["--model", str(moved / "model.keras")]) == 2
    error = capsys.readouterr().err
    assert f"not built in {tmp_path / 'gone'}" in error and "the one config.json records" in error
    assert "Traceback" not in error


@pytest.mark.slow
def test_members_train_an_ensemble_that_a_rerun_keeps(synthetic_data_dir, tmp_path, capsys):
    import keras
    import numpy as np

    out = tmp_path / "ensemble"
    args = [*_train_args(synthetic_data_dir, out), "--members", "2", "--seed", "3"]
    assert train.main(args) == 0
    config = json.loads((out / "config.json").read_text())
    assert [(m["folder"], m["seed"]) for m in config["members"]] == [("member0", 3), ("member1", 4)]
    for member in config["members"]:
        assert json.loads((out / member["folder"] / "config.json").read_text())["seed"] == member["seed"]
    assert (out / "inference.json").is_file() and not list(out.glob(".*partial*"))

    members = [keras.saving.load_model(out / f"member{i}" / "model.keras", compile=False) for i in (0, 1)]
    ensemble = keras.saving.load_model(out / "model.keras", compile=False, safe_mode=True)
    images = np.random.default_rng(0).random((4, 32, 32, 1), dtype=np.float32)
    alone = [m.predict_on_batch(images) for m in members]
    assert not np.allclose(alone[0], alone[1], atol=1e-3)  # two seeds, two models
    np.testing.assert_allclose(ensemble.predict_on_batch(images), (alone[0] + alone[1]) / 2, atol=1e-5)
    assert evaluate.main(["--model", str(out / "model.keras"), "--data-dir", synthetic_data_dir, "--overlays", "0",
                          "--out", str(tmp_path / "eval")]) == 0

    history = (out / "member1" / "history.csv").read_text()
    capsys.readouterr()
    assert train.main(args) == 0  # both members finished: neither is trained again
    assert capsys.readouterr().out.count("not training it again") == 2
    assert (out / "member1" / "history.csv").read_text() == history


@pytest.mark.slow
@pytest.mark.parametrize("with_masks", [True, False])
def test_evaluate_input_folder(trained, tmp_path, with_masks):
    scans = tmp_path / "scans"
    patients = synthetic.write_patients(scans, 1, seed=9, slices=(4, 4))
    if not with_masks:
        for mask in scans.rglob("*_mask.tif"):
            mask.unlink()
    out = tmp_path / "out"
    assert evaluate.main(["--model", str(trained / "model.keras"), "--input", str(scans), "--out", str(out)]) == 0
    if with_masks:
        assert json.loads((out / "report.json").read_text())["n_slices"] == 4
    else:
        masks = sorted((out / "predictions").glob("*_pred_mask.png"))
        assert len(masks) == 4 and masks[0].name.startswith(patients[0])
        image = cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED)
        assert image.shape == (256, 256) and set(image.ravel()) <= {0, 255}
        assert cv2.imread(str(out / f"{patients[0]}.png")) is not None  # the quick look, as for NIfTI
        row = (out / "volumes.csv").read_text().splitlines()[1].split(",")
        assert row[0] == patients[0] and row[2] == "" and int(row[3]) <= 4  # no voxel size: no mL


def _model_beside_config(folder, model, channels="flair"):
    folder.mkdir(exist_ok=True)
    path = folder / "model.keras"
    model.save(path)
    (folder / "config.json").write_text(json.dumps({"data": {"dataset": "lgg_mri", "image_size": 32, "channels": channels}}))
    return path


def test_evaluate_missing_or_corrupt_model(tmp_path, capsys):
    assert evaluate.main(["--model", str(tmp_path / "nope.keras")]) == 2
    assert "no such model file" in capsys.readouterr().err
    bad = tmp_path / "model.keras"
    bad.write_bytes(b"not a zip")
    (tmp_path / "config.json").write_text(json.dumps({"data": {"dataset": "lgg_mri", "image_size": 32, "channels": "all"}}))
    assert evaluate.main(["--model", str(bad)]) == 2
    assert "not a loadable brainmri model" in capsys.readouterr().err


def test_evaluate_foreign_model(tmp_path, capsys):
    import keras

    classifier = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
    path = _model_beside_config(tmp_path / "foreign", classifier)
    assert evaluate.main(["--model", str(path)]) == 2
    error = capsys.readouterr().err
    assert str(path) in error and "not a brainmri U-Net" in error and error.count("\n") == 1


def test_evaluate_refuses_code_inside_a_model(tmp_path, capsys):
    import keras

    inputs = keras.Input((32, 32, 1))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 0 + 1)(inputs))  # code, not weights
    path = _model_beside_config(tmp_path / "lambda", model)
    assert evaluate.main(["--model", str(path)]) == 2
    error = capsys.readouterr().err
    assert "not a loadable brainmri model" in error and "safe_mode" in error and error.count("\n") == 1


def test_evaluate_model_with_other_channels(trained, tmp_path, capsys):
    import keras

    model = keras.saving.load_model(trained / "model.keras", compile=False, safe_mode=True)
    path = _model_beside_config(tmp_path / "mismatch", model, channels="all")  # config says 3 channels
    assert evaluate.main(["--model", str(path)]) == 2
    error = capsys.readouterr().err
    assert "(None, 32, 32, 1)" in error and "3 channel(s)" in error


@pytest.mark.slow
def test_context_and_crop_train_and_score_a_2_5d_model_of_the_brain(synthetic_data_dir, tmp_path):
    import keras

    out = tmp_path / "ctx"
    assert train.main([*_train_args(synthetic_data_dir, out), "--context", "1", "--crop", "brain"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["context"] == 1 and config["data"]["crop"] == "brain"
    model = keras.saving.load_model(out / "model.keras", compile=False, safe_mode=True)
    assert model.input_shape == (None, 32, 32, 3)  # FLAIR of slices i-1, i, i+1
    assert evaluate.main(["--model", str(out / "model.keras"), "--data-dir", synthetic_data_dir, "--overlays", "0",
                          "--out", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["n_patients"] == 2
    assert report["volume_dice_mean"] == pytest.approx(np.mean([p["dice"] for p in report["per_patient"].values()]))


@pytest.mark.slow
@pytest.mark.parametrize("script", ["train", "search"])
def test_training_slices_are_reshuffled_whatever_the_split_is_called(script, synthetic_data_dir, tmp_path,
                                                                     monkeypatch):
    from brainmri_tfds import pipeline
    from tuning import search

    asked = {}
    make_dataset = pipeline.make_dataset

    class BothAsked(Exception):
        """Raised once both splits were asked for: nothing after that needs to run."""

    def recording(split, **kwargs):
        asked[split] = kwargs["shuffle"]
        if len(asked) == 2:
            raise BothAsked
        return make_dataset(split, **kwargs)

    monkeypatch.setattr(pipeline, "make_dataset", recording)  # DataSettings.slices looks it up when called
    splits = ["--train-split", "train+test", "--validation-split", "validation"]  # as a cross-validation names folds
    with pytest.raises(BothAsked):
        if script == "train":
            train.main([*_train_args(synthetic_data_dir, tmp_path / "r"), *splits])
        else:
            search.main(["--dataset", "lgg_mri/synthetic", "--data-dir", synthetic_data_dir, "--image-size", "32",
                         "--channels", "flair", "--tuner", "random", "--max-trials", "1", "--max-epochs", "1",
                         "--batch-size", "32", "--directory", str(tmp_path), *splits])
    assert asked["train+test"] is True and not asked["validation"]


@pytest.mark.parametrize("context", ["-1", "5"])
def test_context_out_of_range_is_refused(synthetic_data_dir, tmp_path, context, capsys):
    with pytest.raises(SystemExit) as exit_:
        train.main([*_train_args(synthetic_data_dir, tmp_path / "r"), "--context", context])
    assert exit_.value.code == 2 and "context must be 0 to 4" in capsys.readouterr().err


def test_train_without_dataset_gives_the_build_command(tmp_path, capsys):
    assert train.main(["--dataset", "lgg_mri/synthetic", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "tfds build lgg_mri --imports brainmri_tfds --config synthetic" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_evaluate_input_without_slices(trained, tmp_path, capsys):
    assert evaluate.main(["--model", str(trained / "model.keras"), "--input", str(tmp_path)]) == 2
    assert "No Kaggle LGG slices found" in capsys.readouterr().err


@pytest.mark.slow
def test_killed_training_resumes_from_the_last_finished_epoch(synthetic_data_dir, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, str(ROOT / "train.py"), *_train_args(synthetic_data_dir, out, epochs=3)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history, deadline = out / "history.csv", time.time() + 240
    while time.time() < deadline and (not history.exists() or len(history.read_text().splitlines()) < 2):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = len(history.read_text().splitlines()) - 1
    assert 1 <= finished < 3, "the run should be killed mid-way"
    assert (out / "model.keras").is_file()  # the best model so far survives the kill

    resumed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    first_epoch = int(resumed.stdout.split("Epoch ")[1].split("/")[0])
    assert first_epoch >= finished + 1 > 1  # continued, did not start again at epoch 1
    epochs = [line.split(",")[0] for line in history.read_text().splitlines()[1:]]
    assert sorted(set(epochs), key=int) == ["0", "1", "2"]


def test_flair_only_scores_as_if_pre_and_post_contrast_were_flair(synthetic_data_dir, tmp_path):
    """A stand-in that reads only pre-contrast, scored --flair-only, sees what one reading FLAIR sees."""
    import keras

    from brainmri_tfds.settings import DataSettings
    from tuning.runfolder import RunConfig

    def stand_in(folder, channel):
        image = keras.Input((32, 32, 3))
        model = keras.Model(image, keras.layers.Conv2D(1, 1, activation="sigmoid")(image))
        kernel = np.zeros((1, 1, 3, 1), np.float32)
        kernel[0, 0, channel, 0] = 40.0
        model.layers[-1].set_weights([kernel, np.array([-20.0], np.float32)])
        folder.mkdir()
        model.save(folder / "model.keras")
        RunConfig(DataSettings("lgg_mri/synthetic", 32, "all", synthetic_data_dir)).write(folder)
        return folder / "model.keras"

    pre, flair = stand_in(tmp_path / "pre", 0), stand_in(tmp_path / "flair", 1)
    assert evaluate.main(["--model", str(pre), "--flair-only", "--overlays", "0"]) == 0
    assert evaluate.main(["--model", str(flair), "--overlays", "0"]) == 0
    assert evaluate.main(["--model", str(pre), "--overlays", "0"]) == 0
    only = json.loads((tmp_path / "pre" / "eval-test-flair-only" / "report.json").read_text())
    read_flair = json.loads((tmp_path / "flair" / "eval-test" / "report.json").read_text())
    read_pre = json.loads((tmp_path / "pre" / "eval-test" / "report.json").read_text())
    assert only["flair_only"] and only["per_patient"] == read_flair["per_patient"]
    assert read_pre["per_patient"] != read_flair["per_patient"]  # the phantoms' sequences differ
