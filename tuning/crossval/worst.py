"""`python -m tuning.crossval worst`: which patients a cross-validation run scores worst, and whether
it paints too little or too much tumor on them.

    python -m tuning.crossval worst runs/cv                     # the 12 lowest, chosen settings
    python -m tuning.crossval worst runs/cv --worst 5 --plain

Reads every round's report.json of a `tuning.crossval run` output (round*/eval/, or eval-plain/
with --plain) and prints the --worst patients by per-patient Dice, each with its true and
predicted tumor pixels and their ratio (below 1: under-segmented), how many of them are
under-segmented, and the ratio of predicted to true pixels summed over all the run's patients.
The last line is the same as JSON. Writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tuning.runfolder import read_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder (tuning.crossval run --out)")
    parser.add_argument("--worst", type=int, default=12, help="list this many lowest patients (default 12)")
    parser.add_argument("--plain", action="store_true",
                        help="the plain scores (threshold 0.5, no clean-up) instead of the chosen settings")


def per_patient(run: Path, scoring: str) -> dict[str, dict]:
    """evaluate.py's per_patient records of every scored round of a cross-validation run."""
    reports = sorted(run.glob(f"round*/{scoring}/report.json"))
    if not reports:
        raise ValueError(f"{run}: no round*/{scoring}/report.json (not a `tuning.crossval run` output, "
                         "or no round finished)")
    return {p: s for report in reports for p, s in read_report(report.parent)["per_patient"].items()}


def worst_patients(patients: dict[str, dict], worst: int) -> dict:
    """The `worst` lowest patients with their pixel counts, and the run's overall predicted/true ratio."""
    lowest = sorted(patients, key=lambda p: (patients[p]["dice"], p))[:worst]
    rows = [{"patient": p, "dice": round(patients[p]["dice"], 4), "true_pixels": patients[p]["true_pixels"],
             "predicted_pixels": patients[p]["predicted_pixels"]} for p in lowest]
    for row in rows:
        row["ratio"] = round(row["predicted_pixels"] / row["true_pixels"], 3) if row["true_pixels"] else None
    true = sum(s["true_pixels"] for s in patients.values())
    predicted = sum(s["predicted_pixels"] for s in patients.values())
    return {
        "patients": len(patients),
        "worst": rows,
        "under_segmented": sum(1 for row in rows if row["predicted_pixels"] < row["true_pixels"]),
        "predicted_over_true": round(predicted / true, 3) if true else None,
    }


def main(args: argparse.Namespace) -> int:
    if args.worst < 1:
        print("error: --worst must be at least 1", file=sys.stderr)
        return 2
    try:
        result = worst_patients(per_patient(Path(args.run), "eval-plain" if args.plain else "eval"), args.worst)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{'patient':<28} {'Dice':>6} {'true px':>9} {'predicted':>9} {'ratio':>6}")
    for row in result["worst"]:
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.3f}"
        print(f"{row['patient']:<28} {row['dice']:>6.3f} {row['true_pixels']:>9} {row['predicted_pixels']:>9} "
              f"{ratio:>6}")
    print(f"{result['under_segmented']} of the {len(result['worst'])} lowest predict fewer tumor pixels than the "
          f"truth; over all {result['patients']} patients, predicted / true pixels = {result['predicted_over_true']}")
    print(json.dumps(result))
    return 0

