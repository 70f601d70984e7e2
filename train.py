"""Train a U-Net on lgg_mri's train split, validating on its validation split.

    python train.py --best                     # the configuration tuning/search.py found
    python train.py --dataset lgg_mri/synthetic --epochs 5
    python train.py --dataset lgg_mri/kaggle_3m_folds --train-split fold2+fold3+fold4+fold5+fold6+fold7+fold8 \
        --validation-split fold9 --test-split fold0+fold1   # one round of patient cross-validation

Writes to --out (default runs/train/<dataset config>-<best|default>): model.keras (lowest
validation loss, never half-written), config.json (all it takes to reproduce the run and to
evaluate it), inference.json (threshold, 3D clean-up and flip averaging chosen on the validation
patients; see tuning/inference.py), history.csv, training_curves.png, tensorboard/. Killed and re-run with the same
--out, it resumes from the last finished epoch; a model already trained with the same settings is
not trained again.

--members N trains N models, with seeds --seed, --seed+1, ..., each in its own folder (member0/,
member1/, ... holding the files above) and saves their ensemble as model.keras: one model that
averages their probabilities, which evaluate.py uses like any other. The inference settings are
chosen for the ensemble. N models take N times the training time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tuning.distribution import STRATEGIES  # noqa: E402
from tuning.precision import add_precision_argument  # noqa: E402
from tuning.settings import DataSettings, add_data_arguments, read_json, write_json  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--best", action="store_true",
                        help="train the configuration in <tuning-dir>/best_hparams.json")
    source.add_argument("--hparams", help="train the configuration in this best_hparams.json")
    parser.add_argument("--tuning-dir", default="runs/tuning/unet",
                        help="search folder holding best_hparams.json (default runs/tuning/unet)")
    add_data_arguments(parser, defaults=False)
    parser.add_argument("--train-split", default="train", help="TFDS split to train on (default train)")
    parser.add_argument("--validation-split", default="validation",
                        help="TFDS split for early stopping, model choice and inference settings (default validation)")
    parser.add_argument("--test-split", default="test",
                        help="the split evaluate.py scores by default; never read here (default test)")
    parser.add_argument("--epochs", type=int, default=40, help="epochs at most (default 40)")
    parser.add_argument("--batch-size", type=int, help="override the configuration's batch size")
    parser.add_argument("--tumour-share", type=float,
                        help="oversample tumour slices to this share of each epoch; 0 = as the split has them "
                             "(default: the configuration's, 0.5 unless best_hparams.json says otherwise)")
    parser.add_argument("--patience", type=int, default=12, help="early-stopping patience (default 12)")
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    parser.add_argument("--augment-strength", type=float,
                        help="scale the augmentation's rotation (+-18 degrees), zoom (+-10%%) and brightness/contrast "
                             "(+-10%%) ranges by this (default: the configuration's, 1 unless best_hparams.json says otherwise)")
    parser.add_argument("--ema-momentum", type=float,
                        help="validate, keep and save a moving average of the weights with this momentum, e.g. 0.99; "
                             "0 = the raw weights (default: the configuration's, 0 unless best_hparams.json says otherwise)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--members", type=int, default=1,
                        help="train this many models (seeds --seed, --seed+1, ...) and save the ensemble that averages "
                             "their probabilities as model.keras; N times the training time (default 1)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="default",
                        help="tf.distribute strategy: default (one device) or mirrored (every local GPU, "
                             "else the logical CPUs); the batch size is per replica")
    add_precision_argument(parser)
    parser.add_argument("--out", help="run folder (default runs/train/<config>-<best|default>)")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.patience < 1 or args.members < 1:
        parser.error("--epochs, --patience and --members must be at least 1")
    return parser, args


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ("tensorflow", "keras", "keras-tuner", "tensorflow-datasets", "numpy", "opencv-python-headless"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def resolve(args, parser) -> tuple[dict, DataSettings, str]:
    """(hyperparameter values, data settings, source label) from --best/--hparams or the defaults."""
    from tuning.hypermodel import UNetConfig

    hparams_file = args.hparams or (os.path.join(args.tuning_dir, "best_hparams.json") if args.best else None)
    if hparams_file:
        try:
            best = read_json(hparams_file, "best_hparams.json")
            values, data_json = best["hyperparameters"], best["data"]
        except (FileNotFoundError, ValueError, KeyError) as err:
            parser.error(f"{err}; run tuning/search.py first or pass --hparams FILE")
    else:
        values, data_json = {}, DataSettings().to_json()
    overrides = {"dataset": args.dataset, "image_size": args.image_size, "channels": args.channels,
                 "normalization": args.normalization, "context": args.context}
    data_json = {**data_json, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        recipe = {"batch_size": args.batch_size or None, "tumour_share": args.tumour_share,
                  "augment_strength": args.augment_strength, "ema_momentum": args.ema_momentum}
        config = dataclasses.replace(UNetConfig.from_values(values),
                                     **{k: v for k, v in recipe.items() if v is not None})
        data = DataSettings.from_json(data_json, args.data_dir)
    except (ValueError, KeyError) as err:
        parser.error(str(err))
    return config, data, "best" if hparams_file else "default"


RESULT_KEYS = ("best_epoch", "best_val_loss", "best_val_dice")
UNCOMPARED_KEYS = ("command", "versions")  # may differ between two runs of the same training


def finished_training(folder: Path, run_config: dict) -> dict | None:
    """The best-epoch record of a model in `folder` already trained with `run_config`'s settings, else None."""
    path = folder / "config.json"
    if not (path.is_file() and (folder / "model.keras").is_file()):
        return None
    try:
        saved = json.loads(path.read_text())
    except ValueError:
        return None
    if not set(RESULT_KEYS) <= set(saved):
        return None
    ignored = RESULT_KEYS + UNCOMPARED_KEYS
    same = {k: v for k, v in saved.items() if k not in ignored} == {
        k: v for k, v in run_config.items() if k not in ignored}
    return {k: saved[k] for k in RESULT_KEYS} if same else None


