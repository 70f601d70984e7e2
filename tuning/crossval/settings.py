"""`python -m tuning.crossval settings`: how every inference setting would have scored a
cross-validation run's test patients, against the settings the run was scored with.

    python -m tuning.crossval settings runs/cv

For each scored round of a `tuning.crossval run` output, predicts its test patients with its model,
with and without flip averaging, and scores every candidate setting train.py scores on
validation (threshold x 3D clean-up x flip averaging, `candidate_settings`)
per patient; the scores are kept in round<k>/settings.json, so a rerun only reads them. Prints each
setting's mean (95% interval) and median per-patient Dice over all the run's patients, best first,
with the settings each round was scored with (train.py's: runs before 2026-12-01 chose them on
validation) for comparison, and the paired difference of the best fixed setting against them. Choosing a setting by this table is choosing on
test patients: use it to pick the rule, not to report a score.

It then scores choice rules honestly: each rule (`RULES`, a part of the candidates) picks its
setting on each round's validation patients (scored here once and kept in
round<k>/validation-settings.json, or read from inference.json where train.py wrote them before
2026-12-07), the best of those it allows, the first on a tie; the rule's score is what that
setting gives the round's test patients. Each rule is paired against the settings the round was scored with
(round.json's "eval": train.py's). The last line is all of it as JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

from tuning.crossval.compare import paired_row
from tuning.evaluation.scoring import mean_interval, mean_patient_dice, patient_dice
from tuning.postprocessing import InferenceSettings
from tuning.runfolder import read_json, write_json

THRESHOLDS = (0.5, 0.3, 0.4, 0.6, 0.7)  # the default first: ties keep it
KEEP_FRACTIONS = (0.0, 0.1, 0.3, 1.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder (tuning.crossval run --out)")


def label(settings: dict) -> str:
    return (f"threshold {settings['threshold']}, keep {settings['keep_fraction']}, "
            f"{'flip' if settings['flip_average'] else 'no flip'}")


def candidate_settings(flips=(False, True), thresholds=THRESHOLDS,
                       keep_fractions=KEEP_FRACTIONS) -> list[InferenceSettings]:
    """The settings scored, simplest first (no flip, threshold 0.5, keep everything)."""
    return [InferenceSettings(threshold, keep, flip) for flip in sorted(flips)
            for threshold, keep in itertools.product(thresholds, keep_fractions)]


def score_settings(truths: dict[str, np.ndarray], probabilities: dict[bool, dict[str, np.ndarray]]) -> list[dict]:
    """Every candidate setting with its mean per-patient Dice, in `candidate_settings`' order.

    `probabilities[flip_average][patient]` holds [slices, H, W] probabilities with and without flip
    averaging."""
    table = []
    for settings in candidate_settings(tuple(probabilities)):
        flip = probabilities[settings.flip_average]
        score = mean_patient_dice(truths, {p: settings.mask(flip[p]) for p in truths})
        table.append({**settings.to_json(), "mean_patient_dice": score})
    return table


def first_best(table: list[dict]) -> dict:
    """The first row of a scored candidate table with the highest mean_patient_dice (candidates
    are tried simplest first, so a tie keeps the simpler)."""
    best = max(row["mean_patient_dice"] for row in table)
    return next(row for row in table if row["mean_patient_dice"] == best)


def predict_both_ways(model, data, split: str) -> tuple[dict[str, np.ndarray], dict[bool, dict[str, np.ndarray]]]:
    """(true masks, probabilities without and with flip averaging) of each patient of `split`."""
    from tuning.evaluation.inference import predict_patients, read_slices

    probabilities, truths = {}, {}
    for flip in (False, True):
        volumes = predict_patients(model, read_slices(data, split), data, flip, progress=False)
        probabilities[flip] = {p: v.probability for p, v in volumes.items()}
        truths = {p: v.truth_volume for p, v in volumes.items()}
    return truths, probabilities


def validation_candidates(folder: Path) -> list[dict]:
    """Every candidate setting's score on one round's validation patients: inference.json's where
    train.py wrote them, else scored once and kept in validation-settings.json."""
    written = read_json(folder / "inference.json", "inference choice").get("candidates")
    if written:
        return written
    path = folder / "validation-settings.json"
    if path.is_file():
        return read_json(path, "validation settings scores")["candidates"]
    from tuning.evaluation.inference import load_trained

    model, run = load_trained(folder / "model.keras")
    candidates = score_settings(*predict_both_ways(model, run.data, run.splits["validation"]))
    write_json(path, {"candidates": candidates})
    return candidates


def round_scores(folder: Path) -> dict[str, dict[str, float]]:
    """{setting label: {patient: Dice}} of one round's test patients (computed once, then read)."""
    path = folder / "settings.json"
    if path.is_file():
        return read_json(path, "settings scores")
    from tuning.evaluation.inference import load_trained

    record = read_json(folder / "round.json", "round record")
    model, run = load_trained(record["models"][0])
    if len(record["models"]) > 1:
        raise ValueError(f"{folder}: an ensemble round; score its members' runs instead")
    truths, probabilities = predict_both_ways(model, run.data, record["test"])
    scores = {}
    for settings in candidate_settings():
        flip = probabilities[settings.flip_average]
        scores[label(settings.to_json())] = patient_dice(truths, {p: settings.mask(flip[p]) for p in truths})
    write_json(path, scores)
    return scores


