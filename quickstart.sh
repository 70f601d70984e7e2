#!/usr/bin/env bash
# The whole job on the built-in synthetic data: build -> short search -> train --best -> evaluate -> predict.
# It shows the flow, not a good model: 2 trials of 2 epochs, then 12 epochs of training.
# Everything goes under runs/ (the dataset in runs/tfds). Its time on each kind of CPU: benchmarks/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
DATA=runs/tfds
SEARCH=(--dataset lgg_mri/synthetic --data-dir "$DATA" --image-size 64 --channels all)

echo "== 1/5 build lgg_mri/synthetic into $DATA"
tfds build brainmri_tfds/lgg_mri --config synthetic --data_dir "$DATA"

echo "== 2/5 search (random, 2 small trials x 2 epochs) -> runs/tuning/quickstart"
python tuning/search.py "${SEARCH[@]}" --tuner random --max-trials 2 --max-epochs 2 --batch-size 16 \
  --depths 2 3 --base-filters 16 --directory runs/tuning --project-name quickstart --overwrite

echo "== 3/5 train the best configuration -> runs/train/quickstart"
python train.py --best --tuning-dir runs/tuning/quickstart --epochs 12 --out runs/train/quickstart  # data settings and data_dir from best_hparams.json

echo "== 4/5 evaluate on the test patients"
python evaluate.py --model runs/train/quickstart/model.keras                      # the test split, from config.json

echo "== 5/5 predict masks for two phantom NIfTI cases -> runs/predict/quickstart"
python -m brainmri_tfds.synthetic runs/scans --nifti --patients 2 --seed 7
brainmri-predict -i runs/scans -o runs/predict/quickstart --model runs/train/quickstart
echo
echo "Report: runs/train/quickstart/eval-test/report.json"
echo "Figures: runs/train/quickstart/training_curves.png, runs/train/quickstart/eval-test/dice_per_patient.png,"
echo "         runs/train/quickstart/eval-test/overlays/"
echo "Masks: runs/predict/quickstart/*.nii.gz, volumes in runs/predict/quickstart/volumes.csv"
