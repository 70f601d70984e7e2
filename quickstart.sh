#!/usr/bin/env bash
# The whole job on the built-in synthetic data: build -> short search -> train --best -> evaluate.
# Everything goes under runs/ (the dataset in runs/tfds). Its time on each kind of CPU: benchmarks/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
DATA=runs/tfds
SEARCH=(--dataset lgg_mri/synthetic --data-dir "$DATA" --image-size 64 --channels all)

echo "== 1/4 build lgg_mri/synthetic into $DATA"
tfds build brainmri_tfds/lgg_mri --config synthetic --data_dir "$DATA"

echo "== 2/4 search (random, 3 small trials x 3 epochs) -> runs/tuning/quickstart"
python tuning/search.py "${SEARCH[@]}" --tuner random --max-trials 3 --max-epochs 3 --batch-size 16 \
  --depths 2 3 --base-filters 16 --directory runs/tuning --project-name quickstart --overwrite

echo "== 3/4 train the best configuration -> runs/train/quickstart"
python train.py --best --tuning-dir runs/tuning/quickstart --epochs 20 --out runs/train/quickstart  # data settings and data_dir from best_hparams.json

echo "== 4/4 evaluate on the test patients"
python evaluate.py --model runs/train/quickstart/model.keras                      # the test split, from config.json
echo
echo "Report: runs/train/quickstart/eval-test/report.json"
echo "Figures: runs/train/quickstart/training_curves.png, runs/train/quickstart/eval-test/dice_per_patient.png,"
echo "         runs/train/quickstart/eval-test/overlays/"
