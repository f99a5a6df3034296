#!/usr/bin/env bash
# Runs compute-sanitizer's four tools (memcheck, racecheck, synccheck,
# initcheck) over the demo, a pipeline of each workload (stream launches and
# graph replay), and the GPU test binaries gathered by gather-gpu.sh. Each run
# must report 0 errors. Run on a GPU machine: bash dist/gpu/sanitize.sh
# Left out: tests that fault on purpose (test-host-cli, the trap test) and
# the sync checker, which needs real concurrency: the sanitizer serializes
# kernels, so the races it provokes cannot happen there. GPU tests run with
# sizes up to PC_TEST_MAX_ELEMENTS (the instrumented kernels are slow).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cs=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)}
log=${LOG_DIR:-$(mktemp -d)}
mkdir -p "$log"
H="$here/host"
fail=0
runs=0
check() { # tool, name, command...
  local tool=$1 name=$2; shift 2
  runs=$((runs + 1))
  "$cs" --tool "$tool" --error-exitcode 99 --print-limit 20 "$@" >"$log/$tool-$name.log" 2>&1
  local rc=$?
  local summary
  summary=$(grep -E "(ERROR|RACECHECK) SUMMARY" "$log/$tool-$name.log" | tail -n 1)
  printf '%-10s %-28s exit %-3s %s\n' "$tool" "$name" "$rc" "$summary"
  if [ "$rc" -ne 0 ] || ! grep -qE "ERROR SUMMARY: 0 errors|SUMMARY: 0 hazards displayed \(0 errors" "$log/$tool-$name.log"; then fail=$((fail + 1)); fi
}
for tool in memcheck racecheck synccheck initcheck; do
  check $tool demo "$H"
  check $tool generate "$H" pipeline -w generate -k 3 --chunk 1MiB --total 8MiB
  check $tool stream "$H" pipeline -w stream -k 3 --chunk 1MiB --total 8MiB
  check $tool stream-graph "$H" pipeline -w stream -k 2 --chunk 256KiB --total 3MiB --graph --runs 3
  PC_TEST_MAX_ELEMENTS=300000 check $tool gpu-tests "$here/test-ptx-kernels-gpu" --include-ignored --test-threads=1
  check $tool pipeline-tests "$here/test-pc-pipeline-gpu_pipeline" --include-ignored --test-threads=1 every_k_stage serial_baseline timeline repeated spread
done
echo "== $runs sanitizer runs, $fail with errors; logs in $log"
exit "$fail"
