"""Benchmark: per-patient Dice on real patients by patient cross-validation, and its wall time.

    python benchmarks/real_data.py                                   # ../shared/data, train.py defaults
    python benchmarks/real_data.py --rounds 0 -- --epochs 5          # one round, train.py flags after --
    python benchmarks/real_data.py -- --hparams runs/tuning/unet/best_hparams.json
    python benchmarks/real_data.py --out runs/ensemble --ensemble runs/cv-a runs/cv-b   # no training
    python benchmarks/real_data.py --out runs/t03 --ensemble runs/cv-a --evaluate-args="--threshold 0.3"
    python benchmarks/real_data.py --out runs/half --train-folds 3    # learning curve: 12 training patients

Builds `lgg_mri/kaggle_3m_folds` from --manual-dir (the Kaggle zip or kaggle_3m/), then for each
round of `brainmri_tfds.splits.cross_validation_splits` (default: 10 folds, 2 tested, 1 for
validation, so 5 rounds) runs `train.py` on the training folds and `evaluate.py` on the test
folds, twice: with the inference settings train.py chose on validation (inference.json) and
plain (threshold 0.5, no clean-up, no flip averaging). Every patient is scored once, by a model
that never saw them. Prints and writes --out/summary.json: per-patient Dice mean and median over
all patients (the mean with a 95% bootstrap interval, patients resampled), per round, and the
wall time of each step. `benchmarks/compare_runs.py A B` tells whether run B beat run A.

--ensemble RUN... trains nothing: each round scores the ensemble of the runs' models for that
round (`evaluate.py --model A B ...`; the first run's inference.json gives the chosen settings).
Every member of a round was trained on that round's folds only, so the test patients stay unseen.
--evaluate-args passes flags to the evaluate.py of the "chosen" scoring (e.g. a fixed threshold,
overriding inference.json); with --ensemble RUN it re-scores one run's models, without training.

Rounds already scored are kept (delete --out/roundN to redo one); an interrupted round resumes
(train.py resumes from its last finished epoch). Nothing here is committed: it is derived from
the real data.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the checkout's packages come first

from brainmri_tfds.splits import cross_validation_splits  # noqa: E402
from tuning.scoring import mean_interval  # noqa: E402

CONFIG = "kaggle_3m_folds"
FOLDS = 10
PLAIN = ["--threshold", "0.5", "--keep-fraction", "0", "--no-flip-average"]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manual-dir", default=str(ROOT.parent / "shared" / "data"),
                        help="folder with the Kaggle zip or kaggle_3m/ (default ../shared/data beside the checkout)")
    parser.add_argument("--data-dir", default="runs/real_data/tfds", help="TFDS data_dir (default runs/real_data/tfds)")
    parser.add_argument("--out", default="runs/real_data", help="output folder (default runs/real_data)")
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
    args = parser.parse_args(argv)
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
    return args


def build(manual_dir: str, data_dir: str, config: str = CONFIG) -> float:
    """Builds lgg_mri/<config> (default kaggle_3m_folds) unless already built; returns the seconds it took."""
    import tensorflow_datasets as tfds

    import brainmri_tfds  # noqa: F401  (registers lgg_mri)

    builder = tfds.builder(f"lgg_mri/{config}", data_dir=data_dir)
    if builder.is_prepared():
        return 0.0
    start = time.perf_counter()
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    return time.perf_counter() - start


def run(command: list[str]) -> float:
    """Runs a repository script, its output shown as it comes; returns its wall time in seconds."""
    print("$ " + " ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, *command], cwd=ROOT, check=True)
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
        return json.loads(record_path.read_text())
    if args.ensemble:
        trained, train_s = [Path(r) / folder.name for r in args.ensemble], 0.0
        for member in trained:
            if not (member / "model.keras").is_file():
                raise SystemExit(f"error: {member}: no model.keras (run that round first)")
            splits = json.loads((member / "config.json").read_text())["splits"]
            if (splits["train"], splits["validation"]) != (rotation.train, rotation.validation):
                raise SystemExit(f"error: {member} trained on {splits['train']} (validation {splits['validation']}), "
                                 f"not round {rotation.index}'s {rotation.train} ({rotation.validation})")
    else:
        trained = [folder]
        train_s = run(["train.py", "--dataset", f"lgg_mri/{CONFIG}", "--data-dir", args.data_dir,
                       "--train-split", rotation.train, "--validation-split", rotation.validation,
                       "--test-split", rotation.test, "--out", str(folder), *args.train_args])
    model = ["--model", *(str(f / "model.keras") for f in trained), "--data-dir", args.data_dir,
             "--split", rotation.test]
    evaluate_s = run(["evaluate.py", *model, "--out", str(folder / "eval"), *args.evaluate_args])
    run(["evaluate.py", *model, "--out", str(folder / "eval-plain"), *PLAIN])
    record = {"round": rotation.index, "train": rotation.train, "validation": rotation.validation,
              "test": rotation.test, "train_seconds": round(train_s, 1), "evaluate_seconds": round(evaluate_s, 1),
              "models": [str(f / "model.keras") for f in trained],
              "config": json.loads((trained[0] / "config.json").read_text()),
              "evaluate_args": args.evaluate_args}
    reports = {name: json.loads((folder / name / "report.json").read_text()) for name in ("eval", "eval-plain")}
    record["inference"] = {k: reports["eval"][k] for k in ("threshold", "keep_fraction", "flip_average")}
    for name, report in reports.items():
        record[name] = {p: s["dice"] for p, s in report["per_patient"].items()}
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from brainmri_tfds import LayoutError

    if not Path(args.manual_dir).is_dir():
        print(f"error: no Kaggle data in {args.manual_dir}: this benchmark needs the real patients "
              "(put Kaggle's zip or kaggle_3m/ there, or pass --manual-dir)", file=sys.stderr)
        return 2
    try:
        build_s = build(args.manual_dir, args.data_dir)
    except LayoutError as err:
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
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    Path(args.out, "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
