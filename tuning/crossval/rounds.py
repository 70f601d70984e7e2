"""`python -m tuning.crossval run`: per-patient Dice on real patients by patient cross-validation.

    python -m tuning.crossval run --manual-dir ~/Downloads/lgg --out runs/cv        # train.py defaults
    python -m tuning.crossval run --out runs/cv --rounds 0 -- --epochs 5             # train.py flags after --
    python -m tuning.crossval run --out runs/pair --ensemble runs/cv-a runs/cv-b     # no training
    python -m tuning.crossval run --out runs/t03 --ensemble runs/cv --evaluate-args="--threshold 0.3"
    python -m tuning.crossval run --out runs/half --train-folds 3                    # 3 of 7 training folds

Builds `lgg_mri/kaggle_3m_folds` from --manual-dir unless it is built in --data-dir, then for each
round of `brainmri_tfds.splits.cross_validation_splits` (default: 10 folds, 2 tested, 1 for
validation, so 5 rounds) runs `train.py` on the training folds and `evaluate.py` on the test
folds, twice: with the inference settings train.py wrote (inference.json; before 2026-12-01 it
chose them on the validation patients) and plain (threshold 0.5, no clean-up, no flip
averaging). Every patient is scored once, by a model that never saw them. Prints and writes --out/summary.json: per-patient Dice mean and median over
all patients (the mean with a 95% bootstrap interval, patients resampled), per round, and the
wall time of each step. `python -m tuning.crossval compare A B` tells whether run B beat run A.

--ensemble RUN... trains nothing: each round scores the ensemble of the runs' models for that
round (`evaluate.py --model A B ...`; the first run's inference.json gives the settings).
Every member of a round was trained on that round's folds only, so the test patients stay unseen.
--evaluate-args passes flags to the evaluate.py of the "chosen" scoring.

Rounds already scored are kept (delete --out/roundN to redo one); an interrupted round resumes
(train.py resumes from its last finished epoch). Runs from an installed copy too: train.py and
evaluate.py are `tuning.commands.train` and `tuning.commands.evaluate`.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from brainmri_tfds.splits import cross_validation_splits
from tuning.evaluation.scoring import mean_interval
from tuning.precision import cpu_description
from tuning.runfolder import RunConfig, read_json, read_report, write_json

CONFIG = "kaggle_3m_folds"
FOLDS = 10
PLAIN = ["--threshold", "0.5", "--keep-fraction", "0", "--no-flip-average"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manual-dir", help="folder with the Kaggle zip or kaggle_3m/ (needed until the folds are "
                                             "built in --data-dir)")
    parser.add_argument("--data-dir", help="TFDS data_dir (default: TFDS's, ~/tensorflow_datasets)")
    parser.add_argument("--out", default="runs/crossval", help="output folder (default runs/crossval)")
    parser.add_argument("--test-folds", type=int, default=2, help="folds tested per round (default 2 of 10)")
    parser.add_argument("--validation-folds", type=int, default=1, help="folds for validation (default 1)")
    parser.add_argument("--train-folds", type=int,
                        help="train each round on only this many of its training folds (a learning curve; "
                             "default all of them: 7 with the default test and validation folds)")
    parser.add_argument("--rounds", type=int, nargs="+", help="run only these rounds (default all)")
    parser.add_argument("--ensemble", nargs="+", metavar="RUN",
                        help="instead of training, score each round's ensemble of these earlier runs' models")
    parser.add_argument("--evaluate-args", default="", metavar="FLAGS",
                        help="evaluate.py flags for the chosen scoring, e.g. --evaluate-args=\"--threshold 0.3\" "
                             "(they override the inference settings train.py chose; the plain scoring stays)")
    parser.add_argument("train_args", nargs=argparse.REMAINDER,
                        help="after --: flags for train.py (e.g. --hparams FILE --epochs N)")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fills args.rotations and normalises the pass-through flags; parser.error on a bad combination."""
    args.train_args = [a for a in args.train_args if a != "--"]
    args.evaluate_args = shlex.split(args.evaluate_args)
    if args.ensemble and args.train_args:
        parser.error("--ensemble trains nothing: no train.py flags")
    try:
        args.rotations = cross_validation_splits(FOLDS, args.test_folds, args.validation_folds, args.train_folds)
    except ValueError as err:
        parser.error(str(err))
    if args.rounds and not set(args.rounds) <= {r.index for r in args.rotations}:
        parser.error(f"--rounds must be among 0..{len(args.rotations) - 1}")


def build(manual_dir: str | None, data_dir: str | None, config: str = CONFIG) -> float:
    """Builds lgg_mri/<config> (default kaggle_3m_folds) unless already built; returns the seconds it took."""
    import tensorflow_datasets as tfds

    import brainmri_tfds  # noqa: F401  (registers lgg_mri)

    builder = tfds.builder(f"lgg_mri/{config}", data_dir=data_dir)
    if builder.is_prepared():
        return 0.0
    if not manual_dir or not Path(manual_dir).is_dir():
        raise FileNotFoundError(
            f"lgg_mri/{config} is not built in {builder.data_dir_root} and there is no Kaggle data in "
            f"{manual_dir or '(no --manual-dir given)'}: pass --manual-dir with Kaggle's zip or kaggle_3m/")
    start = time.perf_counter()
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    return time.perf_counter() - start


