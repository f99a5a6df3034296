#!/usr/bin/env bash
# Installs ptxas (PyPI's nvidia-cuda-nvcc-cu12, no GPU or driver needed) into
# .tools/cuda-nvcc, where nvptx_builder::find_ptxas() finds it for build
# scripts and tests alike (.cargo/config.toml names it). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
ptxas=.tools/cuda-nvcc/nvidia/cuda_nvcc/bin/ptxas
if [ -x "$ptxas" ]; then echo "ptxas: $ptxas"; exit 0; fi
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
  --target .tools/cuda-nvcc "nvidia-cuda-nvcc-cu12==12.9.86"
"$ptxas" --version | tail -n 2
