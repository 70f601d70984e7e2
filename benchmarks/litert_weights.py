"""How a model's LiteRT copy computes with its weights stored three ways: float32, float16 (what
`python -m tuning.models --ship/--pack --float16` writes) and int8 (TensorFlow's dynamic-range
quantization, a quarter of float32's bytes): bytes, seconds per 30 slices, and the largest
probability difference from float32, on random inputs of the model's shape.

    python benchmarks/litert_weights.py                    # the shipped lgg-unet-3seq
    python benchmarks/litert_weights.py --model runs/x     # anything brainmri-predict --model takes

Prints one JSON line per storage, with the CPU. It decides how a model averaging several trainings
could be shipped under the 25 MB all shipped weights must stay within.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

SLICES = 30


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lgg-unet-3seq", help="what brainmri-predict --model takes")
    parser.add_argument("--repeats", type=int, default=3, help="timed predictions of 30 slices per storage")
    args = parser.parse_args(argv)
    import numpy as np

    from tuning.evaluation.inference import load_trained
    from tuning.evaluation.predictor import LiteRTPredictor
    from tuning.export import LITERT_WEIGHTS, as_float32, litert_flat_buffer
    from tuning.precision import cpu_description

    predictor, _ = load_trained(args.model, engine="keras")
    model = as_float32(predictor.model)
    model(np.zeros((1, *model.input_shape[1:]), np.float32))  # Keras exports only a model that has been called
    batch = np.random.default_rng(0).random((SLICES, *model.input_shape[1:]), np.float32)
    with tempfile.TemporaryDirectory() as scratch:
        copies = {}
        for storage in LITERT_WEIGHTS:
            copies[storage] = Path(scratch) / f"{storage}.tflite"
            copies[storage].write_bytes(litert_flat_buffer(model, storage))
        reference = LiteRTPredictor(copies["float32"]).predict_on_batch(batch)
        for storage, path in copies.items():
            litert = LiteRTPredictor(path)
            probabilities = litert.predict_on_batch(batch)  # the first call plans the kernels
            start = time.perf_counter()
            for _ in range(args.repeats):
                litert.predict_on_batch(batch)
            print(json.dumps({"storage": storage, "megabytes": round(path.stat().st_size / 1e6, 2),
                              f"seconds_per_{SLICES}_slices": round((time.perf_counter() - start) / args.repeats, 3),
                              "max_probability_difference": float(np.abs(probabilities - reference).max()),
                              "model": args.model, "machine": f"{platform.machine()}, {cpu_description()}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
