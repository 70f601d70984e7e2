"""brainmri-predict (tuning/predict.py) and the models it takes (tuning/models.py): cases named the
nnU-Net way or by a dataset.json, FLAIR-only cases routed to the FLAIR model, the same masks as
evaluate.py --input, a packed model the same as its run folder, bad input one line and nothing written."""

import csv
import glob
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import evaluate
from brainmri_tfds import readers, runtime, synthetic
from tuning import models, predict

ROOT = Path(__file__).resolve().parents[1]


def _stand_in(folder: Path, channels: str) -> Path:
    """A run folder with a U-Net stand-in that calls bright FLAIR tumor (FLAIR is channel 1 of 3)."""
    import keras

    from brainmri_tfds.settings import DataSettings
    from tuning.runfolder import RunConfig

    folder.mkdir(parents=True)
    inputs = 3 if channels == "all" else 1
    model = keras.Sequential([keras.Input((64, 64, inputs), name="image"),
                              keras.layers.Conv2D(1, 1, activation="sigmoid", name="mask")])
    kernel = np.zeros((1, 1, inputs, 1), np.float32)
    kernel[0, 0, inputs // 2, 0] = 80.0  # FLAIR: the middle of pre, FLAIR, post; the only one alone
    model.layers[-1].set_weights([kernel, np.array([-76.0], np.float32)])
    model.save(folder / "model.keras")
    RunConfig(DataSettings("lgg_mri/synthetic", 64, channels)).write(folder)
    return folder


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A stand-in for the shipped models' folder: a three-sequence and a FLAIR-only model."""
    root = tmp_path_factory.mktemp("pretrained")
    _stand_in(root / predict.THREE_SEQUENCES, "all")
    _stand_in(root / predict.FLAIR_ONLY, "flair")
    return root


@pytest.fixture
def as_shipped(shipped, monkeypatch):
    monkeypatch.setattr(models, "SHIPPED", shipped)
    return shipped


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """Two phantom cases named the nnU-Net way: one with three sequences, one with FLAIR alone."""
    folder = tmp_path_factory.mktemp("cases")
    (full,) = synthetic.write_nifti_cases(folder, 1, seed=3, slices=(6, 7))
    alone = tmp_path_factory.mktemp("alone")
    (flair,) = synthetic.write_nifti_cases(alone, 1, seed=4, sequences=("0001",), slices=(6, 7))
    for path in alone.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    return folder, full, flair


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "volumes.csv") as handle:
        return {row["case"]: row for row in csv.DictReader(handle)}


