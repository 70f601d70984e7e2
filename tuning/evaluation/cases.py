"""Predicting cases of any format (`brainmri_tfds.readers`): a mask per case where the format keeps
its masks, the tumor's size, a quick-look picture, and scores where true masks are given.

Writes to `out`: the masks as the case's geometry writes them (NIfTI and DICOM: `CASE.nii.gz`,
uint8 0/1 on the FLAIR's shape and affine; Kaggle's slices: `predictions/<slice>_pred_mask.png`),
`CASE.png` (the slice with the largest tumor area, outlined), `volumes.csv` (a row per case: the
model that predicted it, volume in mL, slices with tumor, largest axial diameter in mm, and Dice
and HD95 in mm when the truth is known; mL and mm empty where the input has no voxel size),
`report.json` (the same per case; with true masks, the scores `evaluate.py` gives a TFDS split)
and, when asked, the probabilities (`CASE_probabilities.nii.gz`, float32 on the FLAIR's grid).
Every case is read and checked before anything is written. `brainmri-predict` and
`evaluate.py --input` both come here.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from brainmri_tfds.readers import Case, CaseSource
from tuning import runfolder
from tuning.evaluation.figures import overlay
from tuning.evaluation.inference import predict_ensemble
from tuning.evaluation.scoring import hd95_mm, summarize, tumor_measures

COLUMNS = ("case", "model", "volume_ml", "tumor_slices", "max_axial_diameter_mm", "dice", "hd95_mm")


@dataclasses.dataclass(frozen=True)
class CaseModel:
    """What predicts a case: a name for the output, the (model, data settings) members whose
    probabilities are averaged, and the post-processing."""

    name: str
    members: list
    settings: object  # tuning.postprocessing.InferenceSettings


def _write_files(out: Path, files: dict[str, bytes]) -> None:
    for name, contents in files.items():
        with runfolder.atomic_path(out / name) as partial:
            partial.write_bytes(contents)


def _quick_look(case: Case, mask_axial: np.ndarray, truth_axial, path: Path) -> None:
    """The axial slice with the largest predicted (else true) tumor area, outlined over FLAIR."""
    import cv2

    flair = case.geometry.flair_in_model_axes(case.images)
    areas = mask_axial.reshape(len(mask_axial), -1).sum(axis=1)
    if not areas.any() and truth_axial is not None:
        areas = truth_axial.reshape(len(truth_axial), -1).sum(axis=1)
    k = int(np.argmax(areas))
    image = cv2.normalize(flair[k], None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    title = f"{case.name}: axial slice {k + 1} of {len(flair)}"
    with runfolder.atomic_path(path) as partial:
        overlay(image, None if truth_axial is None else truth_axial[k], mask_axial[k], title, partial)


def predict_cases(model_for: Callable[[CaseSource], CaseModel], cases: list[CaseSource], out: Path,
                  save_probabilities: bool = False) -> dict:
    """Predicts every case with the model `model_for(case)` gives; writes the files above and
    returns the report."""
    for source in cases:  # every case readable and consistent, and its model loadable, before anything is written
        source.load()
        model_for(source)
    out.mkdir(parents=True, exist_ok=True)
    rows, truths, masks, hd95, used = [], {}, {}, {}, {}
    start = time.perf_counter()
    for number, source in enumerate(cases, start=1):
        case = source.load()
        geometry = case.geometry
        chosen = model_for(source)
        used[chosen.name] = chosen.settings.to_json()
        print(f"[{number}/{len(cases)}] {case.name}: {case.describe()}; model {chosen.name}", flush=True)
        for name in source.left_out:
            print(f"  note: {name} left out (a sequence the model does not take)", flush=True)
        for warning in geometry.warnings(case.images):
            print(f"  warning: {warning}", flush=True)
        slices = [(case.name, k, image, None) for k, image in enumerate(case.images)]
        volume = predict_ensemble(chosen.members, lambda: iter(slices), chosen.settings.flip_average,
                                  progress=False)[case.name]
        probability = geometry.to_native(volume.probability)
        mask = chosen.settings.mask(probability)
        _write_files(out, geometry.mask_files(case.name, mask))
        if save_probabilities:
            _write_files(out, geometry.probability_files(case.name, probability))
        spacing = geometry.slice_spacing()
        model_mask = geometry.in_model_axes(mask)
        row = {"case": case.name, "model": chosen.name, **tumor_measures(model_mask.transpose(1, 2, 0), spacing)}
        truth_axial = None
        if case.truth is not None:
            truth_axial = geometry.in_model_axes(case.truth)
            truths[case.name], masks[case.name] = truth_axial, model_mask
            hd95[case.name] = row["hd95_mm"] = hd95_mm(truth_axial, model_mask, spacing)
        _quick_look(case, model_mask, truth_axial, out / f"{case.name}.png")
        rows.append(row)
        elapsed = time.perf_counter() - start
        left = elapsed / number * (len(cases) - number)
        size = "" if spacing is None else f"{row['volume_ml']:.2f} mL "
        diameter = "" if spacing is None else f", largest axial diameter {row['max_axial_diameter_mm']:.1f} mm"
        print(f"  tumor {size}in {row['tumor_slices']} slices{diameter} ({elapsed:.0f} s so far, "
              f"about {left:.0f} s left)", flush=True)
    report = {"cases": {row["case"]: {k: v for k, v in row.items() if k != "case"} for row in rows},
              "models": used}
    if len(used) == 1:  # one model: its settings at the top, as evaluate.py's reports have them
        report.update(next(iter(used.values())))
    if truths:
        scores = summarize(truths, masks)
        for case, patient in scores["per_patient"].items():
            report["cases"][case]["dice"] = patient["dice"]
            patient["hd95_mm"] = hd95[case]
        finite = [v for v in hd95.values() if np.isfinite(v)]
        report.update(scores, hd95_mm_mean=float(np.mean(finite)) if finite else float("nan"))
    runfolder.write_report(out, report)
    _write_csv(out / "volumes.csv", [{"case": r["case"], **report["cases"][r["case"]]} for r in rows])
    return report


def _write_csv(path: Path, rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and np.isnan(v) else f"{v:.4f}" if isinstance(v, float) else v)
                         for k, v in row.items()})
    runfolder.write_text(path, text.getvalue())
