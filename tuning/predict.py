"""brainmri-predict: a tumor mask and its volume for each of your scans, with a model this project ships.

    brainmri-predict -i case.nii.gz -o masks/          # one FLAIR volume
    brainmri-predict -i cases/ -o masks/               # CASE_0000.nii.gz ... per case (nnU-Net naming)
    brainmri-predict -i dicom/ -o masks/               # a DICOM series per sequence, or folders of them
    brainmri-predict -i cases/ -o masks/ --channel-names 0000=T1,0001=T1ce,0002=T2,0003=FLAIR
    brainmri-predict -i cases/ -o masks/ --model runs/train/x      # or a packed .brainmri file, a shipped name

Writes to -o: CASE.nii.gz (uint8 0/1 on the FLAIR's exact grid), CASE.png (the slice with the
largest tumor, outlined), volumes.csv and report.json (per case: the model used, tumor volume
in mL, slices, largest axial diameter in mm; Dice and HD95 where a true mask CASE_seg.nii.gz or
--labels DIR/CASE.nii.gz is given), and CASE_probabilities.nii.gz with --save-probabilities.
Kaggle's layout (TIFF slices, with their masks or without) gives predictions/<slice>_pred_mask.png
in place of CASE.nii.gz, and no mL or mm (its files carry no voxel size).

Which channel is which sequence: --channel-names, else an nnU-Net dataset.json in or beside the
input folder ("channel_names"), else this project's rule (_0000 pre-contrast, _0001 FLAIR,
_0002 post-contrast); T2 is left out. Without --model, a case with all three sequences goes to the
shipped three-sequence model and a case with FLAIR alone to the shipped FLAIR-only model (where
this installation ships one). Bad input is one line naming the file, and nothing is written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

THREE_SEQUENCES = "lgg-unet-3seq"  # the shipped models' names (tuning/pretrained/<name>/)
FLAIR_ONLY = "lgg-unet-flair"
CITATION = ("Please cite: brainmri (CITATION.cff); Buda, Saha, Mazurowski, Comput Biol Med 109 (2019) 218-225; "
            "Mazurowski et al., J Neurooncol 133 (2017) 27-35; Clark et al., J Digit Imaging 26 (2013) 1045-1057 "
            "(TCGA-LGG, The Cancer Imaging Archive).")
NOTICE = ("For research only: not a medical device, not for diagnosis or treatment. The shipped weights derive "
          "from data licensed CC BY-NC-SA 4.0 and carry its terms (non-commercial).")


def parse_args(argv):
    from brainmri_tfds import readers
    from tuning.evaluation.predictor import add_engine_argument

    parser = argparse.ArgumentParser(prog="brainmri-predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-i", "--input", required=True,
                        help="a NIfTI file, a folder of NIfTI cases, DICOM series, or a Kaggle-layout folder or zip")
    parser.add_argument("-o", "--output", required=True, help="folder for the masks, volumes.csv and report.json")
    parser.add_argument("--model", nargs="+",
                        help="a shipped model's name, a run folder, a model.keras with config.json beside it, or a "
                             "packed .brainmri file (python -m tuning.models --pack); several: probabilities "
                             "averaged. Default: the shipped models, chosen per case by its sequences")
    readers.add_channel_names_argument(parser)
    parser.add_argument("--labels", help="a folder of true masks named CASE.nii.gz: adds Dice and HD95")
    parser.add_argument("--device", choices=("cpu", "gpu"),
                        help="where to compute (default: a GPU if TensorFlow sees one, else the CPU)")
    add_engine_argument(parser)
    parser.add_argument("--save-probabilities", action="store_true",
                        help="also write CASE_probabilities.nii.gz (float32 tumor probability on the FLAIR's grid)")
    args = parser.parse_args(argv)
    if args.device == "gpu" and args.engine == "litert":
        parser.error("--engine litert computes on the CPU; use --engine keras with --device gpu")
    return args


def choose_device(device: str | None) -> None:
    """Hides the GPUs from TensorFlow for 'cpu' (before any model is loaded); for 'gpu', ValueError
    when it sees none. Where there is no GPU driver, TensorFlow is not loaded to ask."""
    from brainmri_tfds.runtime import tensorflow_sees_a_gpu

    gpus = tensorflow_sees_a_gpu()
    if device == "cpu" and gpus:
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")
    elif device == "gpu" and not gpus:
        raise ValueError("--device gpu: TensorFlow sees no GPU here (use --device cpu)")


def load(spec: str, engine: str | None = None, device: str | None = None):
    """One model (its name, its members, its post-processing) from anything `tuning.models.locate`
    takes, computed by `engine` (`tuning.evaluation.inference.load_trained`); ValueError where
    `device` is 'gpu' and the model computes with LiteRT (on the CPU)."""
    from tuning.evaluation.cases import CaseModel
    from tuning.evaluation.inference import load_trained
    from tuning.evaluation.predictor import LiteRTPredictor
    from tuning.models import locate
    from tuning.postprocessing import DEFAULT
    from tuning.runfolder import InferenceChoice

    folder = locate(spec)  # once: a packed file is unpacked here
    model, run = load_trained(folder, engine=engine)
    if device == "gpu" and isinstance(model, LiteRTPredictor):
        raise ValueError(f"{spec}: holds model.tflite alone, which computes on the CPU (--device cpu)")
    chosen = InferenceChoice.read(folder)
    return CaseModel(str(spec), [(model, run.data)], chosen.settings if chosen else DEFAULT)


def model_chooser(specs: list[str] | None, engine: str | None = None, device: str | None = None):
    """A function case -> CaseModel: the given models for every case (averaged when several), or
    the shipped ones by the case's sequences; each loaded once, when first needed, for `engine`
    and `device` (see `load`)."""
    from tuning.evaluation.cases import CaseModel
    from tuning.models import shipped

    loaded: dict[str, CaseModel] = {}

    def get(spec: str) -> CaseModel:
        if spec not in loaded:
            loaded[spec] = load(spec, engine, device)
        return loaded[spec]

    if specs:
        for spec in specs:
            get(spec)  # every given model checked before any case is read
        members = [m for spec in specs for m in get(spec).members]
        one = CaseModel(" + ".join(specs), members, get(specs[0]).settings)
        return lambda case: one
    available = shipped()
    if THREE_SEQUENCES not in available and FLAIR_ONLY not in available:
        raise ValueError(f"this installation ships no model (looked for {THREE_SEQUENCES} and {FLAIR_ONLY}); "
                         "pass --model with a run folder or a packed .brainmri file")

    fallback = THREE_SEQUENCES if THREE_SEQUENCES in available else FLAIR_ONLY

    def by_sequences(case) -> CaseModel:
        wanted = FLAIR_ONLY if case.flair_only else THREE_SEQUENCES
        return get(wanted if wanted in available else fallback)
    return by_sequences


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(NOTICE, CITATION, sep="\n", flush=True)
    from brainmri_tfds import readers

    out = Path(args.output)
    try:
        cases = readers.find_cases(args.input, args.labels, args.channel_names)
        choose_device(args.device)
        model_for = model_chooser(args.model, args.engine, args.device)
        from tuning.evaluation.cases import predict_cases

        report = predict_cases(model_for, cases, out, args.save_probabilities)
    except (FileNotFoundError, ValueError) as err:  # ScanError and LayoutError are ValueErrors
        print(f"error: {err}", file=sys.stderr)
        return 2
    scored = f", mean Dice {report['volume_dice_mean']:.4f}" if "volume_dice_mean" in report else ""
    print(f"{len(report['cases'])} case(s){scored}: masks, volumes.csv and report.json in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
