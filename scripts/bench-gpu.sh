#!/usr/bin/env bash
# Runs every benchmark in one go on a GPU machine (no Rust needed), from the
# folder gather-gpu.sh made: the peers (CUDA C++ via nvcc, CuPy, PyTorch, then
# Triton, whose figures are appended to the same peers.json) and then
# `host bench`, which merges their figures into one JSON file, one markdown
# table and the SVG plots, all in RESULTS (default: ./bench-results).
#   bash dist/gpu/bench-gpu.sh [RESULTS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-bench-results}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/device.txt"
python3 "$here/peers/run_peers.py" "$out/peers.json" 2>&1 | tee "$out/peers.txt" || echo "warning: some peers failed (see peers.txt); continuing"
# Exit 2: no Triton here (nothing merged); 1: a check or a part failed (the
# verified figures are merged, the failures listed under "errors").
python3 "$here/peers/triton_peers.py" "$out/triton.json" --merge-into "$out/peers.json" 2>&1 | tee "$out/triton.txt" \
  || echo "warning: the Triton peer failed or is missing (see triton.txt); continuing"
"$here/host" bench --peers "$out/peers.json" --json "$out/bench.json" --markdown "$out/bench.md" --plots "$out" | tee "$out/bench.txt"
