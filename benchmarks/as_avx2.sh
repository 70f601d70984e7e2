#!/usr/bin/env bash
# Runs a command as if on an AVX2 CPU without AVX-512 or bfloat16 (AMD Zen 3 and older, Intel
# client chips), on an AVX-512 one: every library that picks its kernels by instruction set at
# run time is capped at AVX2.
#
#   bash benchmarks/as_avx2.sh python benchmarks/speed.py --depth 4 --base-filters 16 --image-size 128 --channels 1
#   bash benchmarks/as_avx2.sh python benchmarks/reference_torch.py --depth 4 --base-filters 16 --image-size 128 --channels 1
#
# - ONEDNN_MAX_CPU_ISA: oneDNN, in TensorFlow and in PyTorch (then `--precision auto` trains in
#   float32 and the batch norms in parts, as on an AVX2 CPU: tuning/precision.py, tuning/unet.py);
# - ATEN_CPU_CAPABILITY: PyTorch's own vectorised kernels;
# - MKL_ENABLE_INSTRUCTIONS: Intel MKL (PyTorch's matrix products);
# - OPENBLAS_CORETYPE: numpy's OpenBLAS (the matrix product the benchmarks take as yardstick).
# TensorFlow's other kernels are compiled for AVX and are the same on both kinds of CPU. The clock,
# caches and memory stay this machine's: compare ratios measured in one run, as on any CPU, and
# label the figures as emulated. RESULTS.md compares them with a real AVX2 CPU's.
set -euo pipefail
if [ "$#" -eq 0 ]; then
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
export ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 OPENBLAS_CORETYPE=Haswell
exec "$@"
