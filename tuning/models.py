"""Where a trained model comes from, and how one travels to a colleague.

    folder = locate("lgg-unet-3seq")                # a shipped model, by name (tuning/pretrained/<name>/)
    folder = locate("runs/train/x")                 # a run folder train.py wrote
    folder = locate("runs/train/x/model.keras")     # its model file (config.json beside it)
    folder = locate("x.brainmri")                   # a packed model: unpacked into a temporary folder
    pack("runs/train/x", "x.brainmri")              # model.keras (no optimizer state), model.tflite, config.json, inference.json
    write_model_folder(["runs/train/x"], "tuning/pretrained/name")   # the same files, as a shipped model's folder
    write_model_folder(["runs/cv/round0", ..., "runs/cv/round4"], out, float16=True)  # their average, half the bytes
    write_model_folder([...], out, float16=True, litert_only=True)   # model.tflite alone: the 25 MB limit

Every form ends as a folder holding `model.keras` and `config.json`, and `inference.json` when
the run wrote one (`tuning.runfolder` reads them). A shipped or packed model also holds its LiteRT
copy, `model.tflite` (the same weights, batch norm folded), which predicts on a CPU without
TensorFlow (`tuning.evaluation.predictor.LiteRTPredictor`). A shipped model may hold
`model.tflite` alone (`--ship ... --litert-only`): an average of several trainings is several
U-Nets, and both files of it would not fit the 25 MB all shipped weights stay within; it then
computes on the CPU only. A shipped model's folder also holds its model card (README.md) and
licence (LICENSE).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import zipfile
from pathlib import Path

SHIPPED = Path(__file__).resolve().parent / "pretrained"
PACKED_SUFFIX = ".brainmri"
MODEL_FILE = "model.keras"
LITERT_FILE = "model.tflite"
PACKED_FILES = (MODEL_FILE, "config.json", "inference.json", LITERT_FILE)  # the first two required
WEIGHTS_FILE = "model.weights.h5"  # inside a .keras file


def holds_a_model(folder: Path) -> bool:
    """Whether `folder` holds a model file: model.keras, or model.tflite alone."""
    return (folder / MODEL_FILE).is_file() or (folder / LITERT_FILE).is_file()


def shipped() -> dict[str, Path]:
    """The models this installation ships, by name."""
    if not SHIPPED.is_dir():
        return {}
    return {folder.name: folder for folder in sorted(SHIPPED.iterdir()) if holds_a_model(folder)}


def locate(spec: str | Path) -> Path:
    """The folder holding the model `spec` names (see the module's docstring); ValueError, one
    line naming `spec`, when it names none."""
    path = Path(spec)
    if path.is_file() and path.name.endswith(PACKED_SUFFIX):
        return unpack(path)
    if path.is_file():
        if path.suffix != ".keras":
            raise ValueError(f"{path}: not a model (a model.keras, a run folder, a packed {PACKED_SUFFIX} file "
                             f"or a shipped model's name)")
        return path.parent
    if path.is_dir():
        if not holds_a_model(path):
            raise ValueError(f"{path}: no {MODEL_FILE} or {LITERT_FILE} in this folder "
                             "(not a run folder train.py wrote)")
        return path
    models = shipped()
    if str(spec) in models:
        return models[str(spec)]
    known = ", ".join(models) or "none in this installation"
    raise ValueError(f"{spec}: no such model file or folder, and not a shipped model's name (shipped: {known})")


def write_model_folder(folders: list[str | Path], out: str | Path, float16: bool = False,
                       litert_only: bool = False) -> Path:
    """The model of the run folder, or the average of several runs' models (`tuning.ensemble`; each
    must take the same input), without optimizer state, with the first run's config.json (without
    the machine's data_dir) and inference.json, and its LiteRT copy (`LITERT_FILE`, the same weights),
    written into `out`: what a packed file or a shipped model holds. `float16`: the weights stored in
    half precision in both files (read back into float32). `litert_only`: no model.keras is kept."""
    import dataclasses

    import keras

    from tuning.ensemble import average_models
    from tuning.export import as_float32, write_litert
    from tuning.runfolder import RunConfig
    from tuning.unet import fold_batch_norm  # importing tuning.unet registers its layers for loading

    folders, out = [locate(folder) for folder in folders], Path(out)
    runs = [RunConfig.read(folder) for folder in folders]  # readable config.json files, or a one-line error
    if len({dataclasses.replace(run.data, data_dir=None) for run in runs}) > 1:
        raise ValueError(f"{', '.join(map(str, folders))}: the runs prepare their input differently (config.json "
                         "data); their models cannot be averaged")
    models = [keras.saving.load_model(folder / MODEL_FILE, compile=False, safe_mode=True) for folder in folders]
    model = models[0] if len(models) == 1 else average_models(models, name=f"ensemble{len(models)}_{models[0].name}")
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / MODEL_FILE)  # not compiled: no optimizer state
    if float16:
        _store_weights_in_float16(out / MODEL_FILE)
    saved = keras.saving.load_model(out / MODEL_FILE, compile=False, safe_mode=True)  # the weights as stored
    write_litert(fold_batch_norm(as_float32(saved)), out / LITERT_FILE, float16)
    if litert_only:
        (out / MODEL_FILE).unlink()
    dataclasses.replace(runs[0], data=dataclasses.replace(runs[0].data, data_dir=None)).write(out)
    if (folders[0] / "inference.json").is_file():
        shutil.copyfile(folders[0] / "inference.json", out / "inference.json")
    return out


def _store_weights_in_float16(path: Path) -> None:
    """Rewrites a saved .keras file with its float32 weights stored as float16: Keras reads them back
    into the model's float32 variables, so only the file changes (about half its size)."""
    import io

    import h5py
    import numpy as np

    from tuning.runfolder import atomic_path

    def copy(source, target) -> None:
        target.attrs.update(source.attrs)
        for name, item in source.items():
            if isinstance(item, h5py.Group):
                copy(item, target.create_group(name))
            else:
                values = item[()]
                copied = target.create_dataset(name, data=values.astype(np.float16) if values.dtype == np.float32
                                               else values)
                copied.attrs.update(item.attrs)

    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    halved = io.BytesIO()
    with h5py.File(io.BytesIO(members[WEIGHTS_FILE]), "r") as source, h5py.File(halved, "w") as target:
        copy(source, target)
    members[WEIGHTS_FILE] = halved.getvalue()
    with atomic_path(path) as partial, zipfile.ZipFile(partial, "w") as archive:
        for name, contents in members.items():
            archive.writestr(name, contents)


