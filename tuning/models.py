"""Where a trained model comes from, and how one travels to a colleague.

    folder = locate("lgg-unet-3seq")                # a shipped model, by name (tuning/pretrained/<name>/)
    folder = locate("runs/train/x")                 # a run folder train.py wrote
    folder = locate("runs/train/x/model.keras")     # its model file (config.json beside it)
    folder = locate("x.brainmri")                   # a packed model: unpacked into a temporary folder
    pack("runs/train/x", "x.brainmri")              # model.keras (no optimizer state), config.json, inference.json
    write_model_folder("runs/train/x", "tuning/pretrained/name")   # the same files, as a shipped model's folder

Every form ends as a folder holding `model.keras` and `config.json`, and `inference.json` when
the run wrote one (`tuning.runfolder` reads them). A shipped model's folder also holds its model
card (README.md) and licence (LICENSE).
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
PACKED_FILES = (MODEL_FILE, "config.json", "inference.json")  # the last one optional


def shipped() -> dict[str, Path]:
    """The models this installation ships, by name."""
    if not SHIPPED.is_dir():
        return {}
    return {folder.name: folder for folder in sorted(SHIPPED.iterdir()) if (folder / MODEL_FILE).is_file()}


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
        if not (path / MODEL_FILE).is_file():
            raise ValueError(f"{path}: no {MODEL_FILE} in this folder (not a run folder train.py wrote)")
        return path
    models = shipped()
    if str(spec) in models:
        return models[str(spec)]
    known = ", ".join(models) or "none in this installation"
    raise ValueError(f"{spec}: no such model file or folder, and not a shipped model's name (shipped: {known})")


def write_model_folder(folder: str | Path, out: str | Path) -> Path:
    """The run's model (without optimizer state), config.json (without the machine's data_dir)
    and inference.json, written into `out`: what a packed file or a shipped model holds."""
    import dataclasses

    import keras

    from tuning.runfolder import RunConfig
    import tuning.unet  # noqa: F401  (registers the U-Net's own layers for loading)

    folder, out = locate(folder), Path(out)
    run = RunConfig.read(folder)  # a readable config.json, or a one-line error
    model = keras.saving.load_model(folder / MODEL_FILE, compile=False, safe_mode=True)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / MODEL_FILE)  # not compiled: no optimizer state
    dataclasses.replace(run, data=dataclasses.replace(run.data, data_dir=None)).write(out)
    if (folder / "inference.json").is_file():
        shutil.copyfile(folder / "inference.json", out / "inference.json")
    return out


def pack(folder: str | Path, out: str | Path) -> Path:
    """Writes the run folder's model (see `write_model_folder`) into one file."""
    from tuning.runfolder import atomic_path

    out = Path(out)
    if not out.name.endswith(PACKED_SUFFIX):
        raise ValueError(f"{out}: a packed model's name ends with {PACKED_SUFFIX}")
    with tempfile.TemporaryDirectory() as scratch:
        written = write_model_folder(folder, scratch)
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
    """`python -m tuning.models --pack RUN OUT.brainmri`, `--ship RUN NAME`, `--list`."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m tuning.models",
        description="Pack a run folder into one file that --model takes (brainmri-predict, evaluate.py), "
                    "or list the shipped models.")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--pack", nargs=2, metavar=("RUN", "OUT"),
                        help=f"a run folder (or its model.keras) -> OUT{PACKED_SUFFIX}")
    action.add_argument("--list", action="store_true", help="the shipped models and their folders")
    action.add_argument("--ship", nargs=2, metavar=("RUN", "NAME"),
                        help="write a run's model into tuning/pretrained/NAME/ (its model card and LICENSE are "
                             "written by hand beside it)")
    args = parser.parse_args(argv)
    if args.list:
        for name, folder in shipped().items():
            print(f"{name}\t{folder}")
        return 0
    try:
        if args.ship:
            written = write_model_folder(args.ship[0], SHIPPED / args.ship[1]) / MODEL_FILE
        else:
            written = pack(*args.pack)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {written} ({written.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
