"""Train a U-Net on lgg_mri's train split, validating on its validation split.

    python train.py --best                     # the configuration tuning/search.py found
    python train.py --dataset lgg_mri/synthetic --epochs 5
    python train.py --dataset lgg_mri/kaggle_3m_folds --train-split fold2+fold3+fold4+fold5+fold6+fold7+fold8 \
        --validation-split fold9 --test-split fold0+fold1   # one round of patient cross-validation

Writes to --out (default runs/train/<dataset config>-<best|default>): model.keras (lowest
validation loss, never half-written), config.json (all it takes to reproduce the run and to
evaluate it, the data_dir included), inference.json (how probabilities become masks:
`tuning.postprocessing`'s defaults, and what they score on the validation patients), history.csv, training_curves.png, tensorboard/. Killed and
re-run with the same --out, it resumes from the last finished epoch; a model already trained with
the same settings is not trained again. --members N trains N models with seeds --seed, --seed+1,
... in member0/, member1/, ... and saves the ensemble that averages them as model.keras.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from brainmri_tfds.settings import TUMOR_WEIGHTINGS, DataSettings, add_data_arguments  # noqa: E402
from tuning.distribution import STRATEGIES  # noqa: E402
from tuning.precision import add_precision_argument  # noqa: E402
from tuning.recipe import LOSS_NAMES, LR_SCHEDULES  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--best", action="store_true", help="train the configuration in <tuning-dir>/best_hparams.json")
    source.add_argument("--hparams", help="train the configuration in this best_hparams.json")
    parser.add_argument("--tuning-dir", default="runs/tuning/unet", help="search folder (default runs/tuning/unet)")
    add_data_arguments(parser, defaults=False)
    parser.add_argument("--train-split", default="train", help="TFDS split to train on (default train)")
    parser.add_argument("--validation-split", default="validation",
                        help="TFDS split for early stopping, model choice and inference settings (default validation)")
    parser.add_argument("--test-split", default="test", help="the split evaluate.py scores by default (default test)")
    parser.add_argument("--epochs", type=int, default=40, help="epochs at most (default 40)")
    parser.add_argument("--patience", type=int, default=12, help="early-stopping patience (default 12)")
    parser.add_argument("--batch-size", type=int, help="override the configuration's batch size")
    parser.add_argument("--loss", choices=LOSS_NAMES, help="override the configuration's loss (bce_tversky: "
                        "cross-entropy plus a Tversky loss that weighs missed tumor pixels 0.7, false alarms 0.3)")
    parser.add_argument("--tumor-share", type=float, help="oversample tumor slices to this share of each epoch; "
                        "0 = as the split has them (default: the configuration's, 0.5)")
    parser.add_argument("--tumor-weighting", choices=TUMOR_WEIGHTINGS, help="which tumor slices fill that share: "
                        "uniform = each equally often; area = in proportion to tumor area plus a tenth of the mean, "
                        "as Buda et al.'s reference draws them (default: the configuration's, uniform)")
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    parser.add_argument("--augment-strength", type=float, help="scale the augmentation's rotation (+-18 degrees), "
                        "zoom (+-10%%) and intensity (+-10%%) ranges (default: the configuration's, 1)")
    parser.add_argument("--ema-momentum", type=float, help="validate, keep and save a moving average of the weights "
                        "with this momentum, e.g. 0.99; 0 = raw weights (default: the configuration's, 0)")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, help="plateau = halve the learning rate when the "
                        "validation loss stalls for --patience/2 epochs; cosine = decay it to 0 over --epochs "
                        "(default: the configuration's, plateau)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--members", type=int, default=1, help="train this many models and save the ensemble that "
                        "averages their probabilities as model.keras; N times the training time (default 1)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="default", help="tf.distribute strategy: default "
                        "(one device) or mirrored (every local GPU, else the logical CPUs); batch size is per replica")
    add_precision_argument(parser)
    parser.add_argument("--keep-epoch-weights", action="store_true",
                        help="also keep every epoch's weights in <out>/epochs/ (about 8 MB an epoch at the defaults), "
                             "for `python -m tuning.crossval epochs`")
    parser.add_argument("--out", help="run folder (default runs/train/<config>-<best|default>)")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.patience < 1 or args.members < 1:
        parser.error("--epochs, --patience and --members must be at least 1")
    return parser, args


def resolve(args):
    """(UNetArchitecture, TrainingRecipe, DataSettings, source) from --best/--hparams or the defaults,
    with the flags on top."""
    from tuning.runfolder import BestHparams
    from tuning.recipe import TrainingRecipe
    from tuning.architecture import UNetArchitecture, check_structure

    path = args.hparams or (os.path.join(args.tuning_dir, "best_hparams.json") if args.best else None)
    best = BestHparams.read(path) if path else BestHparams(UNetArchitecture(), TrainingRecipe(), DataSettings())
    data_flags = {"dataset": args.dataset, "image_size": args.image_size, "channels": args.channels,
                  "normalization": args.normalization, "context": args.context, "crop": args.crop,
                  "data_dir": args.data_dir}
    recipe_flags = {"batch_size": args.batch_size, "loss": args.loss, "tumor_share": args.tumor_share,
                    "tumor_weighting": args.tumor_weighting,
                    "augment_strength": args.augment_strength, "ema_momentum": args.ema_momentum,
                    "lr_schedule": args.lr_schedule}
    data = dataclasses.replace(best.data, **{k: v for k, v in data_flags.items() if v is not None})
    recipe = dataclasses.replace(best.recipe, **{k: v for k, v in recipe_flags.items() if v is not None})
    check_structure(data.image_size, data.n_channels, (best.architecture.depth,))
    return best.architecture, recipe, data, "best" if path else "default"


def main(argv: list[str] | None = None) -> int:
    parser, args = parse_args(argv)
    try:
        architecture, recipe, data, source = resolve(args)
    except (FileNotFoundError, ValueError) as err:
        parser.error(f"{err}" + ("; run tuning/search.py first or pass --hparams FILE" if args.best else ""))
    from brainmri_tfds import DatasetNotBuiltError
    from tuning.distribution import make_strategy
    from tuning.precision import resolve_precision
    from tuning.runfolder import RunConfig, package_versions
    from tuning.training import inference_record, train_run

    strategy = make_strategy(args.strategy)
    run = RunConfig(
        data=data, architecture=architecture, recipe=recipe, seed=args.seed, epochs=args.epochs, patience=args.patience,
        splits={"train": args.train_split, "validation": args.validation_split, "test": args.test_split},
        augment=not args.no_augment, precision=resolve_precision(args.precision), source=source,
        strategy=args.strategy, replicas=strategy.num_replicas_in_sync,
        global_batch_size=recipe.batch_size * strategy.num_replicas_in_sync, versions=package_versions(),
        command="python train.py " + " ".join(sys.argv[1:] if argv is None else argv))
    out = Path(args.out or f"runs/train/{data.config}-{source}")
    try:
        trained = train_run(run, out, args.members, strategy, args.keep_epoch_weights)
    except DatasetNotBuiltError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        parser.error(str(err))
    if trained is None:
        print(f"\ninterrupted: rerun the same command to resume from the last finished epoch ({out})", file=sys.stderr)
        return 130
    choice = inference_record(out, run)
    choice.write(out)
    print(f"inference settings {choice.settings.to_json()}: mean per-patient Dice {choice.mean_patient_dice:.4f} "
          f"on {args.validation_split} (in {out / 'inference.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
