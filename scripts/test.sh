#!/usr/bin/env bash
# The project's test command, on any machine (no GPU needed): installs the
# pinned nightly (rust-toolchain.toml) and ptxas, checks formatting, lints
# and docs, builds everything, runs every test, and builds a project written
# by `host new` outside the clone. Tests that need a GPU show as "ignored,
# needs a CUDA device"; run them on a GPU machine with
# `cargo test -- --include-ignored`, or with scripts/gather-gpu.sh where that
# machine has no Rust.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup toolchain install            # reads rust-toolchain.toml
./scripts/install-ptxas.sh
# Installed above: the ptxas tests (tests/ptx.rs) must run here, not skip.
export PTXAS_REQUIRED=1
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
cargo test --workspace --locked "$@"
# The flag ring's and the warp ring's protocols, model-checked with loom,
# each weakened variant shown failing (docs/loom.md; ~20 s). A target
# directory of its own: --cfg loom rebuilds every dependency.
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p kernel-math --test loom_rings --release --locked

# Every library crate packages (docs/crates.md). `--workspace` resolves each
# one's siblings from the crates just packaged, so none needs to be on
# crates.io; --allow-dirty: a check, not an upload, so it also runs on edits
# not yet committed. Verification (building each unpacked crate) runs for
# all but ptx-kernels and pc-pipeline: ptx-kernels' build script builds
# kernels-gpu to PTX with a nested cargo, which resolves nvptx-std and
# kernel-math from crates.io and cannot see the packaged ones; pc-pipeline
# depends on ptx-kernels.
cargo package --workspace --exclude host --locked --allow-dirty --no-verify
# Cargo unpacks the just-packaged crates under $CARGO_HOME/registry/src/-<hash>
# (a hash of target/package/tmp-registry's path) and, the version being the
# same 0.1.0, would reuse an earlier run's unpacked sources: remove those
# local-registry copies (never crates.io's) so each run verifies what it packed.
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-* "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/-*
cargo package --workspace --exclude host --exclude ptx-kernels --exclude pc-pipeline --locked --allow-dirty

# A user's project, outside this clone: `host new` writes it, and its
# `cargo build` must work with no other step (its kernels go through
# nvptx-builder, which pins its own toolchain). Built with the machine's
# default toolchain, as a user would; the pinned one where there is none.
project=$(mktemp -d)/my-pipeline
cargo run -q --locked -p host -- new "$project"
if rustup default >/dev/null 2>&1; then toolchain=(); else toolchain=("+$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)"); fi
# --locked: the Cargo.lock `host new` ships pins what this clone's lockfile pins.
(cd "$project" && cargo "${toolchain[@]}" build --locked && cargo "${toolchain[@]}" clippy -q --locked -- -D warnings && cargo "${toolchain[@]}" run -q --locked -- pipeline --help >/dev/null)
echo "host new: $project builds, clippy-clean"
