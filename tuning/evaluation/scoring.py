"""Held-out scores as pure functions of boolean masks (as nnU-Net's compute_metrics).

Masks are boolean arrays `[H, W]` (one slice) or `[N, H, W]` (a patient's slices).

Rules for empty masks, stated once and tested:
- Dice (and IoU) of a truth and a prediction that are both empty is 1.0: nothing to find,
  nothing found. If exactly one is empty it is 0.0.
- Per-patient ("volume") Dice pools all of a patient's slices, as Buda et al. (2019) report it.
- `slice_dice_mean` averages over the slices with tumor in the truth or the prediction; slices
  where both are empty are left out (they would all score 1.0).
- `mean_interval` gives a bootstrap confidence interval of a mean over patients (resampling
  patients, as the per-patient Dice's uncertainty comes from which patients were scored).
- HD95 needs a boundary on both sides: slices where either mask is empty are left out, and a
  patient with no such slice gets NaN, left out of `hd95_mean` (`n_patients_hd95` counts the rest).
"""

from __future__ import annotations

import numpy as np


def confusion(truth: np.ndarray, predicted: np.ndarray) -> tuple[int, int, int, int]:
    """(TP, FP, FN, TN) pixel counts."""
    truth, predicted = truth.astype(bool), predicted.astype(bool)
    tp = int(np.count_nonzero(truth & predicted))
    fp = int(np.count_nonzero(~truth & predicted))
    fn = int(np.count_nonzero(truth & ~predicted))
    return tp, fp, fn, truth.size - tp - fp - fn


def dice(tp: int, fp: int, fn: int) -> float:
    """2 TP / (2 TP + FP + FN); 1.0 when both masks are empty."""
    denominator = 2 * tp + fp + fn
    return 1.0 if denominator == 0 else 2 * tp / denominator


def iou(tp: int, fp: int, fn: int) -> float:
    """TP / (TP + FP + FN); 1.0 when both masks are empty."""
    denominator = tp + fp + fn
    return 1.0 if denominator == 0 else tp / denominator


def _ratio(numerator: int, denominator: int) -> float:
    return float("nan") if denominator == 0 else numerator / denominator


def _boundary(mask: np.ndarray) -> np.ndarray:
    import cv2

    eroded = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return mask & ~eroded.astype(bool)


