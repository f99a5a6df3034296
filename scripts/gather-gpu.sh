#!/usr/bin/env bash
# Builds `host` and every test binary (release), and gathers them with the PTX
# into dist/gpu/ (git-ignored), together with run-gpu-tests.sh. Copy that
# folder to a GPU machine (no Rust needed there) and run
#   bash dist/gpu/run-gpu-tests.sh
# (a test that cannot run there says SKIPPED and fails the run unless
# ALLOW_SKIP names it: see run-gpu-tests.sh).
# NVPTX_ARCH=sm_90 picks another PTX architecture, as for any build.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup toolchain install >/dev/null  # the pinned one, from rust-toolchain.toml
out=dist/gpu
rm -rf "$out" && mkdir -p "$out"

cargo build --release --locked -p host -p pc-pipeline --examples --bins
cp target/release/host "$out/host"
cp target/release/examples/moving_average "$out/example-moving_average"
cp target/release/examples/wav_fir "$out/example-wav_fir"
# The PTX the host embeds: the build script's output that the host build used.
ptx=$(ls -t target/release/build/ptx-kernels-*/out/kernels.ptx | head -n 1)
cp "$ptx" "$out/kernels.ptx"
# The Hopper module (sm_90, PTX 8.0), built beside it by the same build script.
cp "$(dirname "$ptx")/hopper.ptx" "$out/hopper.ptx"

cargo test --release --locked --workspace --no-run --message-format=json 2>/dev/null \
  | python3 scripts/collect_test_binaries.py "$out"

cp scripts/run-gpu-tests.sh scripts/sanitize.sh scripts/bench-gpu.sh scripts/bench-stream.sh scripts/wav-demo.sh "$out/"
# Every peer script (run_peers.py, fir_peers.py, triton_peers.py, ...) and the CUDA sources they build.
mkdir -p "$out/peers" && cp bench/peers/kernels.cuh bench/peers/peers.cu bench/peers/*.py "$out/peers/"
strip "$out"/host "$out"/test-* "$out"/example-* 2>/dev/null || true
du -sh "$out"
