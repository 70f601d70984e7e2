"""`python -m tuning.crossval epochs`: how other epochs, and averages of epochs' weights, would have
scored a cross-validation run's test patients, against the model kept on validation loss.

    python -m tuning.crossval run --out runs/cv --manual-dir DIR -- --keep-epoch-weights
    python -m tuning.crossval epochs runs/cv

Needs rounds trained with `train.py --keep-epoch-weights` (their epochs/ folders); others are
skipped. Each candidate (`candidate_epochs`) is picked from the round's history.csv, that is on the
validation patients only, so its test score is an honest one:
- kept: the epoch with the lowest validation loss (train.py's model.keras);
- highest validation patient Dice: the epoch with the highest val_patient_dice, from epoch
  `FIRST_EPOCH` on (an early model can paint blobs that a few patients score well);
- last epoch;
- last 5 averaged: the weights of the last 5 epochs averaged (stochastic weight averaging; batch
  norm's moving statistics are averaged too, not recomputed);
- best 5 averaged: the weights of the 5 epochs with the lowest validation loss averaged;
- last 5 ensembled, best 5 ensembled: the same epochs' tumor probabilities averaged instead (an
  ensemble of snapshots of one training: no extra training, 5 predictions a slice).

Each candidate's weights go into the round's model, which predicts the round's test patients with
the round's inference settings (inference.json). Scores are kept in round<k>/epochs.json, so a
rerun only reads them (and scores only candidates added since). Prints each candidate's mean (95%
interval) and median per-patient Dice over all the run's patients and its paired difference
against kept; the last line is all of it as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tuning.crossval.compare import paired_row
from tuning.runfolder import read_json, write_json

FIRST_EPOCH = 10
AVERAGED = 5
KEPT = "kept (lowest validation loss)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder (tuning.crossval run --out) trained with --keep-epoch-weights")


def candidate_epochs(history: dict[str, list[float]]) -> dict[str, tuple[list[int], str]]:
    """{candidate: (the epochs (1-based) it combines, "weights" or "probabilities": what it
    averages)} from a run's history columns."""
    epochs = [int(e) + 1 for e in history["epoch"]]
    by_loss = [e for _, e in sorted(zip(history["val_loss"], epochs))]
    later = [(score, e) for score, e in zip(history["val_patient_dice"], epochs) if e >= FIRST_EPOCH] or \
        list(zip(history["val_patient_dice"], epochs))
    last, best = epochs[-AVERAGED:], sorted(by_loss[:AVERAGED])
    return {
        KEPT: (by_loss[:1], "weights"),
        "highest validation patient Dice": ([max(later)[1]], "weights"),
        "last epoch": (epochs[-1:], "weights"),
        f"last {AVERAGED} averaged": (last, "weights"),
        f"best {AVERAGED} averaged": (best, "weights"),
        f"last {AVERAGED} ensembled": (last, "probabilities"),
        f"best {AVERAGED} ensembled": (best, "probabilities"),
    }


def average_weights(model, files: list[Path]) -> list[np.ndarray]:
    """The mean of the weights in `files` (each loaded into `model`), in `model.get_weights()` order."""
    total = None
    for path in files:
        model.load_weights(path)
        weights = model.get_weights()
        total = [w.astype(np.float64) for w in weights] if total is None else [t + w for t, w in zip(total, weights)]
    return [(t / len(files)).astype(w.dtype) for t, w in zip(total, weights)]


def round_scores(folder: Path) -> dict[str, dict]:
    """{candidate: {"epochs": [...], "combine": ..., "dice": {patient: Dice}}} of one round (each
    candidate computed once, then read from round<k>/epochs.json)."""
    path = folder / "epochs.json"
    scores = read_json(path, "epoch scores") if path.is_file() else {}
    from tuning.training import read_history

    candidates = {name: chosen for name, chosen in candidate_epochs(read_history(folder)).items() if name not in scores}
    if not candidates:
        return scores
    import keras

    from tuning.evaluation.inference import predict_patients, read_slices
    from tuning.evaluation.predictor import for_inference
    from tuning.evaluation.scoring import patient_dice
    from tuning.postprocessing import DEFAULT
    from tuning.runfolder import InferenceChoice, RunConfig

    record = read_json(folder / "round.json", "round record")
    run, choice = RunConfig.read(folder), InferenceChoice.read(folder)
    settings = choice.settings if choice else DEFAULT
    model = keras.saving.load_model(folder / "model.keras", compile=False)
    slices = list(read_slices(run.data, record["test"]))

    def probabilities(epochs: list[int]) -> dict:
        """The test patients' volumes predicted with `epochs`' weights averaged."""
        model.set_weights(average_weights(model, [folder / "epochs" / f"epoch_{e:03d}.weights.h5" for e in epochs]))
        return predict_patients(for_inference(model), slices, run.data, settings.flip_average, progress=False)

    one_epoch = {}  # epoch -> its volumes: several candidates predict with the same epoch's weights

    def predicted(epoch: int) -> dict:
        if epoch not in one_epoch:
            one_epoch[epoch] = probabilities([epoch])
        return one_epoch[epoch]

    for name, (epochs, combine) in candidates.items():
        if combine == "weights":
            volumes = predicted(epochs[0]) if len(epochs) == 1 else probabilities(epochs)
            averaged = {p: v.probability for p, v in volumes.items()}
        else:
            each = [predicted(e) for e in epochs]
            volumes = each[0]
            averaged = {p: np.mean([v[p].probability for v in each], axis=0) for p in volumes}
        masks = {p: settings.mask(probability) for p, probability in averaged.items()}
        scores[name] = {"epochs": epochs, "combine": combine,
                        "dice": patient_dice({p: v.truth_volume for p, v in volumes.items()}, masks)}
        write_json(path, scores)
        print(f"{folder.name}: {name} (epochs {epochs}) scored", flush=True)
    return scores


def compare_epochs(run: Path) -> dict:
    """Every candidate's scores over the rounds of `run` that kept their epochs' weights."""
    folders = sorted(f.parent for f in run.glob("round*/round.json") if (f.parent / "epochs").is_dir())
    if not folders:
        raise ValueError(f"{run}: no round*/ with round.json and epochs/ (train with --keep-epoch-weights)")
    table: dict[str, dict[str, float]] = {}
    for folder in folders:
        for name, scored in round_scores(folder).items():
            table.setdefault(name, {}).update(scored["dice"])
    patients = sorted(table[KEPT])
    kept = np.array([table[KEPT][p] for p in patients])
    rows = []
    for name, scores in table.items():
        rows.append({"candidate": name, **paired_row(np.array([scores[p] for p in patients]), kept, "kept")})
    return {"patients": len(patients), "rounds": [f.name for f in folders], "candidates": rows}


def main(args: argparse.Namespace) -> int:
    try:
        result = compare_epochs(Path(args.run))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"\n{result['patients']} patients, rounds {', '.join(result['rounds'])}; per-patient Dice by epoch choice")
    for row in result["candidates"]:
        low, high = row["mean_ci95"]
        diff_low, diff_high = row["minus_kept_ci95"]
        print(f"  {row['candidate']:<36} mean {row['mean']:.4f} ({low:.4f}-{high:.4f})  median {row['median']:.4f}  "
              f"minus kept {row['minus_kept']:+.4f} ({diff_low:+.4f} to {diff_high:+.4f})")
    print(json.dumps(result))
    return 0
