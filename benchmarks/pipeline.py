"""Benchmark: seconds to build lgg_mri, and images/s of the pipeline's first and cached epochs.

    python benchmarks/pipeline.py                                # the synthetic config
    python benchmarks/pipeline.py --manual-dir ../shared/data    # real data (Kaggle layout)

Builds into a fresh temporary data_dir (or --data-dir), then iterates `make_dataset("train")`
twice with no model: epoch 1 decodes and fills the cache, epoch 2 reads the cache. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manual-dir", help="Kaggle download (zip or kaggle_3m/); omit for the synthetic config")
    parser.add_argument("--data-dir", help="TFDS data_dir (default: a fresh temporary folder)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--channels", default="all")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--augment", action="store_true", help="include augmentation in the epochs")
    args = parser.parse_args(argv)

    import tensorflow_datasets as tfds

    import brainmri_tfds
    from brainmri_tfds.layout import LayoutError

    config = "kaggle_3m" if args.manual_dir else "synthetic"
    with tempfile.TemporaryDirectory(prefix="lgg_bench_") as scratch:
        data_dir = args.data_dir or scratch
        builder = tfds.builder(f"lgg_mri/{config}", data_dir=data_dir)
        start = time.perf_counter()
        try:
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=args.manual_dir))
        except LayoutError as err:
            sys.exit(f"error: {err}")
        build_s = time.perf_counter() - start

        dataset = brainmri_tfds.make_dataset(
            "train", data_dir=data_dir, config=config, image_size=args.image_size,
            channels=args.channels, batch_size=args.batch_size, augment=args.augment, shuffle=True,
        )
        epochs = []
        for _ in range(2):
            start, count = time.perf_counter(), 0
            for images, _ in dataset:
                count += int(images.shape[0])
            epochs.append(count / (time.perf_counter() - start))
    result = {
        "config": config,
        "slices": sum(split.num_examples for split in builder.info.splits.values()),
        "train_slices": count,
        "build_seconds": round(build_s, 1),
        "first_epoch_images_per_s": round(epochs[0], 1),
        "cached_epoch_images_per_s": round(epochs[1], 1),
        "image_size": args.image_size,
        "channels": args.channels,
        "batch_size": args.batch_size,
        "augment": args.augment,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