def pack(folders: list[str | Path], out: str | Path, float16: bool = False) -> Path:
    """Writes the run folder's model, or several runs' average (see `write_model_folder`), into one file."""
    from tuning.runfolder import atomic_path

    out = Path(out)
    if not out.name.endswith(PACKED_SUFFIX):
        raise ValueError(f"{out}: a packed model's name ends with {PACKED_SUFFIX}")
    with tempfile.TemporaryDirectory() as scratch:
        written = write_model_folder(folders, scratch, float16)
        with atomic_path(out) as partial, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in PACKED_FILES:
                if (written / name).is_file():
                    archive.write(written / name, name)
    return out


def unpack(file: str | Path) -> Path:
    """A packed model's files in a temporary folder (removed when the process ends)."""
    file = Path(file)
    try:
        with zipfile.ZipFile(file) as archive:
            names = archive.namelist()
            missing = [n for n in PACKED_FILES[:2] if n not in names]
            foreign = [n for n in names if n not in PACKED_FILES]
            if missing or foreign:
                raise ValueError(f"{file}: not a packed brainmri model (missing {missing}, unexpected {foreign})")
            folder = Path(tempfile.mkdtemp(prefix="brainmri-model-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            archive.extractall(folder, members=names)
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{file}: not a readable packed model ({err})") from None
    return folder


def main(argv: list[str] | None = None) -> int:
    """`python -m tuning.models --pack RUN... OUT.brainmri`, `--ship RUN... NAME`, `--list`."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m tuning.models",
        description="Pack a run folder into one file that --model takes (brainmri-predict, evaluate.py), "
                    "or ship it, or list the shipped models. Several runs: their models averaged into one "
                    "(as nnU-Net ships its five fold models).")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--pack", nargs="+", metavar="RUN... OUT",
                        help=f"run folders (or their model.keras) -> OUT{PACKED_SUFFIX}")
    action.add_argument("--list", action="store_true", help="the shipped models and their folders")
    action.add_argument("--ship", nargs="+", metavar="RUN... NAME",
                        help="write runs' model into tuning/pretrained/NAME/ (its model card and LICENSE are "
                             "written by hand beside it)")
    parser.add_argument("--float16", action="store_true",
                        help="store the weights in half precision (half the bytes; read back into float32)")
    parser.add_argument("--litert-only", action="store_true",
                        help=f"with --ship: keep {LITERT_FILE} alone, not {MODEL_FILE} (half the bytes; the model "
                             "then computes with LiteRT on the CPU only)")
    args = parser.parse_args(argv)
    if args.litert_only and not args.ship:
        parser.error("--litert-only goes with --ship (a packed file holds model.keras)")
    if args.list:
        for name, folder in shipped().items():
            print(f"{name}\t{folder}")
        return 0
    given = args.ship or args.pack
    if len(given) < 2:
        parser.error("give one run folder or more, then where to write")
    try:
        if args.ship:
            folder = write_model_folder(given[:-1], SHIPPED / given[-1], args.float16, args.litert_only)
            written = folder / (LITERT_FILE if args.litert_only else MODEL_FILE)
        else:
            written = pack(given[:-1], given[-1], args.float16)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {written} ({written.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
