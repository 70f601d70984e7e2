"""Predicting NIfTI cases (see `brainmri_tfds.scans`): a mask per case on the FLAIR's own grid, the
tumor's size, a quick-look picture, and scores where true masks are given.

Writes to `out`: `CASE.nii.gz` (uint8 0/1, the FLAIR's shape and affine), `CASE.png` (the slice
with the largest tumor area, outlined), `volumes.csv` (a row per case: the model that predicted
it, volume in mL, slices with tumor, largest axial diameter in mm, and Dice and HD95 in mm when
the truth is known), `report.json` (the same per case; with true masks, the scores `evaluate.py`
gives a TFDS split) and, when asked, `CASE_probabilities.nii.gz` (float32, the FLAIR's grid).
Every case is read and checked before anything is written. `brainmri-predict` and
`evaluate.py --input` both come here.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from brainmri_tfds import scans
from tuning import runfolder
from tuning.evaluation.figures import overlay
from tuning.evaluation.inference import predict_ensemble
from tuning.evaluation.scoring import hd95_mm, summarize, tumor_measures

COLUMNS = ("case", "model", "volume_ml", "tumor_slices", "max_axial_diameter_mm", "dice", "hd95_mm")


def describe(scan: scans.Scan) -> str:
    """Size, spacing and slices of a case, and which sequences it has."""
    shape = "x".join(str(n) for n in scan.shape)
    spacing = " x ".join(f"{s:.2f}" for s in scan.spacing)
    have = ", ".join(scans.SEQUENCE_LABELS[s] for s in scan.sequences)
    return f"{shape} voxels of {spacing} mm, {scan.images.shape[0]} axial slices ({have})"


@dataclasses.dataclass(frozen=True)
class CaseModel:
    """What predicts a case: a name for the output, the (model, data settings) members whose
    probabilities are averaged, and the post-processing."""

    name: str
    members: list
    settings: object  # tuning.postprocessing.InferenceSettings


def _write_nifti(path: Path, image) -> None:
    with runfolder.atomic_path(path) as partial:
        partial.write_bytes(gzip.compress(image.to_bytes(), compresslevel=6) if path.name.endswith(".gz")
                            else image.to_bytes())


def _quick_look(scan: scans.Scan, mask_axial: np.ndarray, truth_axial, path: Path) -> None:
    """The axial slice with the largest predicted (else true) tumor area, outlined over FLAIR."""
    import cv2

    flair = scan.in_model_axes(np.asanyarray(scan.reference.dataobj).astype(np.float32))
    areas = mask_axial.reshape(len(mask_axial), -1).sum(axis=1)
    if not areas.any() and truth_axial is not None:
        areas = truth_axial.reshape(len(truth_axial), -1).sum(axis=1)
    k = int(np.argmax(areas))
    image = cv2.normalize(flair[k], None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    title = f"{scan.case}: axial slice {k + 1} of {len(flair)}"
    with runfolder.atomic_path(path) as partial:
        overlay(image, None if truth_axial is None else truth_axial[k], mask_axial[k], title, partial)


def predict_cases(model_for: Callable[[scans.CaseFiles], CaseModel], cases: list[scans.CaseFiles], out: Path,
                  save_probabilities: bool = False) -> dict:
    """Predicts every case with the model `model_for(case)` gives; writes the files above and
    returns the report."""
    for case in cases:  # every case readable and consistent before anything is written
        scans.load_case(case)
    out.mkdir(parents=True, exist_ok=True)
    rows, truths, masks, hd95, used = [], {}, {}, {}, {}
    start = time.perf_counter()
    for number, case in enumerate(cases, start=1):
        scan = scans.load_case(case)
        chosen = model_for(case)
        used[chosen.name] = chosen.settings.to_json()
        print(f"[{number}/{len(cases)}] {case.case}: {describe(scan)}; model {chosen.name}", flush=True)
        for name in case.left_out:
            print(f"  note: {name} left out (a sequence the model does not take)", flush=True)
        for warning in scan.domain_warnings():
            print(f"  warning: {warning}", flush=True)
        slices = [(case.case, k, image, None) for k, image in enumerate(scan.images)]
        volume = predict_ensemble(chosen.members, lambda: iter(slices), chosen.settings.flip_average,
                                  progress=False)[case.case]
        probability = scan.to_native(volume.probability)
        mask = chosen.settings.mask(probability)
        _write_nifti(out / f"{case.case}.nii.gz", scan.mask_image(mask))
        if save_probabilities:
            _write_nifti(out / f"{case.case}_probabilities.nii.gz", scan.image_like(probability.astype(np.float32)))
        spacing = scan.slice_spacing()
        model_mask = scan.in_model_axes(mask)
        row = {"case": case.case, "model": chosen.name, **tumor_measures(model_mask.transpose(1, 2, 0), spacing)}
        truth_axial = None
        if scan.truth is not None:
            truth_axial = scan.in_model_axes(scan.truth)
            truths[case.case], masks[case.case] = truth_axial, model_mask
            hd95[case.case] = row["hd95_mm"] = hd95_mm(scan.truth, mask, scan.spacing)
        _quick_look(scan, model_mask, truth_axial, out / f"{case.case}.png")
        rows.append(row)
        elapsed = time.perf_counter() - start
        left = elapsed / number * (len(cases) - number)
        print(f"  tumor {row['volume_ml']:.2f} mL in {row['tumor_slices']} slices, largest axial diameter "
              f"{row['max_axial_diameter_mm']:.1f} mm ({elapsed:.0f} s so far, about {left:.0f} s left)", flush=True)
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
        writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()})
    runfolder.write_text(path, text.getvalue())
