"""Benchmark: training and prediction images/s of the U-Net the hypermodel builds, and peak memory.

    python benchmarks/speed.py --depth 4 --base-filters 16 --image-size 128 --channels 1 --batch-size 16
    python benchmarks/speed.py --depth 4 --base-filters 32 --image-size 256 --channels 3 --batch-size 16

The model is `build_unet` with the PyTorch reference's choices (batch norm, transposed-convolution
up-sampling, no dropout), compiled by `compile_unet` as train.py compiles it (BCE+Dice, Adam,
Dice/IoU metrics). Steady state: warm-up steps (tracing, XLA compilation) are not timed, and each figure is the
batch size over the median step time.

- train_images_per_s: `fit` on in-memory tensors (one batch, repeated: no input cost at all);
- train_images_per_s_pipeline: `fit` on `brainmri_tfds.make_dataset` (the real pipeline: cached,
  shuffled, augmented, prefetched) of the built synthetic config (built into --data-dir if absent);
- predict_images_per_s: `predict_on_batch` of the model with batch norm folded into the
  convolutions and each batch computed in `prediction_streams` parts at the same time
  (`tuning.evaluation.predictor.for_inference`), as evaluate.py predicts;
- peak_rss_mb: the process's peak resident memory;
- *_gflop_per_s and *_pct_of_matmul: the arithmetic those speeds achieve, against a float32 matrix
  product timed in the same process; fp32_peak_gflop_per_s: the nominal peak at the reported
  clock (`benchmarks/unet_flops.py`: how they are counted).

Prints one JSON object, with the CPU (model, bfloat16 or not), whether TensorFlow runs oneDNN's
kernels (`brainmri_tfds.runtime`), whether oneDNN runs them below AVX-512 (`onednn_below_avx512`:
an AVX2 CPU, or `ONEDNN_MAX_CPU_ISA=AVX2` on an AVX-512 one) and which batch norm trained
(`batch_norm`: `fused` or `parts`, tuning/unet.py). `benchmarks/reference_torch.py` measures the same architecture
in PyTorch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import brainmri_tfds  # noqa: E402, F401  (sets TensorFlow's CPU kernels for this machine before it loads)


def parse_args(argv):
    from tuning.precision import add_precision_argument
    from tuning.unet import add_batch_norm_argument

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--base-filters", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--channels", type=int, choices=(1, 3), default=1, help="1 (FLAIR) or 3 (all sequences)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per figure (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--data-dir", default=os.path.expanduser("~/tensorflow_datasets"),
                        help="TFDS data_dir holding (or to hold) lgg_mri/synthetic")
    add_precision_argument(parser)
    parser.add_argument("--jit-compile", choices=("auto", "on", "off"), default="auto",
                        help="XLA compilation of the train and predict steps (default auto, as train.py)")
    parser.add_argument("--prediction-streams", type=int,
                        help="parts each predicted batch is cut into, computed at the same time (default: as "
                             "evaluate.py predicts on this machine, tuning/evaluation/predictor.py)")
    parser.add_argument("--skip-pipeline", action="store_true", help="leave out train_images_per_s_pipeline")
    add_batch_norm_argument(parser)
    return parser.parse_args(argv)


def _median_step_seconds(model, dataset, steps: int, warmup: int) -> float:
    """Median seconds per `fit` step over `steps` batches, after `warmup` untimed ones."""
    import keras

    ends = []
    timer = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: ends.append(time.perf_counter()))
    model.fit(dataset, steps_per_epoch=warmup, epochs=1, verbose=0)
    model.fit(dataset, steps_per_epoch=steps + 1, epochs=1, verbose=0, callbacks=[timer])
    return statistics.median(b - a for a, b in zip(ends, ends[1:]))


def median_predict_seconds(model, images, steps: int, warmup: int) -> float:
    """Median seconds of `steps` calls of `model.predict_on_batch(images)`, after `warmup` untimed ones."""
    for _ in range(warmup):
        model.predict_on_batch(images)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.predict_on_batch(images)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import keras
    import numpy as np
    import tensorflow as tf

    from tuning.evaluation.predictor import for_inference
    from tuning.precision import cpu_description, resolve_precision
    from tuning.recipe import TrainingRecipe
    from tuning.unet import batch_norm_in_use, build_unet, compile_unet
    from unet_flops import efficiency  # beside this script

    recipe = TrainingRecipe(batch_size=args.batch_size)
    precision = resolve_precision(args.precision)
    model = compile_unet(build_unet(args.image_size, args.channels, depth=args.depth, base_filters=args.base_filters,
                                    dropout=0.0, precision=precision,
                                    batch_norm_implementation=args.batch_norm),
                         recipe.learning_rate, recipe.loss)
    if args.jit_compile != "auto":
        model.jit_compile = args.jit_compile == "on"
    rng = np.random.default_rng(0)
    shape = (args.batch_size, args.image_size, args.image_size)
    images = rng.random(shape + (args.channels,), np.float32)
    masks = (rng.random(shape + (1,)) > 0.9).astype(np.float32)
    # Batches of unknown size, as the pipeline's: both fits then share one traced train step.
    in_memory = tf.data.Dataset.from_tensor_slices((images, masks)).cache().repeat().batch(args.batch_size)

    result = {
        "depth": args.depth, "base_filters": args.base_filters, "image_size": args.image_size,
        "channels": args.channels, "batch_size": args.batch_size, "steps": args.steps,
        "precision": precision, "jit_compile": args.jit_compile, "parameters": model.count_params(),
        "batch_norm": batch_norm_in_use(model),
        "train_images_per_s": round(args.batch_size / _median_step_seconds(model, in_memory, args.steps, args.warmup), 2),
    }
    if not args.skip_pipeline:
        import tensorflow_datasets as tfds

        tfds.builder("lgg_mri/synthetic", data_dir=args.data_dir).download_and_prepare()
        pipeline = brainmri_tfds.make_dataset(
            "train", data_dir=args.data_dir, config="synthetic", image_size=args.image_size,
            channels="flair" if args.channels == 1 else "all", batch_size=args.batch_size, augment=True, shuffle=True,
        ).repeat()
        seconds = _median_step_seconds(model, pipeline, args.steps, args.warmup)
        result["train_images_per_s_pipeline"] = round(args.batch_size / seconds, 2)
        result["pipeline_overhead_pct"] = round(
            100 * (result["train_images_per_s"] / result["train_images_per_s_pipeline"] - 1), 1)

    predictor = for_inference(model, args.prediction_streams)  # as evaluate.py
    result["prediction_streams"] = predictor.streams
    seconds = median_predict_seconds(predictor, images, args.steps, args.warmup)
    result["predict_images_per_s"] = round(args.batch_size / seconds, 2)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result.update(efficiency(result))
    result["machine"] = f"{platform.machine()}, {cpu_description()}, TensorFlow {tf.__version__}"
    result["onednn"] = brainmri_tfds.runtime.onednn_enabled()
    result["onednn_below_avx512"] = brainmri_tfds.runtime.onednn_below_avx512()
    result["keras_backend"] = keras.backend.backend()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
