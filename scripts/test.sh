#!/usr/bin/env bash
# The project's test command, on any machine (no GPU needed): installs the
# pinned nightly (rust-toolchain.toml) and ptxas, builds everything, runs every
# test. Tests that need a GPU show as "ignored, needs a CUDA device"; run them
# on a GPU machine with `cargo test -- --include-ignored`, or with
# scripts/gather-gpu.sh where that machine has no Rust.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup toolchain install            # reads rust-toolchain.toml
./scripts/install-ptxas.sh
cargo test --workspace --locked "$@"
