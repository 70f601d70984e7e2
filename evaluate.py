"""Score a trained U-Net as radiology papers do, draw overlays, or predict masks for new scans.

    python evaluate.py --model runs/train/X/model.keras            # the test split it was trained for
    python evaluate.py --model M --input DIR_OR_ZIP                # new cases in Kaggle's layout
    python evaluate.py --model A/model.keras B/model.keras         # an ensemble: probabilities averaged

Image size, channels and dataset come from config.json beside the model. Predictions are made at
the model's input size and resized up to the native 256x256, where every score is computed. How
probabilities become masks (threshold, 3D clean-up, flip averaging; see tuning/inference.py) comes
from inference.json beside the model, which train.py chose on validation patients; flags override
it. Several models form an ensemble: each predicts as config.json beside it says, their
probabilities are averaged, and the first model's config.json and inference.json give the split
and the settings. Writes to --out (default: beside the (first) model, eval-<split> or eval-input):
report.json, dice_per_patient.png, overlays/ (best, median and worst patients and a few random
slices). With --input and no masks: predictions/<slice>_pred_mask.png (0/255, 256x256) and
<slice>_overlay.png.

Empty masks: Dice of a slice or patient with no tumour in truth and none predicted is 1.0, and 0.0
if only one is empty; slice_dice_mean leaves out slices empty in both; hd95 uses slices with
tumour in both (patients without any such slice are left out of hd95_mean). volume_dice_* is the
Dice of each patient over all their slices (Buda et al. 2019); volume_dice_mean_ci95 is a 95%
bootstrap interval of its mean, patients resampled (null with one patient). pixel_accuracy is
reported, never the headline: 99% of pixels are background.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class EvaluationError(RuntimeError):
    """An expected user error: one line, no traceback."""


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, nargs="+",
                        help="a model.keras written by train.py; several: an ensemble, probabilities averaged")
    parser.add_argument("--input", help="Kaggle-layout folder or zip of new patients (instead of a TFDS split)")
    parser.add_argument("--split", help="TFDS split to score, e.g. test or fold0+fold1 (default: the test split "
                                        "config.json names, else test)")
    parser.add_argument("--dataset", help="override config.json's dataset (lgg_mri or lgg_mri/synthetic)")
    parser.add_argument("--data-dir", help="TFDS data_dir (default: TFDS's)")
    parser.add_argument("--threshold", type=float, help="probability threshold (default: inference.json's, else 0.5)")
    parser.add_argument("--keep-fraction", type=float,
                        help="remove 3D components smaller than this fraction of the largest: 0 keeps all, "
                             "1 the largest only (default: inference.json's, else 0)")
    parser.add_argument("--flip-average", action=argparse.BooleanOptionalAction, default=None,
                        help="average with the prediction of the mirrored slice (default: inference.json's, else off)")
    parser.add_argument("--out", help="output folder (default: beside the model)")
    parser.add_argument("--overlays", type=int, default=4, help="random slices to draw besides the chosen patients")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random overlay slices")
    args = parser.parse_args(argv)
    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        parser.error("--threshold must be between 0 and 1")
    if args.keep_fraction is not None and not 0.0 <= args.keep_fraction <= 1.0:
        parser.error("--keep-fraction must be between 0 and 1")
    return args


def inference_settings(args):
    """inference.json beside the model (if train.py wrote one), with the flags given on top."""
    from tuning.inference import InferenceSettings
    from tuning.settings import read_json

    chosen = Path(args.model[0]).parent / "inference.json"
    values = read_json(chosen, "inference.json")["settings"] if chosen.is_file() else {}
    flags = {"threshold": args.threshold, "keep_fraction": args.keep_fraction, "flip_average": args.flip_average}
    return InferenceSettings.from_json({**values, **{k: v for k, v in flags.items() if v is not None}})


def load_model_and_settings(model_path: str, dataset: str | None, data_dir: str | None):
    """The model (safe mode), the DataSettings it was trained with and its test split (config.json beside it)."""
    import keras

    import tuning.hypermodel  # noqa: F401  (registers the U-Net's own layers for loading)
    from tuning.settings import DataSettings, read_json

    path = Path(model_path)
    if not path.is_file():
        raise EvaluationError(f"{path}: no such model file")
    try:
        config = read_json(path.parent / "config.json", "config.json (written by train.py beside the model)")
        data_json = {**config["data"], **({"dataset": dataset} if dataset else {})}
        data = DataSettings.from_json(data_json, data_dir)
        test_split = config.get("splits", {}).get("test", "test")
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise EvaluationError(str(err)) from err
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for a corrupt or foreign file
        reason = " ".join(str(err).split())  # Keras' messages span lines; the error is one line
        raise EvaluationError(f"{path}: not a loadable brainmri model ({type(err).__name__}: {reason})") from err
    expected = (None, data.image_size, data.image_size, data.n_channels)
    if tuple(model.input_shape) != expected:
        raise EvaluationError(
            f"{path}: model takes inputs {tuple(model.input_shape)} but config.json says "
            f"{data.image_size}px with {data.n_channels} channel(s) ({data.channels}, context {data.context})"
        )
    mask_shape = (None, data.image_size, data.image_size, 1)
    if not isinstance(model.output_shape, tuple) or tuple(model.output_shape) != mask_shape:
        raise EvaluationError(
            f"{path}: not a brainmri U-Net (it outputs {model.output_shape}, a U-Net outputs {mask_shape})"
        )
    return model, data, test_split


def input_slices(path: str):
    """The same from a Kaggle-layout folder or zip that never went through TFDS; mask None if absent."""
    from brainmri_tfds import layout

    source = layout.open_source(path)
    for item, image, mask in layout.read_slices(source, layout.list_slices(source, masks_required=False)):
        yield item.patient_id, item.slice_index, image, mask


def _clean(value):
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def draw_overlays(records, masks, report, out: Path, n_random: int, seed: int) -> list[Path]:
    """Best, median and worst patients (their largest tumour slice) and a few random slices."""
    import numpy as np

    from tuning.figures import overlay

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


def write_predictions(records, masks, out: Path) -> int:
    """<slice>_pred_mask.png (0/255) and <slice>_overlay.png for scans without masks."""
    import cv2
    import numpy as np

    from tuning.figures import overlay

    folder = out / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    for patient, record in records.items():
        for index, flair, predicted in zip(record.index, record.flair, masks[patient]):
            name = f"{patient}_{index}"
            cv2.imwrite(str(folder / f"{name}_pred_mask.png"), predicted.astype(np.uint8) * 255)
            overlay(flair, None, predicted, name, folder / f"{name}_overlay.png")
    return sum(len(r.index) for r in records.values())


def print_table(report: dict) -> None:
    rows = [
        ("patients / slices", f"{report['n_patients']} / {report['n_slices']}"),
        ("Dice per patient: mean", f"{report['volume_dice_mean']:.4f}"),
        ("                  95% CI of the mean", "{:.4f} - {:.4f} (bootstrap over patients)".format(
            *report["volume_dice_mean_ci95"])),
        ("                  median", f"{report['volume_dice_median']:.4f}"),
        ("                  std", f"{report['volume_dice_std']:.4f}"),
        ("Dice per slice (tumour in either)", f"{report['slice_dice_mean']:.4f}"),
        ("IoU / precision / recall", f"{report['iou']:.4f} / {report['precision']:.4f} / {report['recall']:.4f}"),
        ("HD95 mean (pixels)", f"{report['hd95_mean']:.2f} over {report['n_patients_hd95']} patients"),
        ("tumour-slice detection sens / spec",
         f"{report['tumor_detection']['sensitivity']:.4f} / {report['tumor_detection']['specificity']:.4f}"),
        ("pixel accuracy (not the headline)", f"{report['pixel_accuracy']:.4f}"),
    ]
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"  {name.ljust(width)}  {value}" for name, value in rows))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from brainmri_tfds import DatasetNotBuiltError, LayoutError
    from tuning.figures import dice_distribution
    from tuning.inference import predict_ensemble, split_slices
    from tuning.scoring import summarize
    from tuning.settings import write_json

    try:
        settings = inference_settings(args)
        members = [load_model_and_settings(path, args.dataset, args.data_dir) for path in args.model]
        data, split = members[0][1], args.split or members[0][2]
        records = predict_ensemble([(model, model_data) for model, model_data, _ in members],
                                   lambda: input_slices(args.input) if args.input else split_slices(data, split),
                                   settings.flip_average)
        if not records:
            raise EvaluationError("no slices to evaluate")
    except (EvaluationError, DatasetNotBuiltError, LayoutError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"masks: threshold {settings.threshold}, keep_fraction {settings.keep_fraction}, "
          f"flip_average {settings.flip_average}")
    masks = {p: settings.mask(r.probability) for p, r in records.items()}
    out = Path(args.out or Path(args.model[0]).parent / f"eval-{'input' if args.input else split.replace('+', '_')}")
    out.mkdir(parents=True, exist_ok=True)
    if not all(r.has_truth for r in records.values()):
        count = write_predictions(records, masks, out)
        print(f"no masks in {args.input}: wrote {count} predicted masks and overlays to {out / 'predictions'}")
        return 0
    report = summarize({p: r.truth_volume for p, r in records.items()}, masks)
    report = {
        **report,
        **settings.to_json(),
        "source": args.input or f"{data.dataset}:{split}",
        "model": args.model[0] if len(args.model) == 1 else args.model,
    }
    write_json(out / "report.json", _clean(report))
    dice_distribution({p: s["dice"] for p, s in report["per_patient"].items()}, out / "dice_per_patient.png")
    drawn = draw_overlays(records, masks, report, out, args.overlays, args.seed)
    print_table(report)
    print(f"wrote {out / 'report.json'}, {out / 'dice_per_patient.png'} and {len(drawn)} overlays in {out / 'overlays'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
