"""Reads `cargo test --no-run --message-format=json` on stdin and copies each
test executable to DEST/test-<package>-<target>, printing the names.

Build-time checks stay behind: the nvptx-builder tests and kernels-gpu's
compile-fail tests need cargo, kernel-macros' tests are a proc-macro's (they
link the compiler's own libraries), and ptx-kernels' `ptx` test needs the
PyPI ptxas (the ptxas of CUDA 13 no longer assembles for sm_70). None needs
a GPU; CI runs them.
"""
import json
import shutil
import sys

dest = sys.argv[1]
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable") or not m["profile"]["test"]:
        continue
    base, _, frag = m["package_id"].partition("#")
    pkg = frag.split("@")[0] if "@" in frag else base.rstrip("/").split("/")[-1]
    target = m["target"]["name"]
    if pkg in ("nvptx-builder", "kernel-macros") or (pkg, target) in (("ptx-kernels", "ptx"), ("kernels-gpu", "compile_fail"), ("pc-pipeline", "compile_fail")):
        continue
    name = "test-%s-%s" % (pkg, target)
    shutil.copy(m["executable"], "%s/%s" % (dest, name))
    print(name)
