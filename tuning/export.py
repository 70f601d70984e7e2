"""`python -m tuning.export`: a trained model as a TensorFlow SavedModel, an ONNX file and a LiteRT
file, to run without this project's code (TensorFlow Serving, onnxruntime, LiteRT, ...).

    python -m tuning.export --model runs/train/kaggle_3m-best/model.keras        # -> runs/train/kaggle_3m-best/export/

Writes to --out (default: export/ beside the model): saved_model/ (signature `serve`), model.onnx,
model.tflite (the form brainmri-predict runs shipped and packed models in on a CPU), and
preprocessing.json: the parameters of what a caller must do to a patient's slices before the
model and to its output after (`Preprocessor.to_json`: input size and channels, the
normalisation, the crop; and the threshold, clean-up and flip averaging of `tuning.postprocessing`).
Batch norm is folded into the convolutions (exact at inference). Every format computes in float32:
a model trained in bfloat16 is rebuilt in float32 with the same weights first (ONNX runtimes have
no bfloat16 convolution). The README shows how to run model.onnx with onnxruntime alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FORMATS = ("saved_model", "onnx", "litert")


def _float32_config(config):
    """A Keras model config with every layer's compute dtype set to float32."""
    if isinstance(config, dict):
        if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(config.get("config"), dict):
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: _float32_config(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float32_config(value) for value in config]
    return "float32" if config == "mixed_bfloat16" else config


def as_float32(model):
    """`model` itself if it computes in float32, else the same network rebuilt in float32 with its weights."""
    import tuning.unet  # noqa: F401  (registers the U-Net's own layers)

    if all(layer.dtype_policy.compute_dtype == "float32" for layer in model._flatten_layers()):
        return model
    rebuilt = model.__class__.from_config(_float32_config(model.get_config()))
    rebuilt.set_weights(model.get_weights())
    return rebuilt


LITERT_WEIGHTS = ("float32", "float16", "int8")  # int8: TensorFlow's dynamic-range quantization


def litert_flat_buffer(model, weights: str = "float32") -> bytes:
    """`model` (float32 Keras, batch norm folded) as a LiteRT flat buffer, its weights stored as
    `weights` (one of `LITERT_WEIGHTS`; LiteRT reads float16 back into float32)."""
    import tempfile

    import tensorflow as tf

    if weights not in LITERT_WEIGHTS:
        raise ValueError(f"weights must be one of {LITERT_WEIGHTS}, got {weights!r}")
    with tempfile.TemporaryDirectory() as scratch:  # TensorFlow's converter reads a SavedModel
        model.export(scratch, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(scratch)
        if weights != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]  # alone: int8 weights
        if weights == "float16":
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()


def write_litert(model, path: str | Path, float16: bool = False) -> Path:
    """`model` (float32 Keras, batch norm folded) as a LiteRT flat buffer at `path`, written whole or
    not at all; `float16`: its weights stored in half precision (LiteRT reads them back into float32)."""
    from tuning.runfolder import atomic_path

    flat_buffer = litert_flat_buffer(model, "float16" if float16 else "float32")
    with atomic_path(Path(path)) as partial:
        partial.write_bytes(flat_buffer)
    return Path(path)


def preprocessing(run, inference: dict) -> dict:
    """What a caller without this project must do around the exported model: the parameters of
    the one preprocessing (`brainmri_tfds.preprocessing`) and of the post-processing."""
    from brainmri_tfds.preprocessing import Preprocessor

    return {**Preprocessor.from_settings(run.data).to_json(), "postprocessing": inference}


def export(model_path: str | Path, out: str | Path, formats=FORMATS) -> dict[str, Path]:
    """Writes the model at `model_path` (train.py's, with config.json beside it) in `formats` to `out`."""
    from tuning.evaluation.inference import load_trained
    from tuning.postprocessing import DEFAULT
    from tuning.runfolder import InferenceChoice, write_json

    predictor, run = load_trained(model_path, engine="keras")
    model = as_float32(predictor.model)  # batch norm folded into the convolutions
    model(np.zeros((1, *model.input_shape[1:]), np.float32))  # Keras exports only a model that has been called
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    if "saved_model" in formats:
        partial = out / ".saved_model.partial"
        shutil.rmtree(partial, ignore_errors=True)
        model.export(str(partial), format="tf_saved_model", verbose=False)
        shutil.rmtree(out / "saved_model", ignore_errors=True)
        os.replace(partial, out / "saved_model")
        written["saved_model"] = out / "saved_model"
    if "onnx" in formats:
        from tuning.runfolder import atomic_path

        with atomic_path(out / "model.onnx") as partial:
            model.export(str(partial), format="onnx", verbose=False)
        written["onnx"] = out / "model.onnx"
    if "litert" in formats:
        written["litert"] = write_litert(model, out / "model.tflite")
    chosen = InferenceChoice.read(Path(model_path).parent)
    inference = (chosen.settings if chosen else DEFAULT).to_json()
    write_json(out / "preprocessing.json", preprocessing(run, inference))
    written["preprocessing"] = out / "preprocessing.json"
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuning.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a model.keras written by train.py")
    parser.add_argument("--out", help="output folder (default: export/ beside the model)")
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS),
                        help="what to write (default: all three)")
    args = parser.parse_args(argv)
    try:
        written = export(args.model, args.out or Path(args.model).parent / "export", args.formats)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({k: str(v) for k, v in written.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
