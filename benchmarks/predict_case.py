"""How long `brainmri-predict` takes for a case of 30 axial slices, as a user runs it.

    python benchmarks/predict_case.py                          # the shipped models
    python benchmarks/predict_case.py --model runs/train/x     # any model --model takes
    python benchmarks/predict_case.py --untrained              # the default U-Net, random weights (same time)
    python benchmarks/predict_case.py --engine keras           # TensorFlow computes the shipped models

Writes phantom NIfTI cases (three sequences, 30 slices of 256x256, 0.9 x 0.9 x 5 mm) to a
temporary folder, without their true masks (a user's scans have none; with them the command also
scores), and times the whole command in a fresh process (Python, TensorFlow and the model loading
included) on 1 case and on 1 + EXTRA cases; the difference gives the seconds of each further
case. Prints one JSON line with both, the model, the engine and the CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tuning.evaluation.predictor import ENGINES

SLICES = 30


def untrained_run(folder: Path) -> Path:
    """A run folder holding the default U-Net (train.py's architecture and data settings), untrained."""
    from brainmri_tfds.settings import DataSettings
    from tuning.runfolder import RunConfig
    from tuning.architecture import UNetArchitecture
    from tuning.unet import build_unet

    data = DataSettings()
    model = build_unet(data.image_size, data.n_channels, **UNetArchitecture().keywords())
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    RunConfig(data).write(folder)
    return folder


def timed_command(cases: Path, out: Path, options: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(["brainmri-predict", "-i", str(cases), "-o", str(out), *options], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="what brainmri-predict --model takes (default: the shipped models)")
    source.add_argument("--untrained", action="store_true", help="the default U-Net with random weights")
    parser.add_argument("--engine", choices=ENGINES,
                        help="brainmri-predict's --engine (default: its own default)")
    parser.add_argument("--extra", type=int, default=3, help="further cases in the second run (default 3)")
    args = parser.parse_args(argv)
    if args.extra < 1:
        parser.error("--extra must be at least 1")
    from brainmri_tfds import synthetic
    from tuning.precision import cpu_description

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model = ["--model", args.model] if args.model else []
        if args.untrained:
            model = ["--model", str(untrained_run(scratch / "untrained"))]
        options = model + (["--engine", args.engine] if args.engine else [])
        one, many = scratch / "one", scratch / "many"
        synthetic.write_nifti_cases(many, 1 + args.extra, seed=11, slices=(SLICES, SLICES))
        for truth in many.glob("*_seg.nii.gz"):
            truth.unlink()
        one.mkdir()
        for path in sorted(many.glob("*_000[0-2].nii.gz"))[:3]:
            (one / path.name).write_bytes(path.read_bytes())
        single = timed_command(one, scratch / "out-one", options)
        several = timed_command(many, scratch / "out-many", options)
    result = {"slices_per_case": SLICES, "command_one_case_s": round(single, 1),
              "each_further_case_s": round((several - single) / args.extra, 2),
              "model": "untrained default U-Net" if args.untrained else (args.model or "shipped"),
              "engine": args.engine or "brainmri-predict's default",
              "machine": f"{platform.machine()}, {cpu_description()}"}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
