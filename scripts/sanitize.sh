#!/usr/bin/env bash
# Runs compute-sanitizer's four tools (memcheck, racecheck, synccheck,
# initcheck) over the demo, a pipeline of each workload (stream launches and
# graph replay), and the GPU test binaries gathered by gather-gpu.sh. Each run
# must report 0 errors. Run on a GPU machine: bash dist/gpu/sanitize.sh
# (TOOLS="" runs only the fault paths.) Then the fault paths under memcheck, each with its expected exit status:
# a kernel that traps mid-pipeline (PTX edited here: exit 1), a stream whose
# input ends mid-element (its whole chunks go through the GPU, then exit 1),
# SIGINT during a long run (exit 130); memcheck
# must find no memory error in any (the trap's own launch failure is the
# expected API error, so API errors are not counted there).
# Left out: the sync checker, which needs real concurrency: the sanitizer
# serializes kernels, so the races it provokes cannot happen there. GPU
# tests run with sizes up to PC_TEST_MAX_ELEMENTS (the instrumented kernels
# are slow).
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
for tool in ${TOOLS-memcheck racecheck synccheck initcheck}; do
  check $tool demo "$H"
  check $tool generate "$H" pipeline -w generate -k 3 --chunk 1MiB --total 8MiB
  check $tool stream "$H" pipeline -w stream -k 3 --chunk 1MiB --total 8MiB
  check $tool stream-graph "$H" pipeline -w stream -k 2 --chunk 256KiB --total 3MiB --graph --runs 3
  # The Hopper grains' complete protocols (sm_90): PDL launches, plain and
  # as a graph, and the consumer/reduce on the mbarrier ring.
  check $tool grain-pdl "$H" pipeline --grain pdl -k 3 --chunk 256KiB --total 3MiB --runs 2
  check $tool grain-pdl-graph "$H" pipeline --grain pdl-graph -k 2 --chunk 256KiB --total 3MiB --runs 2
  check $tool grain-warps "$H" pipeline --grain warps -k 3 --chunk 1MiB --total 4MiB
  check $tool grain-warps-stream "$H" pipeline --grain warps -w stream -k 2 --chunk 256KiB --total 3MiB
  check $tool grain-warps-fir "$H" pipeline --grain warps -w stream --stages h2d,fir,d2h -k 2 --chunk 256KiB --total 3MiB
  # The flags grain: every stage one kernel, all at once, flag rings.
  check $tool grain-flags "$H" pipeline --grain flags -k 4 --chunk 64KiB --total 4MiB --runs 2
  check $tool grain-flags-pieces "$H" pipeline --grain flags -k 2 --chunk 1MiB --total 8MiB
  # Placement: the placed path on one GPU, and the tests that place stages
  # on "two" GPUs that are one (the peer copy stage and its events).
  check $tool placed "$H" pipeline -w stream --place h2d:0,consumer:0,d2h:0 -k 2 --chunk 256KiB --total 3MiB
  check $tool place-tests "$here/test-pc-pipeline-gpu_place" --include-ignored --test-threads=1 placed_on_the_same_device
  [ -f "$log/in.bin" ] || "$H" gen --total 3MiB --output "$log/in.bin"
  check $tool stream-io "$H" pipeline -w stream -k 2 --chunk 256KiB --input "$log/in.bin" --output "$log/out.bin"
  PC_TEST_MAX_ELEMENTS=300000 check $tool gpu-tests "$here/test-ptx-kernels-gpu" --include-ignored --test-threads=1
  # A user's map stage at every grain through its generic forms (flags, PDL, warps).
  PC_TEST_MAX_ELEMENTS=300000 check $tool every-form "$here/test-pc-pipeline-every_form" --include-ignored --test-threads=1
  check $tool pipeline-tests "$here/test-pc-pipeline-gpu_pipeline" --include-ignored --test-threads=1 every_k_stage serial_baseline timeline repeated spread