def train_one(model, train, validation, folder: Path, run_config: dict, args, ema_momentum: float) -> dict | None:
    """Fits `model` into `folder` (resuming there); its best-epoch record, or None if interrupted."""
    from tuning.figures import training_curves
    from tuning.training import read_history, training_callbacks

    try:
        model.fit(train, validation_data=validation, epochs=args.epochs,
                  callbacks=training_callbacks(folder, args.patience, ema_momentum), verbose=2)
    except KeyboardInterrupt:
        return None
    best = read_json(folder / "model.best.json", "best-model record")
    record = {"best_epoch": best["epoch"], "best_val_loss": best["score"], "best_val_dice": best["val_dice"]}
    write_json(folder / "config.json", {**run_config, **record})
    training_curves(read_history(folder), folder / "training_curves.png")
    print(f"best validation loss {best['score']:.4f} (Dice {best['val_dice']:.4f}) at epoch {best['epoch']}; "
          f"saved {folder / 'model.keras'}")
    return record


def save_ensemble(folders: list[Path], path: Path) -> None:
    """The ensemble of the models in `folders`, saved to `path` atomically."""
    import keras

    from tuning.ensemble import average_models

    members = [keras.saving.load_model(folder / "model.keras", compile=False) for folder in folders]
    ensemble = average_models(members, name=f"ensemble{len(members)}_{members[0].name}")
    partial = path.with_name(f".{path.stem}.partial.keras")
    ensemble.save(partial)
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    parser, args = parse_args(argv)
    config, data, label = resolve(args, parser)
    out = Path(args.out or f"runs/train/{data.config}-{label}")

    import keras

    from brainmri_tfds import DatasetNotBuiltError, pipeline
    from tuning.distribution import make_strategy
    from tuning.hypermodel import build_unet, check_structure, compile_unet
    from tuning.inference import calibrate
    from tuning.precision import resolve_precision

    try:
        check_structure(data.image_size, data.n_channels, (config.depth,))
        strategy = make_strategy(args.strategy)
        precision = resolve_precision(args.precision)
        global_batch = config.batch_size * strategy.num_replicas_in_sync
        whole_batches = strategy.num_replicas_in_sync > 1  # no replica may get an empty share

        def training_data(seed: int):
            return pipeline.batch(data.slices(args.train_split, shuffle=True, seed=seed), global_batch, augment=not args.no_augment,
                                  seed=seed, drop_remainder=whole_batches, tumour_share=config.tumour_share,
                                  augment_strength=config.augment_strength, slice_channels=data.slice_channels)

        train = training_data(args.seed)
        validation = pipeline.batch(data.slices(args.validation_split), global_batch, drop_remainder=whole_batches)
    except DatasetNotBuiltError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        parser.error(str(err))

    out.mkdir(parents=True, exist_ok=True)
    run_config = {
        "hyperparameters": dataclasses.asdict(config),
        "data": data.to_json(),
        "splits": {"train": args.train_split, "validation": args.validation_split, "test": args.test_split},
        "seed": args.seed,
        "epochs": args.epochs,
        "patience": args.patience,
        "augment": not args.no_augment,
        "strategy": args.strategy,
        "replicas": strategy.num_replicas_in_sync,
        "global_batch_size": global_batch,
        "precision": precision,
        "source": label,
        "versions": package_versions(),
        "command": "python train.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    folders = [out] if args.members == 1 else [out / f"member{i}" for i in range(args.members)]
    records = []
    for index, folder in enumerate(folders):
        seed = args.seed + index
        member_config = {**run_config, "seed": seed}
        name = f"member {index + 1}/{len(folders)} (seed {seed}) " if len(folders) > 1 else ""
        record = finished_training(folder, member_config)
        if record:
            print(f"{name}already trained in {folder} (best epoch {record['best_epoch']}): not training it again")
            records.append(record)
            continue
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "config.json", member_config)
        if index:  # the first member's data was prepared above, where a missing split is reported
            train = training_data(seed)
        keras.utils.set_random_seed(seed)
        with strategy.scope():
            model = compile_unet(
                build_unet(data.image_size, data.n_channels, **config.architecture(), precision=precision),
                config.learning_rate, config.loss, config.ema_momentum)
        print(f"{name}training {model.name} ({model.count_params():,} parameters) on {data.dataset} "
              f"{data.image_size}px/{data.channels}/{data.normalization} normalisation/context {data.context} "
              f"in {precision}, "
              f"{strategy.num_replicas_in_sync} replica(s) x batch {config.batch_size} -> {folder}", flush=True)
        record = train_one(model, train, validation, folder, member_config, args, config.ema_momentum)
        if record is None:
            print(f"\ninterrupted: rerun the same command to resume from the last finished epoch ({folder})",
                  file=sys.stderr)
            return 130
        records.append(record)
    if len(folders) > 1:
        save_ensemble(folders, out / "model.keras")
        members = [{"folder": f.name, "seed": args.seed + i, **r} for i, (f, r) in enumerate(zip(folders, records))]
        write_json(out / "config.json", {**run_config, "members": members})
        print(f"saved the ensemble of {len(folders)} models (probabilities averaged) as {out / 'model.keras'}")
    best_model = keras.saving.load_model(out / "model.keras", compile=False)
    settings, candidates = calibrate(best_model, data, args.validation_split)
    chosen = max(c["mean_patient_dice"] for c in candidates)
    write_json(out / "inference.json", {"settings": settings.to_json(), "split": args.validation_split,
                                        "mean_patient_dice": chosen, "candidates": candidates})
    print(f"inference settings chosen on {args.validation_split}: {settings.to_json()} "
          f"(mean per-patient Dice {chosen:.4f}); saved {out / 'inference.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
