"""What evaluate.py shows a reader: overlays of chosen slices and the table of scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tuning.evaluation.figures import overlay


def draw_overlays(records, masks, report, out: Path, n_random: int, seed: int) -> list[Path]:
    """Best, median and worst patients (their largest tumor slice) and a few random slices."""
    folder = out / "overlays"
    folder.mkdir(parents=True, exist_ok=True)
    ranked = sorted(report["per_patient"], key=lambda p: report["per_patient"][p]["dice"])
    chosen = {"worst": ranked[0], "median": ranked[len(ranked) // 2], "best": ranked[-1]}
    picks = []
    for tag, patient in chosen.items():
        areas = [t.sum() + p.sum() for t, p in zip(records[patient].truth, masks[patient])]
        picks.append((tag, patient, int(np.argmax(areas))))
    rng = np.random.default_rng(seed)
    every = [(p, i) for p in sorted(records) for i in range(len(records[p].index))]
    for k in rng.choice(len(every), size=min(n_random, len(every)), replace=False):
        picks.append(("random", *every[k]))
    written = []
    for tag, patient, i in picks:
        record = records[patient]
        name = f"{patient}_{record.index[i]}"
        path = folder / f"{tag}_{name}.png"
        title = f"{tag}: {name} (patient Dice {report['per_patient'][patient]['dice']:.3f})"
        overlay(record.flair[i], record.truth[i], masks[patient][i], title, path)
        written.append(path)
    return written


def print_table(report: dict) -> None:
    """The headline scores of a report.json, one per line."""
    rows = [
        ("patients / slices", f"{report['n_patients']} / {report['n_slices']}"),
        ("Dice per patient: mean", f"{report['volume_dice_mean']:.4f}"),
        ("                  95% CI of the mean", "{:.4f} - {:.4f} (bootstrap over patients)".format(
            *report["volume_dice_mean_ci95"])),
        ("                  median", f"{report['volume_dice_median']:.4f}"),
        ("                  std", f"{report['volume_dice_std']:.4f}"),
        ("Dice per slice (tumor in either)", f"{report['slice_dice_mean']:.4f}"),
        ("IoU / precision / recall", f"{report['iou']:.4f} / {report['precision']:.4f} / {report['recall']:.4f}"),
        ("HD95 mean (pixels)", f"{report['hd95_mean']:.2f} over {report['n_patients_hd95']} patients"),
        ("tumor-slice detection sens / spec",
         f"{report['tumor_detection']['sensitivity']:.4f} / {report['tumor_detection']['specificity']:.4f}"),
        ("pixel accuracy (not the headline)", f"{report['pixel_accuracy']:.4f}"),
    ]
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"  {name.ljust(width)}  {value}" for name, value in rows))