def test_each_case_goes_to_the_model_for_its_sequences(as_shipped, cases, tmp_path, capsys):
    folder, full, flair = cases
    out = tmp_path / "out"
    assert predict.main(["-i", str(folder), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(predict.NOTICE) and "Buda" in printed and printed.count("Please cite") == 1
    rows = _rows(out)
    assert rows[full]["model"] == predict.THREE_SEQUENCES and rows[flair]["model"] == predict.FLAIR_ONLY
    for case in (full, flair):
        written, source = nib.load(str(out / f"{case}.nii.gz")), nib.load(str(folder / f"{case}_0001.nii.gz"))
        assert written.shape == source.shape and np.array_equal(written.affine, source.affine)
        assert float(rows[case]["dice"]) > 0.3  # the stand-in finds the phantom's tumor (CASE_seg beside it)
    report = json.loads((out / "report.json").read_text())
    assert report["cases"][flair]["model"] == predict.FLAIR_ONLY and set(report["models"]) == {
        predict.THREE_SEQUENCES, predict.FLAIR_ONLY}


def test_a_brats_style_dataset_json_names_the_channels(as_shipped, cases, tmp_path):
    folder, full, _ = cases
    brats = tmp_path / "brats"
    brats.mkdir()
    # BraTS order, as nnU-Net's conversion writes it: T1, T1ce, T2, FLAIR
    for source, target in (("0000", "0000"), ("0002", "0001"), ("0000", "0002"), ("0001", "0003")):
        (brats / f"{full}_{target}.nii.gz").write_bytes((folder / f"{full}_{source}.nii.gz").read_bytes())
    (brats / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"}, "labels": {"background": 0}}))
    (case,) = readers.find_cases(brats)
    assert case.left_out == (f"{full}_0002.nii.gz",) and not case.flair_only
    same = next(c for c in readers.find_cases(folder) if c.name == full)  # the same case, named by this project's rule
    np.testing.assert_array_equal(case.load().images, same.load().images)
    out = tmp_path / "out"
    assert predict.main(["-i", str(brats), "-o", str(out)]) == 0
    assert _rows(out)[full]["model"] == predict.THREE_SEQUENCES

    flags = readers.find_cases(brats, channel_names={"0000": "pre", "0001": "post-contrast", "0002": "T2w",
                                                   "0003": "T2-FLAIR"})  # the flag wins over dataset.json
    np.testing.assert_array_equal(flags[0].load().images, same.load().images)


@pytest.mark.parametrize("names, message", [
    ({"0000": "T1", "0001": "T1ce", "0002": "T2", "0003": "DWI"}, "channel name 'DWI' is none the model knows"),
    ({"0000": "T1", "0001": "T1ce", "0002": "T2", "0003": "T1"}, "more than one channel is pre-contrast"),
    ({"0000": "T1", "0001": "T1ce", "0002": "T2", "0003": "T2w"}, "no channel is FLAIR"),
    ({"0000": "T1", "0001": "FLAIR"}, "channels ['0002', '0003'] are not named by"),
])
def test_channels_that_cannot_be_mapped_are_one_line_and_nothing_is_written(as_shipped, cases, tmp_path, capsys,
                                                                             names, message):
    folder, full, _ = cases
    brats = tmp_path / "brats"
    brats.mkdir()
    for part in ("0000", "0001", "0002", "0003"):
        (brats / f"{full}_{part}.nii.gz").write_bytes((folder / f"{full}_0001.nii.gz").read_bytes())
    flag = ",".join(f"{k}={v}" for k, v in names.items())
    out = tmp_path / "out"
    assert predict.main(["-i", str(brats), "-o", str(out), "--channel-names", flag]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and message in error and len(error.splitlines()) == 1, error
    assert not out.exists()


def test_the_masks_agree_with_evaluate_and_a_packed_model_with_its_run_folder(shipped, cases, tmp_path):
    folder, full, flair = cases
    run = shipped / predict.THREE_SEQUENCES
    assert predict.main(["-i", str(folder), "-o", str(tmp_path / "predict"), "--model", str(run)]) == 0
    assert evaluate.main(["--model", str(run / "model.keras"), "--input", str(folder),
                          "--out", str(tmp_path / "evaluate")]) == 0
    packed = tmp_path / "colleague.brainmri"
    assert models.main(["--pack", str(run), str(packed)]) == 0
    assert sorted(zipfile.ZipFile(packed).namelist()) == ["config.json", "model.keras", "model.tflite"]
    assert predict.main(["-i", str(folder), "-o", str(tmp_path / "packed"), "--model", str(packed)]) == 0  # LiteRT
    for case in (full, flair):
        masks = [nib.load(str(tmp_path / name / f"{case}.nii.gz")).get_fdata() for name in
                 ("predict", "evaluate", "packed")]
        assert masks[0].any()
        np.testing.assert_array_equal(masks[0], masks[1])
        np.testing.assert_array_equal(masks[0], masks[2])
    assert set(_rows(tmp_path / "predict")[c]["model"] for c in (full, flair)) == {str(run)}  # one model for all


def test_slices_in_kaggles_layout_give_a_mask_per_slice(as_shipped, tmp_path):
    patients = synthetic.write_patients(tmp_path / "kaggle", 1, seed=2, slices=(5, 5))
    out = tmp_path / "out"
    assert predict.main(["-i", str(tmp_path / "kaggle"), "-o", str(out)]) == 0
    masks = sorted((out / "predictions").glob("*_pred_mask.png"))
    assert len(masks) == 5 and all(p.name.startswith(patients[0]) for p in masks)
    assert _rows(out)[patients[0]]["model"] == predict.THREE_SEQUENCES  # Kaggle's slices hold all three


def test_probabilities_are_written_when_asked(as_shipped, cases, tmp_path):
    folder, full, _ = cases
    out = tmp_path / "out"
    assert predict.main(["-i", str(folder / f"{full}_0001.nii.gz"), "-o", str(out), "--save-probabilities",
                         "--device", "cpu"]) == 0
    probability = nib.load(str(out / f"{full}_probabilities.nii.gz"))
    mask = nib.load(str(out / f"{full}.nii.gz")).get_fdata() > 0
    values = probability.get_fdata()
    assert probability.get_data_dtype() == np.float32 and 0.0 <= values.min() and values.max() <= 1.0
    assert (values[mask] > 0.5).all()  # the mask is the thresholded map (largest component kept)
    assert _rows(out)[full]["model"] == predict.FLAIR_ONLY  # a lone FLAIR file


@pytest.mark.parametrize("argv, message", [
    (["-i", "nowhere.nii.gz"], "nowhere.nii.gz: no such file or folder"),
    (["--model", "no-such-model"], "no-such-model: no such model file or folder, and not a shipped model's name"),
    (["--engine", "litert"], "no model.tflite to run with LiteRT"),  # the stand-ins carry none
])
def test_bad_input_is_one_line(as_shipped, cases, tmp_path, capsys, argv, message):
    folder, _, _ = cases
    full = {"-i": str(folder), "-o": str(tmp_path / "out")}
    flags = dict(zip(argv[::2], argv[1::2]))
    args = [item for key, value in {**full, **flags}.items() for item in (key, value)]
    assert predict.main(args) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"error: {message}" or (error.startswith("error: ") and message in error), error
    assert len(error.splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def litert_only(shipped, tmp_path_factory):
    """The stand-ins shipped the way an average of several trainings must be: model.tflite alone."""
    root = tmp_path_factory.mktemp("pretrained-litert")
    for name in (predict.THREE_SEQUENCES, predict.FLAIR_ONLY):
        models.write_model_folder([shipped / name], root / name, float16=True, litert_only=True)
    return root


def test_a_model_shipped_as_litert_alone_predicts_and_refuses_keras(litert_only, cases, tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.setattr(models, "SHIPPED", litert_only)
    folder, full, flair = cases
    assert sorted(p.name for p in (litert_only / predict.THREE_SEQUENCES).iterdir()) == [
        "config.json", "model.tflite"]
    assert set(models.shipped()) == {predict.THREE_SEQUENCES, predict.FLAIR_ONLY}
    assert predict.main(["-i", str(folder), "-o", str(tmp_path / "out")]) == 0
    assert _rows(tmp_path / "out")[flair]["model"] == predict.FLAIR_ONLY
    capsys.readouterr()
    assert predict.main(["-i", str(folder), "-o", str(tmp_path / "keras"), "--engine", "keras"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "holds model.tflite alone" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "keras").exists()


def test_without_shipped_models_it_asks_for_one(cases, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(models, "SHIPPED", tmp_path / "none")
    assert predict.main(["-i", str(cases[0]), "-o", str(tmp_path / "out")]) == 2
    assert "ships no model" in capsys.readouterr().err


def test_a_foreign_file_is_not_a_packed_model(tmp_path):
    foreign = tmp_path / "x.brainmri"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("../escape.txt", "no")
    with pytest.raises(ValueError, match="not a packed brainmri model"):
        models.locate(foreign)


@pytest.mark.slow
def test_a_non_editable_install_predicts_from_another_directory(shipped, cases, tmp_path):
    """`pip install .` (not editable) into a folder of its own, then brainmri-predict run from
    elsewhere: no path may assume the checkout, and the shipped models travel with the package."""
    import os
    import shutil

    target = tmp_path / "installed"
    built_before = (ROOT / "build").exists()
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
                    "--target", str(target), str(ROOT)], check=True, cwd=tmp_path)
    if not built_before:  # setuptools builds inside the checkout
        shutil.rmtree(ROOT / "build", ignore_errors=True)
    for name, folder in models.shipped().items():  # every file of every shipped model
        assert sorted(p.name for p in (target / "tuning" / "pretrained" / name).iterdir()) == sorted(
            p.name for p in folder.iterdir())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    environment = {**os.environ, "PYTHONPATH": str(target)}  # the installed copy before the checkout's
    where = subprocess.run([sys.executable, "-c", "import tuning.predict; print(tuning.predict.__file__)"],
                           cwd=elsewhere, env=environment, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(target))
    folder, full, flair = cases
    subprocess.run([str(target / "bin" / "brainmri-predict"), "-i", str(folder), "-o", "out",
                    "--model", str(shipped / predict.THREE_SEQUENCES)],
                   cwd=elsewhere, env=environment, check=True, capture_output=True)
    assert (elsewhere / "out" / f"{full}.nii.gz").is_file() and (elsewhere / "out" / f"{flair}.nii.gz").is_file()
    assert set(_rows(elsewhere / "out")) == {full, flair}


def test_a_models_own_inference_json_rules_predict_evaluate_and_export(shipped, cases, tmp_path):
    import shutil

    from tuning.export import main as export
    from tuning.postprocessing import InferenceSettings
    from tuning.runfolder import InferenceChoice

    folder, full, _ = cases
    run = tmp_path / "run"
    shutil.copytree(shipped / predict.THREE_SEQUENCES, run)
    own = InferenceSettings(threshold=0.3, keep_fraction=0.0, flip_average=False)
    InferenceChoice(own, "validation", 0.5).write(run)
    assert predict.main(["-i", str(folder), "-o", str(tmp_path / "predict"), "--model", str(run)]) == 0
    assert evaluate.main(["--model", str(run / "model.keras"), "--input", str(folder),
                          "--out", str(tmp_path / "evaluate")]) == 0
    for name in ("predict", "evaluate"):
        report = json.loads((tmp_path / name / "report.json").read_text())
        assert {k: report[k] for k in own.to_json()} == own.to_json()
    masks = [nib.load(str(tmp_path / name / f"{full}.nii.gz")).get_fdata() for name in ("predict", "evaluate")]
    np.testing.assert_array_equal(*masks)
    assert export(["--model", str(run / "model.keras"), "--formats", "saved_model"]) == 0
    steps = json.loads((run / "export" / "preprocessing.json").read_text())
    assert steps["postprocessing"] == own.to_json()


SHIPPED_NAMES = sorted(models.shipped())


def test_the_shipped_models_stay_under_25_mb_with_a_card_and_the_datas_licence():
    total = sum(p.stat().st_size for folder in models.shipped().values() for p in folder.iterdir())
    assert total < 25e6, f"{total / 1e6:.1f} MB"
    for name, folder in models.shipped().items():
        assert {"model.tflite", "config.json", "inference.json", "README.md", "LICENSE"} <= {
            p.name for p in folder.iterdir()}, name  # model.keras too, unless shipped --litert-only
        licence = (folder / "LICENSE").read_text()
        assert "CC BY-NC-SA 4.0" in licence and all(w in licence for w in ("Buda", "Mazurowski", "Clark"))
        assert json.loads((folder / "config.json").read_text())["data"].get("data_dir") is None  # no machine's path
        card = (folder / "README.md").read_text()
        assert "python -m tuning.crossval" in card and "not a medical device" in card


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_each_shipped_model_predicts_a_phantom_case_by_its_name(name, cases, tmp_path):
    """A phantom is no patient: its textures and contrasts are not a scan's and it has 7 slices
    (brainmri-predict warns), so a model's threshold, set on patients, need not carry over to it (on
    this phantom lgg-unet-flair's probabilities in the tumor peak just under 0.5: Dice 0). What
    must carry over is that the tumor stands out: its voxels' mean probability is many times the
    rest's. On 2026-12-07: lgg-unet-3seq 1009x, lgg-unet-flair 527x; fed the pre-contrast file as
    FLAIR (as below), lgg-unet-3seq 1.4x, lgg-unet-flair 0.6x (docs/experiments.md has more)."""
    folder, full, flair = cases
    out = tmp_path / "out"
    assert predict.main(["-i", str(folder), "-o", str(out), "--model", name, "--save-probabilities"]) == 0
    rows = _rows(out)
    assert rows[full]["model"] == rows[flair]["model"] == name
    tumor = np.asarray(nib.load(str(folder / f"{full}_seg.nii.gz")).dataobj) > 0

    def stands_out(out: Path) -> float:
        probabilities = np.asarray(nib.load(str(out / f"{full}_probabilities.nii.gz")).dataobj)
        return probabilities[tumor].mean() / probabilities[~tumor].mean()

    assert stands_out(out) > 20
    alone = tmp_path / "full"  # the three-sequence case alone, its files named the other way round
    alone.mkdir()
    for path in folder.glob(f"{full}_*"):
        (alone / path.name).write_bytes(path.read_bytes())
    assert predict.main(["-i", str(alone), "-o", str(tmp_path / "swapped"), "--model", name, "--save-probabilities",
                         "--channel-names", "0000=FLAIR,0001=T1,0002=T1ce"]) == 0
    assert stands_out(tmp_path / "swapped") < 20


@pytest.mark.skipif(any(glob.glob(p) for p in runtime._GPU_DRIVER_FILES),
                    reason="with a GPU driver, TensorFlow is asked whether it sees a GPU")
def test_the_shipped_models_predict_on_litert_without_loading_tensorflow(cases, tmp_path):
    """Loading TensorFlow is most of a first case's time on a CPU (about 10 s of 13 on a 2-core
    one): with LiteRT, reading, preprocessing, prediction and writing need none of it."""
    folder, full, flair = cases
    probe = ("import sys; from tuning.predict import main\n"
             f"assert main(['-i', {str(folder)!r}, '-o', {str(tmp_path / 'out')!r}]) == 0\n"
             "print('LOADED' if {'tensorflow', 'keras'} & set(sys.modules) else 'NOT LOADED')")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("NOT LOADED"), done.stdout[-500:]
    assert _rows(tmp_path / "out")[flair]["model"] == predict.FLAIR_ONLY


def test_both_models_are_shipped():
    """The three-sequence and the FLAIR-only model are in the package (their weights are committed,
    not ignored by git), so a FLAIR-only case goes to the FLAIR-only model by default."""
    assert {predict.THREE_SEQUENCES, predict.FLAIR_ONLY} <= set(models.shipped())
