"""Predicting NIfTI cases (see `brainmri_tfds.scans`): a mask per case on the FLAIR's own grid, the
tumor's size, a quick-look picture, and scores where true masks are given.

Writes to `out`: `CASE.nii.gz` (uint8 0/1, the FLAIR's shape and affine), `CASE.png` (the slice
with the largest tumor area, outlined), `volumes.csv` (a row per case: volume in mL, slices with
tumor, largest axial diameter in mm, and Dice and HD95 in mm when the truth is known) and
`report.json` (the same per case; with true masks, the scores `evaluate.py` gives a TFDS split).
Every case is read and checked before anything is written.
"""

from __future__ import annotations

import csv
import gzip
import io
import time
from pathlib import Path

import numpy as np

from brainmri_tfds import scans
from tuning import runfolder
from tuning.evaluation.figures import overlay
from tuning.evaluation.inference import predict_ensemble
from tuning.evaluation.scoring import hd95_mm, summarize, tumor_measures

COLUMNS = ("case", "volume_ml", "tumor_slices", "max_axial_diameter_mm", "dice", "hd95_mm")


def describe(scan: scans.Scan) -> str:
    """Size, spacing and slices of a case, and which sequences it has."""
    shape = "x".join(str(n) for n in scan.shape)
    spacing = " x ".join(f"{s:.2f}" for s in scan.spacing)
    named = {"0000": "pre-contrast", "0001": "FLAIR", "0002": "post-contrast"}
    have = ", ".join(named[s] for s in scan.sequences)
    return f"{shape} voxels of {spacing} mm, {scan.images.shape[0]} axial slices ({have})"


def _model_axes(scan: scans.Scan, volume: np.ndarray) -> np.ndarray:
    """A volume on the FLAIR's grid turned to [slices, rows, cols] of axial slices (for slice-wise scores)."""
    from nibabel import orientations

    forward, _ = scans._orientation(scan.reference.affine)
    return orientations.apply_orientation(volume, forward).transpose(2, 0, 1)


def _write_nifti(path: Path, image) -> None:
    with runfolder.atomic_path(path) as partial:
        partial.write_bytes(gzip.compress(image.to_bytes(), compresslevel=6) if path.name.endswith(".gz")
                            else image.to_bytes())


def _quick_look(scan: scans.Scan, mask_axial: np.ndarray, truth_axial, path: Path) -> None:
    """The axial slice with the largest predicted (else true) tumor area, outlined over FLAIR."""
    import cv2

    flair = _model_axes(scan, np.asanyarray(scan.reference.dataobj).astype(np.float32))
    areas = mask_axial.reshape(len(mask_axial), -1).sum(axis=1)
    if not areas.any() and truth_axial is not None:
        areas = truth_axial.reshape(len(truth_axial), -1).sum(axis=1)
    k = int(np.argmax(areas))
    image = cv2.normalize(flair[k], None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    title = f"{scan.case}: axial slice {k + 1} of {len(flair)}"
    with runfolder.atomic_path(path) as partial:
        overlay(image, None if truth_axial is None else truth_axial[k], mask_axial[k], title, partial)


def predict_cases(members: list[tuple], settings, cases: list[scans.CaseFiles], out: Path) -> dict:
    """Predicts every case with the (model, data settings) `members` (probabilities averaged) and
    `settings`; writes the files above and returns the report."""
    for case in cases:  # every case readable and consistent before anything is written
        scans.load_case(case)
    out.mkdir(parents=True, exist_ok=True)
    rows, truths, masks, hd95 = [], {}, {}, {}
    start = time.perf_counter()
    for number, case in enumerate(cases, start=1):
        scan = scans.load_case(case)
        print(f"[{number}/{len(cases)}] {case.case}: {describe(scan)}", flush=True)
        for warning in scan.domain_warnings():
            print(f"  warning: {warning}: expect lower accuracy", flush=True)
        slices = [(case.case, k, image, None) for k, image in enumerate(scan.images)]
        volume = predict_ensemble(members, lambda: iter(slices), settings.flip_average, progress=False)[case.case]
        mask = settings.mask(scan.to_native(volume.probability))
        _write_nifti(out / f"{case.case}.nii.gz", scan.mask_image(mask))
        spacing = scan.slice_spacing()
        model_mask = _model_axes(scan, mask)
        row = {"case": case.case, **tumor_measures(model_mask.transpose(1, 2, 0), spacing)}
        truth_axial = None
        if scan.truth is not None:
            truth_axial = _model_axes(scan, scan.truth)
            truths[case.case], masks[case.case] = truth_axial, model_mask
            hd95[case.case] = row["hd95_mm"] = hd95_mm(scan.truth, mask, scan.spacing)
        _quick_look(scan, model_mask, truth_axial, out / f"{case.case}.png")
        rows.append(row)
        elapsed = time.perf_counter() - start
        left = elapsed / number * (len(cases) - number)
        print(f"  tumor {row['volume_ml']:.2f} mL in {row['tumor_slices']} slices, largest axial diameter "
              f"{row['max_axial_diameter_mm']:.1f} mm ({elapsed:.0f} s so far, about {left:.0f} s left)", flush=True)
    report = {"cases": {row["case"]: {k: v for k, v in row.items() if k != "case"} for row in rows},
              **settings.to_json()}
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
