"""Patient folds: balanced, stable folds; rotations that test every patient once; the
cross-validation command (train.py and evaluate.py on a round, its settings, epochs and
ensembles) on phantoms."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from brainmri_tfds import synthetic
from brainmri_tfds.splits import cross_validation_splits, folds_of

ROOT = Path(__file__).resolve().parents[1]


def test_folds_are_balanced_and_do_not_depend_on_order():
    patients = [f"TCGA_XX_{n:04d}_20000101" for n in range(43)]
    folds = folds_of(patients, 10)
    assert folds == folds_of(list(reversed(patients)), 10)
    sizes = sorted(list(folds.values()).count(f"fold{k}") for k in range(10))
    assert sizes[0] == 4 and sizes[-1] == 5


@pytest.mark.parametrize("folds, test, validation", [(10, 2, 1), (5, 1, 1), (8, 2, 2)])
def test_rotations_test_every_fold_once_and_never_train_on_it(folds, test, validation):
    rotations = cross_validation_splits(folds, test, validation)
    tested = [f for r in rotations for f in r.test.split("+")]
    assert sorted(tested) == sorted(f"fold{k}" for k in range(folds))
    for r in rotations:
        train, val, held = (set(s.split("+")) for s in (r.train, r.validation, r.test))
        assert len(val) == validation and not (train & val or train & held or val & held)
        assert len(train | val | held) == folds


def test_learning_curve_rotations_train_on_fewer_folds_and_test_the_same_patients():
    full, fewer = cross_validation_splits(10), cross_validation_splits(10, train_folds=3)
    assert [(r.validation, r.test) for r in fewer] == [(r.validation, r.test) for r in full]
    for small, large in zip(fewer, full):
        kept = small.train.split("+")
        assert len(kept) == 3 and set(kept) < set(large.train.split("+"))
    assert len({r.train for r in fewer}) == len(fewer)  # each round keeps different folds
    with pytest.raises(ValueError, match="train_folds must be 1..7"):
        cross_validation_splits(10, train_folds=8)


def test_crossval_refuses_a_training_fold_count_out_of_range():
    result = subprocess.run([sys.executable, "-m", "tuning.crossval", "run", "--train-folds", "0"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "train_folds must be 1..7" in result.stderr and "Traceback" not in result.stderr


def test_rotation_that_leaves_nothing_to_train_on_is_refused():
    with pytest.raises(ValueError, match="cannot rotate"):
        cross_validation_splits(4, test_folds=2, validation_folds=2)


@pytest.fixture(scope="module")
def folds_manual_dir(tmp_path_factory):
    """A Kaggle-layout folder of 10 phantom patients of 3 slices."""
    root = tmp_path_factory.mktemp("download")
    synthetic.write_patients(root, 10, seed=5, slices=(3, 3))
    return root


@pytest.fixture(scope="module")
def folds_data_dir(folds_manual_dir, tmp_path_factory):
    """A data_dir with lgg_mri/kaggle_3m_folds built from `folds_manual_dir`."""
    import tensorflow_datasets as tfds

    data_dir = tmp_path_factory.mktemp("tfds")
    builder = tfds.builder("lgg_mri/kaggle_3m_folds", data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(folds_manual_dir)))
    return str(data_dir)


def test_folds_config_writes_each_patient_to_one_fold(folds_data_dir):
    from brainmri_tfds import load_split

    seen = {}
    for k in range(10):
        for example in load_split(f"fold{k}", folds_data_dir, "kaggle_3m_folds").as_numpy_iterator():
            seen.setdefault(example["patient_id"].decode(), set()).add(k)
    assert len(seen) == 10 and all(len(folds) == 1 for folds in seen.values())
    both = load_split("fold0+fold1", folds_data_dir, "kaggle_3m_folds")
    assert sum(1 for _ in both) == 6


def test_folds_config_with_fewer_patients_than_folds_leaves_the_last_folds_out(tmp_path):
    import tensorflow_datasets as tfds

    from brainmri_tfds import load_split

    synthetic.write_patients(tmp_path / "download", 3, seed=5, slices=(2, 2))
    builder = tfds.builder("lgg_mri/kaggle_3m_folds", data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / "download")))
    assert sorted(builder.info.splits) == ["fold0", "fold1", "fold2"]
    with pytest.raises(ValueError, match="has no split 'fold5'"):
        load_split("fold5", str(tmp_path / "tfds"), "kaggle_3m_folds")


def test_crossval_says_when_the_zip_is_missing(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tuning.crossval", "run", "--manual-dir", str(tmp_path / "nowhere"),
                             "--data-dir", str(tmp_path / "tfds")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "no Kaggle data" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_search_runs_on_the_folds_of_a_round(folds_data_dir, tmp_path):
    from tuning import search

    rotation = cross_validation_splits(10)[0]
    code = search.main([
        "--dataset", "lgg_mri/kaggle_3m_folds", "--data-dir", folds_data_dir, "--image-size", "32",
        "--channels", "flair", "--tuner", "random", "--max-trials", "1", "--max-epochs", "1", "--batch-size", "8",
        "--train-split", rotation.train, "--validation-split", rotation.validation,
        "--directory", str(tmp_path), "--project-name", "p",
    ])
    assert code == 0
    assert json.loads((tmp_path / "p" / "best_hparams.json").read_text())["data"]["dataset"] == "lgg_mri/kaggle_3m_folds"


@pytest.mark.slow
def test_crossval_scores_a_round_then_an_ensemble_of_runs(folds_manual_dir, folds_data_dir, tmp_path):
    import evaluate
    from tuning.crossval.__main__ import main as crossval

    def benchmark(*flags):  # `python -m tuning.crossval run ...`, in this process (train.py and evaluate.py are not)
        assert crossval(["run", "--manual-dir", str(folds_manual_dir), "--data-dir", folds_data_dir, "--rounds", "0",
                         *flags]) == 0

    run = tmp_path / "run"  # trained on 2 of its round's 7 training folds (a learning curve's point)
    benchmark("--out", str(run), "--train-folds", "2", "--", "--image-size", "32", "--channels", "flair",
              "--epochs", "2", "--batch-size", "8", "--keep-epoch-weights")
    single = json.loads((run / "summary.json").read_text())
    assert single["per_patient_dice"]["patients"] == 2 and single["rounds"][0]["test"] == "fold0+fold1"
    assert single["train_folds"] == 2
    assert json.loads((run / "round0" / "config.json").read_text())["splits"]["train"] == "fold3+fold4"
    low, high = single["per_patient_dice"]["mean_ci95"]
    assert low <= single["per_patient_dice"]["mean"] <= high
    chosen = json.loads((run / "round0" / "inference.json").read_text())  # train.py's defaults, on validation
    assert chosen["split"] == "fold2" and chosen["candidates"] == []
    assert chosen["settings"] == {"threshold": 0.5, "keep_fraction": 1.0, "flip_average": True}
    assert evaluate.main(["--model", str(run / "round0" / "model.keras"), "--split", "fold2", "--overlays", "0",
                          "--out", str(tmp_path / "validation")]) == 0  # evaluate.py on the same patients agrees
    validation = json.loads((tmp_path / "validation" / "report.json").read_text())
    assert chosen["mean_patient_dice"] == pytest.approx(validation["volume_dice_mean"], abs=1e-6)
    assert evaluate.main(["--model", str(run / "round0" / "model.keras"), "--overlays", "0"]) == 0
    by_default = json.loads((run / "round0" / "eval-fold0_fold1" / "report.json").read_text())  # its test split
    test_report = json.loads((run / "round0" / "eval" / "report.json").read_text())
    assert by_default["source"] == test_report["source"] and test_report["source"].endswith(":fold0+fold1")
    assert by_default["volume_dice_mean"] == pytest.approx(test_report["volume_dice_mean"], abs=1e-6)
    assert by_default["n_patients"] == 2 and by_default["threshold"] == chosen["settings"]["threshold"]

    assert crossval(["settings", str(run)]) == 0  # every inference setting on the round's test patients
    scores = json.loads((run / "round0" / "settings.json").read_text())
    record = json.loads((run / "round0" / "round.json").read_text())
    assert scores["threshold 0.5, keep 0.0, no flip"] == pytest.approx(record["eval-plain"], abs=1e-3)
    chosen = record["inference"]
    label = (f"threshold {chosen['threshold']}, keep {chosen['keep_fraction']}, "
             f"{'flip' if chosen['flip_average'] else 'no flip'}")
    assert scores[label] == pytest.approx(record["eval"], abs=1e-3)
    from tuning.crossval.settings import compare_settings

    assert record["inference"] == {"threshold": 0.5, "keep_fraction": 1.0, "flip_average": True}  # train.py's
    rules = {row["rule"]: row for row in compare_settings(run)["rules"]}
    assert rules["fixed: threshold 0.5, flip, keep 1.0 (the default)"]["minus_chosen"] == pytest.approx(0.0, abs=1e-4)
    assert len(json.loads((run / "round0" / "validation-settings.json").read_text())["candidates"]) == 40
    stamp = (run / "round0" / "settings.json").stat().st_mtime_ns
    assert crossval(["settings", str(run)]) == 0 and (run / "round0" / "settings.json").stat().st_mtime_ns == stamp
    assert crossval(["settings", str(tmp_path / "nothing")]) == 2

    assert sorted(p.name for p in (run / "round0" / "epochs").iterdir()) == ["epoch_001.weights.h5",
                                                                               "epoch_002.weights.h5"]
    assert crossval(["epochs", str(run)]) == 0  # other epochs and averages of them, on the test patients
    epochs = json.loads((run / "round0" / "epochs.json").read_text())
    kept = epochs["kept (lowest validation loss)"]
    assert kept["epochs"] == [json.loads((run / "round0" / "model.best.json").read_text())["epoch"]]
    assert kept["dice"] == pytest.approx(record["eval"], abs=1e-3)  # the model train.py kept, as evaluate.py scored it
    assert epochs["last 5 averaged"]["epochs"] == [1, 2] and epochs["last epoch"]["epochs"] == [2]
    assert epochs["last 5 ensembled"]["combine"] == "probabilities" and epochs["last 5 ensembled"]["epochs"] == [1, 2]
    assert epochs["best 5 ensembled"]["dice"] == epochs["last 5 ensembled"]["dice"]  # the same two epochs
    del epochs["last epoch"]  # as a file written before a candidate was added
    (run / "round0" / "epochs.json").write_text(json.dumps(epochs))
    assert crossval(["epochs", str(run)]) == 0
    rescored = json.loads((run / "round0" / "epochs.json").read_text())
    assert rescored["last epoch"]["epochs"] == [2] and rescored["kept (lowest validation loss)"] == kept
    assert crossval(["epochs", str(tmp_path / "nothing")]) == 2

    benchmark("--out", str(tmp_path / "pair"), "--train-folds", "2", "--ensemble", str(run), str(run),
              "--evaluate-args=--threshold 0.35")
    pair = json.loads((tmp_path / "pair" / "round0" / "round.json").read_text())
    assert pair["models"] == [str(run / "round0" / "model.keras")] * 2 and pair["train_seconds"] == 0
    assert pair["inference"]["threshold"] == 0.35  # not a candidate train.py could have chosen
    assert pair["eval-plain"] == pytest.approx(json.loads((run / "round0" / "round.json").read_text())["eval-plain"],
                                               abs=1e-3)


def test_a_choice_rule_picks_the_first_best_of_the_settings_it_allows():
    from tuning.crossval.settings import pick_on_validation

    def candidate(threshold, keep, flip, score):
        return {"threshold": threshold, "keep_fraction": keep, "flip_average": flip, "mean_patient_dice": score}

    candidates = [candidate(0.5, 0.0, False, 0.80), candidate(0.3, 1.0, False, 0.90), candidate(0.5, 0.0, True, 0.85),
                  candidate(0.5, 1.0, True, 0.85), candidate(0.3, 1.0, True, 0.95)]
    assert pick_on_validation(candidates) == "threshold 0.3, keep 1.0, flip"
    assert pick_on_validation(candidates, (False,)) == "threshold 0.3, keep 1.0, no flip"
    assert pick_on_validation(candidates, (True,), (0.5,)) == "threshold 0.5, keep 0.0, flip"  # a tie: the first
    assert pick_on_validation(candidates, (True,), (0.5,), (1.0,)) == "threshold 0.5, keep 1.0, flip"
    with pytest.raises(ValueError, match="rule"):
        pick_on_validation(candidates, (True,), (0.7,))


def test_every_candidate_setting_is_scored_simplest_first():
    from tuning.crossval.settings import score_settings

    truth = np.zeros((1, 4, 4), bool)
    truth[0, 1:3, 1:3] = True  # 4 pixels
    probability = np.where(truth, 0.45, 0.05)  # tumor only for a threshold below 0.45
    table = score_settings({"a": truth}, {False: {"a": probability}, True: {"a": probability}})
    assert len(table) == 2 * 5 * 4 and table[0]["threshold"] == 0.5 and not table[0]["flip_average"]
    scores = {(row["threshold"], row["keep_fraction"], row["flip_average"]): row["mean_patient_dice"] for row in table}
    assert scores[(0.3, 0.0, False)] == 1.0 and scores[(0.4, 1.0, True)] == 1.0
    assert scores[(0.5, 0.0, False)] == 0.0 and scores[(0.7, 0.3, True)] == 0.0


def _crossval(command: str):
    from tuning.crossval.__main__ import main

    return lambda argv: main([command, *argv])


def _fake_run(folder: Path, dice_by_round: list[dict[str, float]]) -> Path:
    for index, dice in enumerate(dice_by_round):
        (folder / f"round{index}").mkdir(parents=True)
        record = {"eval": dice, "eval-plain": {p: d / 2 for p, d in dice.items()}}
        (folder / f"round{index}" / "round.json").write_text(json.dumps(record))
    return folder


def test_compare_runs_tells_a_real_gain_from_noise(tmp_path, capsys):
    main = _crossval("compare")

    rng = np.random.default_rng(0)
    base = {f"P{i}": float(d) for i, d in enumerate(rng.uniform(0.3, 0.9, size=40))}
    rounds = lambda dice: [dict(list(dice.items())[:20]), dict(list(dice.items())[20:])]  # noqa: E731
    a = _fake_run(tmp_path / "a", rounds(base))
    better = _fake_run(tmp_path / "better", rounds({p: d + 0.05 + rng.normal(0, 0.02) for p, d in base.items()}))
    noisy = _fake_run(tmp_path / "noisy", rounds({p: d + rng.normal(0, 0.2) for p, d in base.items()}))

    def verdict(*args) -> dict:
        assert main([str(a), *map(str, args)]) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    gain = verdict(better)
    assert gain["patients"] == 40 and gain["verdict"] == "B better"
    assert 0 < gain["mean_difference_ci95"][0] < gain["mean_difference"] < gain["mean_difference_ci95"][1]
    assert gain["rose"] > 30
    assert verdict(noisy)["verdict"] == "not told apart"
    plain = verdict(better, "--plain")  # eval-plain holds half of every Dice: the gain halves too
    assert plain["mean_difference"] == pytest.approx(gain["mean_difference"] / 2, abs=1e-3)
    assert main([str(a), str(tmp_path / "missing")]) == 2
    one = _fake_run(tmp_path / "one", [{"P0": 0.9}])
    assert verdict(one)["verdict"] == "too few patients to tell"


def test_worst_patients_counts_the_under_segmented(tmp_path, capsys):
    main = _crossval("worst")

    patients = {  # name: (Dice, true pixels, predicted pixels)
        "A": (0.0, 400, 100), "B": (0.3, 300, 600), "C": (0.5, 200, 50), "D": (0.9, 100, 100), "E": (0.95, 0, 0),
    }
    for index, names in enumerate(["AB", "CDE"]):
        for scoring, scale in (("eval", 1), ("eval-plain", 2)):
            folder = tmp_path / "run" / f"round{index}" / scoring
            folder.mkdir(parents=True)
            per_patient = {p: {"dice": patients[p][0], "true_pixels": patients[p][1],
                               "predicted_pixels": patients[p][2] * scale} for p in names}
            (folder / "report.json").write_text(json.dumps({"per_patient": per_patient}))

    def result(*flags) -> dict:
        assert main([str(tmp_path / "run"), *flags]) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    worst = result("--worst", "3")
    assert [row["patient"] for row in worst["worst"]] == ["A", "B", "C"]
    assert worst["under_segmented"] == 2 and worst["worst"][0]["ratio"] == 0.25
    assert worst["patients"] == 5 and worst["predicted_over_true"] == pytest.approx(850 / 1000)
    assert result("--plain")["predicted_over_true"] == pytest.approx(1700 / 1000)
    assert main([str(tmp_path / "missing")]) == 2
