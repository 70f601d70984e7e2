"""tuning.runfolder: the JSON files beside a model are written whole, read back as the same records,
and a key nobody knows is an error naming the file."""

import json

import pytest

from brainmri_tfds.settings import DataSettings
from tuning import runfolder
from tuning.postprocessing import InferenceSettings
from tuning.runfolder import BestHparams, InferenceChoice, RunConfig, hyperparameters_json, read_hyperparameters
from tuning.recipe import TrainingRecipe
from tuning.architecture import UNetArchitecture


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "config.json"
    runfolder.write_json(path, {"seed": 1})
    with pytest.raises(RuntimeError):
        with runfolder.atomic_path(path) as partial:
            partial.write_text('{"seed": ')  # half a file, then the writer dies
            raise RuntimeError("killed")
    assert json.loads(path.read_text()) == {"seed": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_written_file_gets_the_permissions_open_would_give(tmp_path, umask, mode):
    import os
    import stat

    before = os.umask(umask)
    try:
        with runfolder.atomic_path(tmp_path / "mask.nii.gz") as partial:
            partial.write_bytes(b"0")
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "mask.nii.gz").stat().st_mode) == mode  # not mkstemp's 0o600


def test_nan_is_written_as_null(tmp_path):
    runfolder.write_report(tmp_path, {"hd95_mean": float("nan"), "per_patient": {"P": {"hd95": float("nan")}}})
    assert runfolder.read_report(tmp_path) == {"hd95_mean": None, "per_patient": {"P": {"hd95": None}}}


def test_records_read_back_as_written(tmp_path):
    data = DataSettings("lgg_mri/synthetic", 64, "flair", str(tmp_path / "tfds"), "patient", 1)
    best = BestHparams(UNetArchitecture(depth=3), TrainingRecipe(tumor_share=0.3), data, 0.81, "val_dice", "0004", "hyperband")
    best.write(tmp_path / "best_hparams.json")
    assert BestHparams.read(tmp_path / "best_hparams.json") == best

    run = RunConfig(data, UNetArchitecture(depth=3), TrainingRecipe(), {"train": "fold0", "validation": "fold1", "test": "fold2"}, seed=2,
                    epochs=5, patience=3, augment=True, precision="float32", best_epoch=4)
    run.write(tmp_path)
    assert RunConfig.read(tmp_path) == run and RunConfig.read(tmp_path).test_split == "fold2"

    choice = InferenceChoice(InferenceSettings(0.3, 0.1, True), "fold1", 0.77, [{"threshold": 0.3}])
    choice.write(tmp_path)
    assert InferenceChoice.read(tmp_path) == choice
    assert InferenceChoice.read(tmp_path / "elsewhere") is None  # train.py wrote none: the defaults apply


def test_data_dir_is_recorded_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert DataSettings(data_dir="tfds").to_json()["data_dir"] == str(tmp_path / "tfds")
    assert DataSettings(data_dir="gs://bucket/tfds").to_json()["data_dir"] == "gs://bucket/tfds"
    assert DataSettings().to_json()["data_dir"] is None


@pytest.mark.parametrize("file, edit, where", [
    ("best_hparams.json", lambda v: v["hyperparameters"].update(widht=16), " hyperparameters: unknown keys ['widht']"),
    ("best_hparams.json", lambda v: v.update(scroe=0.5), ": unknown keys ['scroe']"),
    ("config.json", lambda v: v["data"].update(chanels="all"), " data: unknown keys ['chanels']"),
    ("config.json", lambda v: v.update(epoch=3), ": unknown keys ['epoch']"),
    ("inference.json", lambda v: v["settings"].update(treshold=0.4), " settings: unknown keys ['treshold']"),
])
def test_an_unknown_key_is_an_error_naming_the_file_and_the_key(tmp_path, file, edit, where):
    data = DataSettings("lgg_mri/synthetic", 32, "flair")
    BestHparams(UNetArchitecture(), TrainingRecipe(), data).write(tmp_path / "best_hparams.json")
    RunConfig(data).write(tmp_path)
    InferenceChoice(InferenceSettings(), "validation", 0.5, []).write(tmp_path)
    path = tmp_path / file
    values = json.loads(path.read_text())
    edit(values)
    path.write_text(json.dumps(values))
    read = {"best_hparams.json": lambda: BestHparams.read(path), "config.json": lambda: RunConfig.read(tmp_path),
            "inference.json": lambda: InferenceChoice.read(tmp_path)}[file]
    with pytest.raises(ValueError) as error:
        read()
    assert f"{path}{where}" in str(error.value)


def test_files_from_before_a_key_existed_keep_their_old_meaning(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "data": {"dataset": "lgg_mri", "image_size": 128, "channels": "all"},
        "hyperparameters": {"depth": 4, "tumour_share": 0.7}}))
    run = RunConfig.read(tmp_path)
    assert (run.data.normalization, run.data.context, run.data.data_dir) == ("none", 0, None)
    assert run.recipe.tumor_share == 0.7


def test_a_model_counts_as_trained_only_with_the_same_settings(tmp_path):
    run = RunConfig(DataSettings("lgg_mri/synthetic", 32, "flair"), epochs=5, command="python train.py A")
    run.write(tmp_path)
    assert runfolder.finished_training(tmp_path, run) is None  # no model.keras yet
    (tmp_path / "model.keras").write_bytes(b"model")
    assert runfolder.finished_training(tmp_path, run) is None  # not finished
    done = RunConfig(run.data, epochs=5, best_epoch=3, command="python train.py A --out here")
    done.write(tmp_path)
    assert runfolder.finished_training(tmp_path, run) == done  # the command may differ
    other = RunConfig(run.data, epochs=6)
    assert runfolder.finished_training(tmp_path, other) is None


def test_flat_hyperparameters_split_into_architecture_and_recipe():
    architecture, recipe = read_hyperparameters({"depth": 3, "dropout": 0.2, "tumour_share": 0.3, "loss": "dice"},
                                                "old.json")
    assert architecture == UNetArchitecture(depth=3, dropout=0.2)
    assert recipe == TrainingRecipe(tumor_share=0.3, loss="dice")  # tumour_share: renamed since
    with pytest.raises(ValueError, match=r"best_hparams.json: unknown keys \['widht'\]; known: \[.*'batch_size'"):
        read_hyperparameters({"depth": 3, "widht": 16}, "best_hparams.json")
    assert hyperparameters_json(architecture, recipe)["tumor_share"] == 0.3
