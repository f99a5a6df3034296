#!/usr/bin/env bash
# Runs on a GPU machine from the folder scripts/gather-gpu.sh fills
# (dist/gpu; no Rust needed): makes a 60 s 48 kHz stereo test WAV (or takes
# IN.wav), low-passes it with example-wav_fir on the GPU (checked bit for bit
# against the same filter on the CPU), then filters the same file with the
# same taps in CuPy and PyTorch (peers/fir_peers.py): throughput of each, and
# the peers' difference from the CPU output.
#   bash wav-demo.sh [IN.wav] [-- wav_fir flags, e.g. --device 1]
# Files go to $WAV_DIR (default: a temp dir); WAV_SECONDS sets the test length.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${WAV_DIR:-$(mktemp -d)}
mkdir -p "$dir"
in=$dir/in.wav
make=(--make-test-wav "${WAV_SECONDS:-60}")
if [ $# -gt 0 ] && [ "$1" != "--" ]; then in=$1; make=(); shift; fi
[ "${1:-}" = "--" ] && shift
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || true
echo "== example-wav_fir"
"$here/example-wav_fir" "$in" "$dir/out.wav" --cpu-out "$dir/cpu.wav" --runs 10 "${make[@]}" "$@"
echo "== peers/fir_peers.py"
python3 "$here/peers/fir_peers.py" "$in" "$dir/cpu.wav" "$dir/out.wav.taps.txt" --json "$dir/fir_peers.json"
echo "== files in $dir"
