"""`python -m tuning.crossval compare A B`: did run B beat run A on the same patients? A paired comparison.

    python -m tuning.crossval compare runs/cv-a runs/cv-b            # chosen inference settings
    python -m tuning.crossval compare runs/cv-a runs/cv-b --plain    # threshold 0.5, nothing else

Reads the per-patient Dice of two `tuning.crossval run` outputs (their round*/round.json), pairs
the patients both scored and prints each run's mean, the mean difference B - A with its 95%
bootstrap interval (patients resampled: `tuning.evaluation.scoring.mean_interval` on the differences), how
many patients rose or fell by more than --margin, and the patients that moved most. An interval
that holds 0 means these patients do not tell the two runs apart. The last line is the same as
JSON. Writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tuning.evaluation.scoring import mean_interval


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", help="run folder A (tuning.crossval run --out)")
    parser.add_argument("candidate", help="run folder B, compared against A")
    parser.add_argument("--plain", action="store_true",
                        help="compare the plain scores (threshold 0.5, no clean-up) instead of the chosen settings")
    parser.add_argument("--margin", type=float, default=0.01,
                        help="a patient rose or fell only if its Dice moved by more than this (default 0.01)")
    parser.add_argument("--show", type=int, default=5, help="list this many patients that moved most (default 5)")


def patient_dice(run: Path, key: str) -> dict[str, float]:
    """Per-patient Dice of every scored round of a cross-validation run."""
    records = sorted(run.glob("round*/round.json"))
    if not records:
        raise ValueError(f"{run}: no round*/round.json (not a `tuning.crossval run` output, or no round finished)")
    return {p: d for record in records for p, d in json.loads(record.read_text())[key].items()}


def paired_row(values: np.ndarray, reference: np.ndarray, against: str) -> dict:
    """Mean (95% interval) and median of per-patient `values`, and their paired difference from
    `reference` (same patients, same order) as minus_<against> with its interval."""
    return {"mean": round(float(values.mean()), 4), "mean_ci95": [round(v, 4) for v in mean_interval(values)],
            "median": round(float(np.median(values)), 4),
            f"minus_{against}": round(float((values - reference).mean()), 4),
            f"minus_{against}_ci95": [round(v, 4) for v in mean_interval(values - reference)]}


def compare(baseline: dict[str, float], candidate: dict[str, float], margin: float, show: int) -> dict:
    """Paired comparison on the patients both runs scored; `show` patients that moved most."""
    patients = sorted(set(baseline) & set(candidate))
    if not patients:
        raise ValueError("the two runs share no scored patient")
    a = np.array([baseline[p] for p in patients])
    b = np.array([candidate[p] for p in patients])
    difference = b - a
    return {
        "patients": len(patients),
        "baseline_mean": round(float(a.mean()), 4),
        "candidate_mean": round(float(b.mean()), 4),
        "mean_difference": round(float(difference.mean()), 4),
        "mean_difference_ci95": [round(v, 4) for v in mean_interval(difference)],
        "rose": int((difference > margin).sum()),
        "fell": int((difference < -margin).sum()),
        "moved_most": {p: round(float(d), 4)
                       for p, d in sorted(zip(patients, difference), key=lambda x: -abs(x[1]))[:show]},
    }


def main(args: argparse.Namespace) -> int:
    key = "eval-plain" if args.plain else "eval"
    try:
        result = compare(patient_dice(Path(args.baseline), key), patient_dice(Path(args.candidate), key), args.margin,
                         args.show)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    low, high = result["mean_difference_ci95"]
    if not np.isfinite(low):
        verdict = "too few patients to tell"
    else:
        verdict = "not told apart" if low <= 0 <= high else ("B better" if low > 0 else "B worse")
    print(f"{result['patients']} patients ({'plain' if args.plain else 'chosen'} settings): "
          f"mean {result['baseline_mean']:.4f} (A) -> {result['candidate_mean']:.4f} (B)")
    print(f"B - A: {result['mean_difference']:+.4f}, 95% CI {low:+.4f} .. {high:+.4f}: {verdict}; "
          f"{result['rose']} patients rose, {result['fell']} fell (by more than {args.margin})")
    for patient, difference in result["moved_most"].items():
        print(f"  {patient}: {difference:+.4f}")
    print(json.dumps({**result, "verdict": verdict}))
    return 0