ALL = None
# name: (flip averaging, thresholds, keep fractions) a rule chooses among on validation; ALL: all candidates.
RULES = {
    "whole grid": (ALL, ALL, ALL),
    "flip always": ((True,), ALL, ALL),
    "flip, threshold 0.5": ((True,), (0.5,), ALL),
    "flip, threshold 0.5, keep < 1.0": ((True,), (0.5,), (0.0, 0.1, 0.3)),
    "fixed: threshold 0.5, flip": ((True,), (0.5,), (0.0,)),
    "fixed: threshold 0.5, flip, keep 1.0 (the default)": ((True,), (0.5,), (1.0,)),
    "fixed: threshold 0.5 (plain)": ((False,), (0.5,), (0.0,)),
}


def pick_on_validation(candidates: list[dict], flips=ALL, thresholds=ALL, keep_fractions=ALL) -> str:
    """The label of the best setting among those allowed, from the scored `candidates` (simplest
    first: `first_best` keeps the first on a tie)."""
    allowed = [c for c in candidates
               if (flips is ALL or c["flip_average"] in flips) and (thresholds is ALL or c["threshold"] in thresholds)
               and (keep_fractions is ALL or c["keep_fraction"] in keep_fractions)]
    if not allowed:
        raise ValueError("no candidate setting fits the rule")
    return label(first_best(allowed))


def compare_rules(tested: dict[Path, list[str]], table: dict[str, dict[str, float]],
                  chosen: dict[str, float]) -> list[dict]:
    """Each rule's test scores when it picks on validation, paired against `chosen` (the scores of
    the settings each round was scored with); `tested` holds each round folder's test patients."""
    picked = {name: {} for name in RULES}
    for folder, patients in tested.items():
        candidates = validation_candidates(folder)
        for name, rule in RULES.items():
            setting = pick_on_validation(candidates, *rule)
            picked[name].update({p: table[setting][p] for p in patients})
    patients = sorted(chosen)
    reference = np.array([chosen[p] for p in patients])
    rows = []
    for name, scores in picked.items():
        rows.append({"rule": name, **paired_row(np.array([scores[p] for p in patients]), reference, "chosen")})
    return rows


def compare_settings(run: Path) -> dict:
    """Every setting's scores over all rounds of `run`, and the chosen settings' (round.json's "eval")."""
    folders = sorted(f.parent for f in run.glob("round*/round.json"))
    if not folders:
        raise ValueError(f"{run}: no round*/round.json (not a `tuning.crossval run` output, or no round finished)")
    table: dict[str, dict[str, float]] = {}
    chosen: dict[str, float] = {}
    tested: dict[Path, list[str]] = {}
    for folder in folders:
        print(f"{folder.name}: scoring every setting on its test patients", flush=True)
        for name, scores in round_scores(folder).items():
            table.setdefault(name, {}).update(scores)
        scored = read_json(folder / "round.json", "round record")["eval"]
        chosen.update(scored)
        tested[folder] = list(scored)
    rows = []
    for name, scores in table.items():
        values = np.array([scores[p] for p in sorted(chosen)])
        rows.append({"settings": name, "mean": round(float(values.mean()), 4),
                     "mean_ci95": [round(v, 4) for v in mean_interval(values)],
                     "median": round(float(np.median(values)), 4)})
    rows.sort(key=lambda row: -row["mean"])
    chosen_values = np.array([chosen[p] for p in sorted(chosen)])
    best = np.array([table[rows[0]["settings"]][p] for p in sorted(chosen)])
    return {
        "patients": len(chosen), "rounds": len(folders), "settings": rows,
        "chosen": {"mean": round(float(chosen_values.mean()), 4), "median": round(float(np.median(chosen_values)), 4)},
        "best_minus_chosen": {"mean": round(float((best - chosen_values).mean()), 4),
                              "ci95": [round(v, 4) for v in mean_interval(best - chosen_values)]},
        "rules": compare_rules(tested, table, chosen),
    }


def main(args: argparse.Namespace) -> int:
    try:
        result = compare_settings(Path(args.run))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"\n{result['patients']} patients, {result['rounds']} round(s); per-patient Dice by inference setting")
    for row in result["settings"]:
        low, high = row["mean_ci95"]
        print(f"  {row['settings']:<38} mean {row['mean']:.4f} ({low:.4f}-{high:.4f})  median {row['median']:.4f}")
    chosen, gain = result["chosen"], result["best_minus_chosen"]
    own = "each round's own (round.json)"
    print(f"  {own:<38} mean {chosen['mean']:.4f}  median {chosen['median']:.4f}")
    print(f"best fixed setting minus chosen: {gain['mean']:+.4f} ({gain['ci95'][0]:+.4f} to {gain['ci95'][1]:+.4f}), "
          "paired over patients (picked on these test patients: optimistic)")
    print("\nchoice rules: each picks on each round's validation patients; scored on its test patients")
    for row in result["rules"]:
        low, high = row["minus_chosen_ci95"]
        print(f"  {row['rule']:<50} mean {row['mean']:.4f}  median {row['median']:.4f}  "
              f"minus chosen {row['minus_chosen']:+.4f} ({low:+.4f} to {high:+.4f})")
    print(json.dumps(result))
    return 0