done
# ---- fault paths (memcheck) ----
# Each must exit with its status and show no memory error (invalid or
# out-of-bounds access, misaligned access, leak); the trap itself is the
# fault injected (memcheck lists each trapping thread), not a memory error.
memory_errors() { grep -cE "Invalid (__global__|__shared__|__local__)|out of bounds|[Mm]isaligned|Leaked" "$1"; }
fault() { # name, expected exit status, command...
  local name=$1 want=$2; shift 2
  runs=$((runs + 1))
  "$cs" --tool memcheck --report-api-errors no --print-limit 20 --leak-check full "$@" >"$log/fault-$name.log" 2>&1
  local rc=$? bad
  bad=$(memory_errors "$log/fault-$name.log")
  printf '%-10s %-28s exit %-3s memory errors %s (want exit %s) %s\n' memcheck "fault-$name" "$rc" "$bad" "$want" "$(grep -m1 '^error:' "$log/fault-$name.log")"
  if [ "$rc" -ne "$want" ] || [ "$bad" -ne 0 ]; then fail=$((fail + 1)); fi
}
trap_ptx="$log/trap.ptx"
python3 - "$here/kernels.ptx" "$trap_ptx" <<'PY'
import sys
ptx = open(sys.argv[1]).read()
at = ptx.index(".visible .entry consumer_vec_kernel(")
body = ptx.index("\n{", at) + 2
open(sys.argv[2], "w").write(ptx[:body] + "\ttrap;\n" + ptx[body:])
PY
fault trap-mid-pipeline 1 "$H" pipeline -w generate -k 3 --chunk 1MiB --total 8MiB --ptx "$trap_ptx"
# A warp ring that cannot move (its producer lane drops a slot): the
# watchdog's report names the stage and slot; the test passes (exit 0).
fault warp-ring-stuck 0 "$here/test-pc-pipeline-gpu_warps_stuck" --include-ignored
# A stream whose input ends mid-element: the whole chunks before the cut go
# through the GPU, then a one-line error, exit 1, no output file.
head -c 1000001 /dev/urandom > "$log/short.bin"
fault input-ends-early 1 "$H" pipeline -w stream --chunk 64KiB --input "$log/short.bin" --output "$log/short-out.bin"
runs=$((runs + 1))
if [ -e "$log/short-out.bin" ]; then echo "input-ends-early: a partial output file was left"; fail=$((fail + 1)); fi
# SIGINT: to the host process (named `host`), once its run is going.
"$cs" --tool memcheck --print-limit 20 --leak-check full "$H" pipeline -w generate --chunk 1MiB --total 8MiB --runs 1000000 >"$log/fault-sigint.log" 2>&1 &
cs_pid=$!
for _ in $(seq 90); do
  sleep 1
  grep -q "^pipeline:" "$log/fault-sigint.log" && break
done
sleep 5
# The `host` process that descends from this sanitizer (not necessarily its
# direct child; not some other program named host).
descends() { local p=$1; while [ "$p" -gt 1 ]; do [ "$p" -eq "$2" ] && return 0; p=$(ps -o ppid= -p "$p" | tr -d ' '); [ -n "$p" ] || return 1; done; return 1; }
host_pid=""
for p in $(pgrep -x host); do descends "$p" "$cs_pid" && host_pid=$p; done
kill -INT "$host_pid" 2>/dev/null || echo "no host process to interrupt"
# Whatever happens, nothing outlives two minutes.
( sleep 120; kill -KILL "$host_pid" "$cs_pid" 2>/dev/null ) & watchdog=$!
wait "$cs_pid"; rc=$?
kill "$watchdog" 2>/dev/null
runs=$((runs + 1))
bad=$(memory_errors "$log/fault-sigint.log")
printf '%-10s %-28s exit %-3s memory errors %s (want exit 130) %s\n' memcheck fault-sigint "$rc" "$bad" "$(grep -m1 '^error:' "$log/fault-sigint.log")"
if [ "$rc" -ne 130 ] || [ "$bad" -ne 0 ]; then fail=$((fail + 1)); fi

echo "== $runs sanitizer runs, $fail with errors; logs in $log"
exit "$fail"
