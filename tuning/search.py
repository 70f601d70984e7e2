"""Keras Tuner search over the U-Net hypermodel; writes the winner to best_hparams.json.

    python tuning/search.py --dataset lgg_mri/synthetic --tuner random --max-trials 3 --max-epochs 2
    python tuning/search.py --dataset lgg_mri/kaggle_3m_folds --train-split fold2+fold3+fold4+fold5+fold6+fold7+fold8 \
        --validation-split fold9    # search without ever seeing the test folds of a cross-validation round

Re-running the same command resumes an interrupted search (finished trials are kept); pass
--overwrite to start again. Trials log to TensorBoard under <directory>/<project-name>/tensorboard.

Distributed (Keras Tuner's chief/worker mode): run the same command once with
KERASTUNER_TUNER_ID=chief and once per worker with KERASTUNER_TUNER_ID=tuner0, tuner1, ..., all with
KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT naming the chief, and --directory on storage every
machine shares. The chief hands out trials and writes best_hparams.json; workers train them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TIME_BUDGET = 45.0  # minutes: leaves train.py's 40 epochs most of a 2-hour budget on a 2-core CPU (README)


def parse_args(argv):
    from brainmri_tfds.settings import add_data_arguments
    from tuning.architecture import BASE_FILTERS, DEPTHS
    from tuning.precision import add_precision_argument
    from tuning.recipe import BATCH_SIZES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--train-split", default="train", help="TFDS split trials train on (default train)")
    parser.add_argument("--validation-split", default="validation",
                        help="TFDS split trials are scored on (default validation)")
    parser.add_argument("--batch-size", type=int, help="fix the batch size instead of searching it "
                        f"({', '.join(map(str, BATCH_SIZES))})")
    parser.add_argument("--base-filters", type=int, nargs="+", default=BASE_FILTERS, metavar="N",
                        help=f"first-layer widths to search (default {' '.join(map(str, BASE_FILTERS))}; on a "
                             "CPU 64, and 8 in bfloat16, train several times slower: docs/experiments.md)")
    parser.add_argument("--depths", type=int, nargs="+", default=DEPTHS, metavar="N",
                        help=f"U-Net depths (down-sampling levels) to search (default {' '.join(map(str, DEPTHS))})")
    parser.add_argument("--tuner", choices=("hyperband", "bayesian", "random"), default="hyperband",
                        help="search algorithm (default hyperband)")
    parser.add_argument("--max-trials", type=int, default=10, help="trials for random/bayesian (default 10)")
    parser.add_argument("--max-epochs", type=int, default=8, help="epochs per trial at most (default 8)")
    parser.add_argument("--patience", type=int, default=3, help="early-stopping patience in epochs (default 3)")
    parser.add_argument("--time-budget", type=float, default=TIME_BUDGET, metavar="MINUTES",
                        help="start no trial after this many minutes of this run (the first always starts), and "
                             f"stop a running one at the end of its epoch (default {TIME_BUDGET:g}; 0: no limit)")
    parser.add_argument("--no-augment", action="store_true", help="train trials without augmentation")
    parser.add_argument("--directory", default="runs/tuning", help="search folder (default runs/tuning)")
    parser.add_argument("--project-name", default="unet", help="search name inside it (default unet)")
    parser.add_argument("--overwrite", action="store_true", help="start afresh instead of resuming")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_precision_argument(parser)
    args = parser.parse_args(argv)
    if args.max_trials < 1 or args.max_epochs < 1 or args.patience < 1:
        parser.error("--max-trials, --max-epochs and --patience must be at least 1")
    if args.time_budget < 0:
        parser.error("--time-budget must be 0 (no limit) or more minutes")
    return parser, args


def main(argv: list[str] | None = None) -> int:
    parser, args = parse_args(argv)
    import keras
    import keras_tuner

    from brainmri_tfds import DatasetNotBuiltError
    from tuning.hypermodel import UNetHyperModel
    from tuning.precision import resolve_precision
    from brainmri_tfds.settings import DataSettings
    from tuning.tuner_state import atomic_state_files, keep_finished_trials_on_resume
    from tuning.recipe import changes_from_defaults
    from tuning.tuners import (OBJECTIVE_NAME, TimeBudget, best_result, best_trials_table, is_distributed_worker,
                               make_tuner, try_defaults_first)

    try:
        data = DataSettings(args.dataset, args.image_size, args.channels, args.data_dir, args.normalization,
                            args.context, args.crop)
        hypermodel = UNetHyperModel(data.image_size, data.n_channels, augment=not args.no_augment, seed=args.seed,
                                    precision=resolve_precision(args.precision), base_filters=args.base_filters,
                                    depths=args.depths,
                                    slice_channels=data.slice_channels)
    except ValueError as err:
        parser.error(str(err))
    try:
        train = data.slices(args.train_split, shuffle=True, seed=args.seed)  # whatever the split's name
        validation = data.slices(args.validation_split, shuffle=False)
        validation_patients = data.slice_patients(args.validation_split)
    except (DatasetNotBuiltError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    keras.utils.set_random_seed(args.seed)
    hyperparameters = keras_tuner.HyperParameters()
    if args.batch_size:
        hyperparameters.Fixed("batch_size", args.batch_size)
    project = os.path.join(args.directory, args.project_name)
    callbacks = [
        keras.callbacks.EarlyStopping(monitor=OBJECTIVE_NAME, mode="max", patience=args.patience),
        keras.callbacks.TensorBoard(log_dir=os.path.join(project, "tensorboard")),
    ]
    budget = TimeBudget(args.time_budget) if args.time_budget else None
    callbacks += [budget] if budget else []
    start = time.perf_counter()
    limit = f", for {args.time_budget:g} minutes at most" if budget else ""
    print(f"search: {args.tuner} in {project}{limit} (rerun the same command to resume)", flush=True)
    with atomic_state_files():
        tuner = make_tuner(args.tuner, hypermodel, args.max_trials, args.max_epochs, args.seed, args.directory,
                           args.project_name, args.overwrite, hyperparameters)
        keep_finished_trials_on_resume(tuner, is_distributed_worker())
        if not is_distributed_worker():  # a worker's oracle is the chief's, reached over gRPC
            try_defaults_first(tuner)
        if budget:
            budget.guard(tuner)
        try:
            tuner.search(train, validation_data=validation, validation_patients=validation_patients,
                         epochs=args.max_epochs, callbacks=callbacks, verbose=2)
        except KeyboardInterrupt:
            print(f"\ninterrupted: finished trials are kept in {project}; rerun the same command to resume",
                  file=sys.stderr)
            return 130
    if is_distributed_worker():
        print(f"worker {os.environ['KERASTUNER_TUNER_ID']}: no trials left after {time.perf_counter() - start:.0f} s; "
              "the chief writes best_hparams.json")
        return 0
    if budget and budget.spent():
        print(f"\nthe time budget ({args.time_budget:g} minutes) is spent: the search ends with the trials finished "
              "so far (--time-budget gives it more; a rerun resumes)")
    print(f"\nsearch finished in {time.perf_counter() - start:.0f} s; best trials:\n{best_trials_table(tuner)}")
    if not any(t.score is not None for t in tuner.oracle.trials.values()):
        print("error: no trial finished; see the messages above", file=sys.stderr)
        return 1
    out = os.path.join(project, "best_hparams.json")
    best = best_result(tuner, data, args.tuner)
    best.write(out)
    print(f"wrote {out}")
    changes = changes_from_defaults(best.architecture, best.recipe)
    if changes:
        shown = {name: [f"{v:.3g}" if isinstance(v, float) else str(v) for v in pair] for name, pair in changes.items()}
        print("the winner differs from train.py's defaults in " +
              ", ".join(f"{name} {value} (default {default})" for name, (value, default) in shown.items()))
    else:
        print("the winner's model and training recipe are train.py's defaults")
    return 0


if __name__ == "__main__":
    sys.exit(main())