def run(command: list[str]) -> float:
    """Runs a project command (train.py or evaluate.py, from the installed package: no checkout
    needed) in its own process, its output shown as it comes; returns its wall time in seconds."""
    print("$ " + " ".join(command), flush=True)
    start = time.perf_counter()
    module = {"train.py": "tuning.commands.train", "evaluate.py": "tuning.commands.evaluate"}[command[0]]
    subprocess.run([sys.executable, "-m", module, *command[1:]], check=True)
    return time.perf_counter() - start


def dice_summary(dice_by_patient: dict[str, float]) -> dict:
    """Mean (with its 95% bootstrap interval over patients), median, std and min of per-patient Dice."""
    values = np.array(list(dice_by_patient.values()))
    return {"mean": round(float(values.mean()), 4), "mean_ci95": [round(v, 4) for v in mean_interval(values)],
            "median": round(float(np.median(values)), 4), "std": round(float(values.std()), 4),
            "min": round(float(values.min()), 4), "patients": len(values)}


def score_round(rotation, args) -> dict:
    """Trains and evaluates one round (or reads it back when already done)."""
    folder = Path(args.out) / f"round{rotation.index}"
    record_path = folder / "round.json"
    if record_path.is_file():
        return read_json(record_path, "round record")
    if args.ensemble:
        trained, train_s = [Path(r) / folder.name for r in args.ensemble], 0.0
        for member in trained:
            if not (member / "model.keras").is_file():
                raise SystemExit(f"error: {member}: no model.keras (run that round first)")
            splits = RunConfig.read(member).splits
            if (splits["train"], splits["validation"]) != (rotation.train, rotation.validation):
                raise SystemExit(f"error: {member} trained on {splits['train']} (validation {splits['validation']}), "
                                 f"not round {rotation.index}'s {rotation.train} ({rotation.validation})")
    else:
        trained = [folder]
        data_dir = ["--data-dir", args.data_dir] if args.data_dir else []
        train_s = run(["train.py", "--dataset", f"lgg_mri/{CONFIG}", *data_dir,
                       "--train-split", rotation.train, "--validation-split", rotation.validation,
                       "--test-split", rotation.test, "--out", str(folder), *args.train_args])
    model = ["--model", *(str(f / "model.keras") for f in trained), "--split", rotation.test]
    evaluate_s = run(["evaluate.py", *model, "--out", str(folder / "eval"), *args.evaluate_args])
    run(["evaluate.py", *model, "--out", str(folder / "eval-plain"), *PLAIN])
    record = {"round": rotation.index, "train": rotation.train, "validation": rotation.validation,
              "test": rotation.test, "train_seconds": round(train_s, 1), "evaluate_seconds": round(evaluate_s, 1),
              "models": [str(f / "model.keras") for f in trained],
              "config": RunConfig.read(trained[0]).to_json(),
              "evaluate_args": args.evaluate_args}
    reports = {name: read_report(folder / name) for name in ("eval", "eval-plain")}
    record["inference"] = {k: reports["eval"][k] for k in ("threshold", "keep_fraction", "flip_average")}
    for name, report in reports.items():
        record[name] = {p: s["dice"] for p, s in report["per_patient"].items()}
    write_json(record_path, record)
    return record


def main(args: argparse.Namespace) -> int:
    from brainmri_tfds import LayoutError

    try:
        build_s = build(args.manual_dir, args.data_dir)
    except (LayoutError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        rounds = [score_round(r, args) for r in args.rotations if not args.rounds or r.index in args.rounds]
    except subprocess.CalledProcessError as err:
        print(f"error: {' '.join(err.cmd[1:])} failed (exit {err.returncode}); see its output above", file=sys.stderr)
        return 1
    chosen = {p: d for r in rounds for p, d in r["eval"].items()}
    plain = {p: d for r in rounds for p, d in r["eval-plain"].items()}
    summary = {
        "per_patient_dice": dice_summary(chosen),
        "per_patient_dice_plain": dice_summary(plain),
        "rounds": [{"round": r["round"], "test": r["test"], "inference": r["inference"],
                    "best_epoch": r["config"].get("best_epoch"), "train_seconds": r["train_seconds"],
                    "evaluate_seconds": r["evaluate_seconds"], **{k: dice_summary(r[k]) for k in ("eval", "eval-plain")}}
                   for r in rounds],
        "build_seconds": round(build_s, 1),
        "train_seconds_total": round(sum(r["train_seconds"] for r in rounds), 1),
        "train_folds": args.rotations[0].train.count("+") + 1,
        "train_args": args.train_args,
        "evaluate_args": args.evaluate_args,
        "ensemble": args.ensemble,
        "machine": f"{platform.machine()}, {cpu_description()}",
    }
    write_json(Path(args.out, "summary.json"), summary)
    print(json.dumps(summary, indent=2))
    return 0
