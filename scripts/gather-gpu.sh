#!/usr/bin/env bash
# Builds `host` and every test binary (release), and gathers them with the PTX
# into dist/gpu/ (git-ignored), together with run-gpu-tests.sh. Copy that
# folder to a GPU machine (no Rust needed there) and run
#   bash dist/gpu/run-gpu-tests.sh
# NVPTX_ARCH=sm_90 picks another PTX architecture, as for any build.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup toolchain install >/dev/null  # the pinned one, from rust-toolchain.toml
out=dist/gpu
rm -rf "$out" && mkdir -p "$out"

cargo build --release --locked -p host
cp target/release/host "$out/host"

cargo test --release --locked --workspace --no-run --message-format=json 2>/dev/null \
  | python3 -c '
import json, sys, shutil
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable") or not m["profile"]["test"]:
        continue
    base, _, frag = m["package_id"].partition("#")
    pkg = frag.split("@")[0] if "@" in frag else base.rstrip("/").split("/")[-1]
    # Build-time checks stay behind: they need cargo or the PyPI ptxas (CUDA
    # 13's ptxas no longer assembles for sm_70), not a GPU.
    if pkg == "nvptx-builder" or (pkg == "ptx-kernels" and m["target"]["name"] == "ptx"):
        continue
    name = "test-%s-%s" % (pkg, m["target"]["name"])
    shutil.copy(m["executable"], sys.argv[1] + "/" + name)
    print(name)
' "$out"

ptx=$(ls -t target/release/build/ptx-kernels-*/out/kernels.ptx | head -n 1)
cp "$ptx" "$out/kernels.ptx"
cp scripts/run-gpu-tests.sh "$out/"
strip "$out"/host "$out"/test-* 2>/dev/null || true
du -sh "$out"
