"""Score a trained U-Net as radiology papers do, draw overlays, or predict masks for new scans.

    python evaluate.py --model runs/train/X/model.keras            # the test split it was trained for
    python evaluate.py --model M --input case.nii.gz --out masks/  # new scans: NIfTI, DICOM, Kaggle's layout
    python evaluate.py --model A/model.keras B/model.keras         # an ensemble: probabilities averaged

Dataset, data_dir, image size and channels come from config.json beside the model (--dataset and
--data-dir override them). Predictions are made at the model's input size and resized up to the
native 256x256, where every score is computed. How probabilities become masks (threshold, 3D
clean-up, flip averaging) comes from inference.json beside the model (train.py writes the
defaults of tuning/postprocessing.py there; a model without it gets those defaults); flags
override it. Several models form an ensemble: each predicts as its own
config.json says, their probabilities are averaged, and the first model's files give the split and
the settings. Writes to --out (default: beside the (first) model, eval-<split> or eval-input):
report.json, dice_per_patient.png, overlays/ (best, median and worst patients and a few random
slices). With --input (any format brainmri_tfds/readers reads: a NIfTI file or folder, DICOM
series, Kaggle's folder or zip), what brainmri-predict writes (tuning/evaluation/cases.py): the
masks (CASE.nii.gz on each FLAIR's grid; for Kaggle's slices predictions/<slice>_pred_mask.png),
CASE.png, volumes.csv and report.json; true masks (CASE_seg.nii.gz, --labels DIR/CASE.nii.gz,
Kaggle's _mask.tif) add the scores. The scores and their rules for empty masks:
tuning/evaluation/scoring.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv):
    from brainmri_tfds import readers
    from tuning.evaluation.predictor import add_engine_argument

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, nargs="+",
                        help="a model.keras written by train.py (or its run folder, a packed .brainmri file, a "
                             "shipped model's name); several: an ensemble, probabilities averaged")
    parser.add_argument("--input", help="new patients instead of a TFDS split: a NIfTI file, a folder of NIfTI cases "
                                        "(CASE_0000/0001/0002.nii.gz), DICOM series, or a Kaggle-layout folder or zip")
    parser.add_argument("--labels", help="with NIfTI or DICOM --input: a folder of true masks named CASE.nii.gz")
    readers.add_channel_names_argument(parser)
    add_engine_argument(parser)
    parser.add_argument("--split", help="TFDS split to score, e.g. test or fold0+fold1 (default: the test split "
                                        "config.json names, else test)")
    parser.add_argument("--dataset", help="override config.json's dataset (lgg_mri or lgg_mri/synthetic)")
    parser.add_argument("--data-dir", help="TFDS data_dir (default: the one config.json records)")
    parser.add_argument("--threshold", type=float, help="probability threshold (default: inference.json's, else 0.5)")
    parser.add_argument("--keep-fraction", type=float,
                        help="remove 3D components smaller than this fraction of the largest: 0 keeps all, "
                             "1 the largest only (default: inference.json's, else 1)")
    parser.add_argument("--flip-average", action=argparse.BooleanOptionalAction, default=None,
                        help="average with the prediction of the mirrored slice (default: inference.json's, else on)")
    parser.add_argument("--flair-only", action="store_true",
                        help="score each patient as if FLAIR were all they had: pre- and post-contrast replaced "
                             "by FLAIR, as a FLAIR-only scan is filled (what a three-sequence model gives such scans)")
    parser.add_argument("--out", help="output folder (default: beside the model)")
    parser.add_argument("--overlays", type=int, default=4, help="random slices to draw besides the chosen patients")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random overlay slices")
    args = parser.parse_args(argv)
    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        parser.error("--threshold must be between 0 and 1")
    if args.keep_fraction is not None and not 0.0 <= args.keep_fraction <= 1.0:
        parser.error("--keep-fraction must be between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from brainmri_tfds import DatasetNotBuiltError, readers
    from tuning.evaluation.cases import CaseModel, predict_cases
    from tuning.evaluation.figures import dice_distribution
    from tuning.evaluation.inference import flair_only, load_trained, predict_ensemble, read_slices
    from tuning.models import locate
    from tuning.postprocessing import DEFAULT
    from tuning.evaluation.report import draw_overlays, print_table
    from tuning.evaluation.scoring import summarize
    from tuning.runfolder import InferenceChoice, write_report

    flags = {"threshold": args.threshold, "keep_fraction": args.keep_fraction, "flip_average": args.flip_average}
    try:
        folders = [locate(spec) for spec in args.model]  # once each: a packed file is unpacked here
        chosen = InferenceChoice.read(folders[0])
        settings = dataclasses.replace(chosen.settings if chosen else DEFAULT,
                                       **{k: v for k, v in flags.items() if v is not None})
        members = [load_trained(folder, args.dataset, args.data_dir, args.engine) for folder in folders]
        if args.input is not None:
            cases = readers.find_cases(args.input, args.labels, args.channel_names)
            if args.flair_only:
                cases = [readers.FlairAlone(case) for case in cases]
            out = Path(args.out or Path(args.model[0]).parent / f"eval-input{'-flair-only' if args.flair_only else ''}")
            case_model = CaseModel(" + ".join(args.model), [(m, run.data) for m, run in members], settings)
            report = predict_cases(lambda case: case_model, cases, out)
            if "volume_dice_mean" in report:
                print_table(report)
            print(f"{len(report['cases'])} cases: masks, volumes.csv and report.json in {out}")
            return 0
        data, split = members[0][1].data, args.split or members[0][1].test_split
        slices = (lambda: flair_only(read_slices(data, split))) if args.flair_only else \
            (lambda: read_slices(data, split))
        records = predict_ensemble([(model, run.data) for model, run in members], slices, settings.flip_average)
        if not records:
            raise ValueError("no slices to evaluate")
    except DatasetNotBuiltError as err:
        print(f"error: {err}" + ("" if args.data_dir else "\n(that data_dir is the one config.json records; "
                                 "--data-dir names another)"), file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as err:  # ScanError and LayoutError are ValueErrors
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"masks: threshold {settings.threshold}, keep_fraction {settings.keep_fraction}, "
          f"flip_average {settings.flip_average}")
    masks = {p: settings.mask(r.probability) for p, r in records.items()}
    scored = split.replace("+", "_")
    out = Path(args.out or Path(args.model[0]).parent / f"eval-{scored}{'-flair-only' if args.flair_only else ''}")
    out.mkdir(parents=True, exist_ok=True)
    report = {**summarize({p: r.truth_volume for p, r in records.items()}, masks), **settings.to_json(),
              "source": f"{data.dataset}:{split}", "flair_only": args.flair_only,
              "model": args.model[0] if len(args.model) == 1 else args.model}
    path = write_report(out, report)
    dice_distribution({p: s["dice"] for p, s in report["per_patient"].items()}, out / "dice_per_patient.png")
    drawn = draw_overlays(records, masks, report, out, args.overlays, args.seed)
    print_table(report)
    print(f"wrote {path}, {out / 'dice_per_patient.png'} and {len(drawn)} overlays in {out / 'overlays'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
