"""Benchmark: the same U-Net on Keras 3's TensorFlow, PyTorch and JAX backends, against the PyTorch reference.

    pip install torch==2.13.0 jax          # neither is a dependency of this project
    python benchmarks/backends.py --depth 4 --base-filters 16 --image-size 128 --channels 1 --batch-size 16

Runs, `--repeats` times in turn so that a change in the machine's load touches all alike:
`speed.py` with KERAS_BACKEND=tensorflow (this project's default, fed by the real pipeline too),
torch and jax (in-memory batches), then `reference_torch.py`. Each is a fresh process. Prints
every run's JSON and a table: each backend's median images/s for training and prediction over
the repeats, as a ratio to the reference's. A backend that is not installed is reported and left
out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BACKENDS = ("tensorflow", "torch", "jax")
REFERENCE = "PyTorch reference"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in (("depth", 4), ("base-filters", 16), ("image-size", 128), ("channels", 1),
                          ("batch-size", 16), ("steps", 10), ("warmup", 3)):
        parser.add_argument(f"--{name}", type=int, default=default, help=f"as speed.py (default {default})")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of all runs (default 1)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=BACKENDS,
                        help=f"Keras backends to run (default {' '.join(BACKENDS)})")
    parser.add_argument("--data-dir", default=os.path.expanduser("~/tensorflow_datasets"),
                        help="TFDS data_dir for the pipeline figure (as speed.py)")
    return parser.parse_args(argv)


def run(script: str, args, backend: str | None) -> dict | str:
    """One benchmark process's JSON result, or why there is none."""
    shape = ["--depth", str(args.depth), "--base-filters", str(args.base_filters), "--image-size",
             str(args.image_size), "--channels", str(args.channels), "--batch-size", str(args.batch_size),
             "--steps", str(args.steps), "--warmup", str(args.warmup)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if backend:
        env["KERAS_BACKEND"] = backend
        shape += ["--data-dir", args.data_dir] + ([] if backend == "tensorflow" else ["--skip-pipeline"])
    done = subprocess.run([sys.executable, str(HERE / script), *shape], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, list[dict]] = {}
    for repeat in range(args.repeats):
        runs = [*((b, "speed.py", b) for b in args.backends), (REFERENCE, "reference_torch.py", None)]
        for name, script, backend in runs:
            result = run(script, args, backend)
            if isinstance(result, str):
                print(f"{name}: not measured ({result})", flush=True)
                continue
            print(json.dumps(result), flush=True)
            results.setdefault(name, []).append(result)
    if REFERENCE not in results:
        print("error: the PyTorch reference did not run; pip install torch==2.13.0", file=sys.stderr)
        return 2

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    print(f"\n(depth, filters, size, channels, batch) = ({args.depth}, {args.base_filters}, {args.image_size}, "
          f"{args.channels}, {args.batch_size}); medians of {args.repeats} run(s); ratio to the reference")
    print(f"{'':18s} {'train img/s':>12s} {'ratio':>6s} {'predict img/s':>14s} {'ratio':>6s} "
          f"{'train % of matmul':>18s}")
    for name in results:
        train, predict = median(name, "train_images_per_s"), median(name, "predict_images_per_s")
        print(f"{name:18s} {train:12.2f} {train / median(REFERENCE, 'train_images_per_s'):5.2f}x "
              f"{predict:14.2f} {predict / median(REFERENCE, 'predict_images_per_s'):5.2f}x "
              f"{median(name, 'train_pct_of_matmul'):17.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
