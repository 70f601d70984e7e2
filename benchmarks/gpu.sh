#!/usr/bin/env bash
# Every GPU check in one run, for whoever is lent a GPU (about 5 minutes on one H100; the device
# tool: bash benchmarks/gpu.sh). Writes each figure to ${OUT:-runs/gpu}/ and prints them:
#   speed.json, speed-256.json   benchmarks/speed.py at both configurations (--precision auto: bfloat16 on a GPU)
#   train.log                    one epoch of train.py on lgg_mri/synthetic, its wall time
#   predict.log, predict.json    brainmri-predict on 4 phantom NIfTI cases, and its time per case
# The first call installs the project (pip install -c constraints.txt -e .) unless it imports.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
OUT=${OUT:-runs/gpu}
DATA="$OUT/tfds"
mkdir -p "$OUT"
python -c "import tuning.predict" 2>/dev/null || python -m pip install --quiet -c constraints.txt -e .
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt" || echo "no nvidia-smi" > "$OUT/gpu.txt"

echo "== speed, 128 px, 1 channel"
python benchmarks/speed.py --depth 4 --base-filters 16 --image-size 128 --channels 1 --batch-size 16 \
  --data-dir "$DATA" | tail -1 | tee "$OUT/speed.json"
echo "== speed, 256 px, 3 channels"
python benchmarks/speed.py --depth 4 --base-filters 32 --image-size 256 --channels 3 --batch-size 16 \
  --data-dir "$DATA" --skip-pipeline | tail -1 | tee "$OUT/speed-256.json"

echo "== one epoch of train.py on lgg_mri/synthetic"
start=$SECONDS
python train.py --dataset lgg_mri/synthetic --data-dir "$DATA" --epochs 1 --out "$OUT/train" > "$OUT/train.log" 2>&1
echo "train.py, 1 epoch: $((SECONDS - start)) s (process start and model build included)" | tee -a "$OUT/train.log"

echo "== brainmri-predict on 4 phantom cases of 30 slices"
python benchmarks/predict_case.py --model "$OUT/train" | tail -1 | tee "$OUT/predict.json"
echo "figures in $OUT"
