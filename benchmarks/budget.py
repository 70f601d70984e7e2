"""Benchmark: wall time of the default `tuning/search.py` + `train.py --best` on Kaggle-sized data.

    python benchmarks/budget.py                    # 110 phantom patients, 20-52 slices each, as Kaggle's 3,929
    python benchmarks/budget.py --patients 6 --slices 3 4 --search-args "--max-epochs 1" --train-args "--epochs 1"
    python benchmarks/budget.py --manual-dir DIR80 --out runs/budget80   # real patients: the Kaggle download in DIR80

The budget: the default search and training on the 80 development patients must fit in 2 hours
on a 2-core CPU. --manual-dir DIR times them on real patients: it builds `lgg_mri/kaggle_3m` from
the Kaggle download in DIR (the zip or kaggle_3m/, as `tfds build --manual_dir` takes; the
patient-level train/validation/test split the user gets) and times the two commands a user types,
with their defaults. Without it, it times them on phantom patients (`brainmri_tfds.synthetic`)
with Kaggle's patient and slice counts in Kaggle's layout: the compute per epoch is that of real
slices (same size, same model); early stopping may end trials sooner or later than on real
patients. Writes --out/summary.json: slices per split, the seconds of each step and the CPU they
ran on.

Re-running after an interruption resumes: the phantoms and the build are kept, a step that
finished keeps its measured seconds (--out/steps.json) and is not run again, and an interrupted
one resumes (the search keeps its finished trials, training its finished epochs); summary.json
says which steps were resumed (their seconds cover only the resumed part). So the search and
the training can be measured in separate sittings. Once summary.json is written, re-running
prints it; delete --out to measure again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tuning.crossval.rounds import build, run  # noqa: E402
from tuning.precision import cpu_description  # noqa: E402

KAGGLE_PATIENTS = 110
KAGGLE_SLICES = (20, 52)  # drawn uniformly: about 36 per patient, 3,929 / 110 in Kaggle's data
PROJECT = "budget"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/budget", help="output folder (default runs/budget)")
    parser.add_argument("--patients", type=int, default=KAGGLE_PATIENTS,
                        help=f"phantom patients (default {KAGGLE_PATIENTS}, as Kaggle's)")
    parser.add_argument("--slices", type=int, nargs=2, default=KAGGLE_SLICES, metavar=("MIN", "MAX"),
                        help=f"slices per patient, drawn in [MIN, MAX] (default {KAGGLE_SLICES[0]} {KAGGLE_SLICES[1]})")
    parser.add_argument("--manual-dir", help="time the real patients of this Kaggle download (the zip or "
                        "kaggle_3m/) instead of phantoms; --patients and --slices are then unused")
    parser.add_argument("--search-args", default="", help="extra flags for tuning/search.py, quoted (default none)")
    parser.add_argument("--train-args", default="", help="extra flags for train.py, quoted (default none)")
    args = parser.parse_args(argv)
    if args.patients < 3 or not 1 <= args.slices[0] <= args.slices[1]:
        parser.error("--patients must be >= 3 (one per split) and --slices MIN MAX must satisfy 1 <= MIN <= MAX")
    return args


def write_phantoms(folder: Path, patients: int, slices: tuple[int, int]) -> None:
    """Writes the phantom download once; a folder left half-written by a kill is written again."""
    from brainmri_tfds import synthetic

    done = folder / ".complete"
    if done.is_file():
        return
    print(f"writing {patients} phantom patients to {folder}", flush=True)
    synthetic.write_patients(folder, patients, seed=0, slices=slices)
    done.write_text(json.dumps({"patients": patients, "slices": list(slices)}) + "\n")


def count_patients(download: Path) -> int:
    from brainmri_tfds import layout

    return len({s.patient_id for s in layout.list_slices(layout.open_source(download))})


def slices_per_split(data_dir: str) -> dict[str, int]:
    import tensorflow_datasets as tfds

    builder = tfds.builder("lgg_mri/kaggle_3m", data_dir=data_dir)
    return {name: info.num_examples for name, info in builder.info.splits.items()}


def timed_step(name: str, command: list[str], out: Path, resumable: Path) -> dict:
    """Runs one step unless steps.json records it finished; returns {"seconds", "resumed"}.
    A finished step is never run again, so a stop between the steps loses no measurement."""
    record = out / "steps.json"
    steps = json.loads(record.read_text()) if record.is_file() else {}
    if name not in steps:
        resumed = resumable.is_dir()  # left by an interrupted run: its seconds cover only the rest
        steps[name] = {"seconds": round(run(command), 1), "resumed": resumed}
        record.write_text(json.dumps(steps, indent=2) + "\n")
    return steps[name]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out).resolve()
    if (out / "summary.json").is_file():
        print(f"already measured (delete {out} to measure again):\n{(out / 'summary.json').read_text()}")
        return 0
    data_dir, tuning = str(out / "tfds"), out / "tuning"
    if args.manual_dir:
        download = Path(args.manual_dir).resolve()
        if not download.is_dir():
            print(f"error: --manual-dir {download} is not a folder", file=sys.stderr)
            return 2
    else:
        download = out / "phantoms"
        write_phantoms(download, args.patients, tuple(args.slices))
    build_s = build(str(download), data_dir, "kaggle_3m")
    splits = slices_per_split(data_dir)
    print(f"lgg_mri/kaggle_3m: {splits}", flush=True)
    search = timed_step("search", ["tuning/search.py", "--data-dir", data_dir, "--directory", str(tuning),
                                   "--project-name", PROJECT, *shlex.split(args.search_args)], out, tuning / PROJECT)
    train = timed_step("train", ["train.py", "--best", "--tuning-dir", str(tuning / PROJECT), "--data-dir", data_dir,
                                 "--out", str(out / "train"), *shlex.split(args.train_args)], out, out / "train")
    config = json.loads((out / "train" / "config.json").read_text())
    summary = {
        "data": str(download) if args.manual_dir else "phantoms",
        "patients": count_patients(download) if args.manual_dir else args.patients,
        "slices": splits,
        "search_and_training_slices": splits["train"] + splits["validation"],
        "build_seconds": round(build_s, 1),
        "search_seconds": search["seconds"],
        "train_seconds": train["seconds"],
        "search_and_train_seconds": round(search["seconds"] + train["seconds"], 1),
        "resumed": {"search": search["resumed"], "train": train["resumed"]},
        "best_hyperparameters": config["hyperparameters"],
        "best_epoch": config.get("best_epoch"),
        "search_args": args.search_args,
        "train_args": args.train_args,
        "machine": f"{platform.machine()}, {cpu_description()}",
        "date": time.strftime("%Y-%m-%d"),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