def surface_distances(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Distances (pixels) from each boundary pixel of either 2D mask to the other mask's boundary."""
    import cv2

    distances = []
    for source, target in ((truth, predicted), (predicted, truth)):
        # distanceTransform measures to the nearest zero: make the target boundary the zeros.
        to_target = cv2.distanceTransform((~_boundary(target)).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        distances.append(to_target[_boundary(source)])
    return np.concatenate(distances)


def hd95(truth: np.ndarray, predicted: np.ndarray) -> float:
    """95th percentile of the symmetric boundary distances over slices where both masks have tumor."""
    truth, predicted = truth.astype(bool), predicted.astype(bool)
    if truth.ndim == 2:
        truth, predicted = truth[None], predicted[None]
    pooled = [surface_distances(t, p) for t, p in zip(truth, predicted) if t.any() and p.any()]
    return float(np.percentile(np.concatenate(pooled), 95)) if pooled else float("nan")


def patient_scores(truth: np.ndarray, predicted: np.ndarray) -> dict:
    """Scores of one patient: truth and predicted are `[slices, H, W]` booleans."""
    tp, fp, fn, _ = confusion(truth, predicted)
    return {
        "dice": dice(tp, fp, fn),
        "hd95": hd95(truth, predicted),
        "slices": int(truth.shape[0]),
        "tumor_slices": int(truth.reshape(truth.shape[0], -1).any(axis=1).sum()),
        "true_pixels": int(truth.sum()),
        "predicted_pixels": int(predicted.sum()),
    }


def mean_interval(values, confidence: float = 0.95, resamples: int = 9999, seed: int = 0) -> tuple[float, float]:
    """Bootstrap (BCa) confidence interval of the mean of `values` (one per patient), patients
    resampled with replacement (scipy.stats.bootstrap). (nan, nan) for fewer than 2 values; the
    value itself twice when all are equal (nothing varies to resample)."""
    values = np.asarray(values, np.float64)
    if values.size < 2:
        return float("nan"), float("nan")
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    from scipy import stats  # here: a one-case prediction need not import it (about a second)

    result = stats.bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=resamples,
                             method="BCa", random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def summarize(truth_by_patient: dict[str, np.ndarray], predicted_by_patient: dict[str, np.ndarray]) -> dict:
    """The report: per-patient Dice statistics, pooled pixel scores, slice detection, per patient."""
    per_patient = {p: patient_scores(truth_by_patient[p], predicted_by_patient[p]) for p in sorted(truth_by_patient)}
    volume_dice = np.array([s["dice"] for s in per_patient.values()])
    hd = np.array([s["hd95"] for s in per_patient.values()])
    totals = np.zeros(4, np.int64)
    slice_dice, detection = [], np.zeros(4, np.int64)  # detection: TP, FP, FN, TN over slices
    for p in per_patient:
        for t, q in zip(truth_by_patient[p], predicted_by_patient[p]):
            counts = confusion(t, q)
            totals += counts
            has, found = bool(t.any()), bool(q.any())
            if has or found:
                slice_dice.append(dice(*counts[:3]))
            detection += (has and found, found and not has, has and not found, not has and not found)
    tp, fp, fn, tn = (int(v) for v in totals)
    dtp, dfp, dfn, dtn = (int(v) for v in detection)
    return {
        "volume_dice_mean": float(volume_dice.mean()),
        "volume_dice_mean_ci95": list(mean_interval(volume_dice)),
        "volume_dice_median": float(np.median(volume_dice)),
        "volume_dice_std": float(volume_dice.std()),
        "slice_dice_mean": float(np.mean(slice_dice)) if slice_dice else float("nan"),
        "iou": iou(tp, fp, fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "hd95_mean": float(np.nanmean(hd)) if np.isfinite(hd).any() else float("nan"),
        "n_patients_hd95": int(np.isfinite(hd).sum()),
        "pixel_accuracy": (tp + tn) / max(tp + fp + fn + tn, 1),
        "tumor_detection": {"sensitivity": _ratio(dtp, dtp + dfn), "specificity": _ratio(dtn, dtn + dfp)},
        "n_patients": len(per_patient),
        "n_slices": int(sum(s["slices"] for s in per_patient.values())),
        "per_patient": per_patient,
    }


def hd95_mm(truth: np.ndarray, predicted: np.ndarray, spacing) -> float:
    """95th percentile of the symmetric distances (mm) between the 3D boundaries of two masks on a
    grid of `spacing` mm per axis; NaN unless both masks hold tumor, or when `spacing` is None
    (an input that gives no voxel size)."""
    from scipy import ndimage

    truth, predicted = truth.astype(bool), predicted.astype(bool)
    if spacing is None or not (truth.any() and predicted.any()):
        return float("nan")
    edges = [mask & ~ndimage.binary_erosion(mask, border_value=0) for mask in (truth, predicted)]
    distances = [ndimage.distance_transform_edt(~target, sampling=spacing)[source]
                 for source, target in ((edges[0], edges[1]), (edges[1], edges[0]))]
    return float(np.percentile(np.concatenate(distances), 95))


def tumor_measures(mask: np.ndarray, spacing) -> dict:
    """Size of the tumor in a mask [rows, cols, slices] of axial slices with `spacing` (row, column,
    slice) mm: its volume in mL, the slices it shows in, and its largest diameter within a slice
    (the longest segment between two of its pixel centres, in mm). `spacing` None (an input that
    gives no voxel size): the slices alone, NaN for mL and mm."""
    import cv2

    mask = mask.astype(bool)
    slices = int(mask.any(axis=(0, 1)).sum())
    if spacing is None:
        return {"volume_ml": float("nan"), "tumor_slices": slices, "max_axial_diameter_mm": float("nan")}
    rows_mm, cols_mm, slice_mm = (float(s) for s in spacing)
    diameter = 0.0
    for k in np.flatnonzero(mask.any(axis=(0, 1))):
        points = np.argwhere(mask[:, :, k]).astype(np.float32) * np.array([rows_mm, cols_mm], np.float32)
        hull = cv2.convexHull(points).reshape(-1, 2)
        gaps = hull[:, None, :] - hull[None, :, :]
        diameter = max(diameter, float(np.sqrt((gaps ** 2).sum(-1)).max()))
    return {"volume_ml": float(mask.sum()) * rows_mm * cols_mm * slice_mm / 1000.0,
            "tumor_slices": slices, "max_axial_diameter_mm": diameter}


def patient_dice(truths: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> dict[str, float]:
    """Each patient's Dice of all their slices pooled."""
    return {p: float(dice(*confusion(truths[p], masks[p])[:3])) for p in truths}


def mean_patient_dice(truths: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> float:
    """Mean over patients of `patient_dice`."""
    return float(np.mean(list(patient_dice(truths, masks).values())))
