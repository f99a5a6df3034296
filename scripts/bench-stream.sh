#!/usr/bin/env bash
# Streams against the host link, in one run on a GPU machine (no Rust
# needed), from the folder gather-gpu.sh made:
#   bash dist/gpu/bench-stream.sh [RESULTS] [TOTAL]
# 1. the ceilings (`host bench --no-pipelines`): "both directions at once"
#    counts bytes in plus bytes out, so a stream of equal input and output
#    can take at most half of it as input;
# 2. h2d -> consumer -> d2h streams of TOTAL (default 8GiB) from a file
#    (page cache) and from a pipe (`host gen |`), output to /dev/null and to
#    a pipe, chunks 1, 4 and 16 MiB, unverified (the GPU tests verify),
#    file to file at 4 MiB, and one verified row;
#    plus the host side alone (`--host-only`: the file through the same
#    readers and staging slots, no GPU), its ceiling, and a traced
#    4 MiB row (file-devnull-4MiB.trace.json);
# 3. latency at the load issue 9 names: chunks of 64 KiB to 16 MiB, the
#    source paced (`--rate`) at half the stream bound measured in step 1
#    (a quarter of "both directions"), with --drop-oldest: where the stream
#    does not sustain that rate, chunks are dropped (counted, reported
#    here) instead of queueing without bound, and latency is that of the
#    chunks delivered;
# 4. beside it, latency at a rate each chunk size sustains: half of what
#    the same size reached unpaced in this run, blocking (no drops).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
H="$here/host"
out=${1:-stream-results}
total=${2:-8GiB}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/device.txt"
"$H" bench --no-pipelines --reps 10 --json "$out/ceilings.json" --markdown "$out/ceilings.md" --plots "$out" > "$out/ceilings.txt" 2>&1
both=$(python3 -c "import json,sys; r=[x for x in json.load(open(sys.argv[1]))['rows'] if x['name'].startswith('both directions')][0]; print(r['gbps'])" "$out/ceilings.json")
echo "both directions at once: $both GB/s (in+out); stream bound (input): $(python3 -c "print($both/2)") GB/s" | tee "$out/summary.txt"
in="${TMPDIR:-/tmp}/stream-in.bin"
"$H" gen --total "$total" --output "$in"
cat "$in" > /dev/null # into the page cache
row() { # label, json, command...
  local label=$1 json=$2; shift 2
  "$@" > "$out/$label.log" 2>&1
  local rc=$?
  python3 - "$json" "$label" "$both" "$rc" <<'PY' | tee -a "$out/summary.txt"
import json, sys
path, label, both, rc = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
try:
    r = json.load(open(path))
except Exception as e:
    print(f"{label:34s} FAILED (exit {rc}): {e}"); sys.exit()
l = r["latency_us"]
d = r["dropped_chunks"]
share = f" ({100 * d / max(1, d + r['chunks']):.1f}% of chunks)" if d else ""
print(f"{label:34s} {r['input_gbps']:7.2f} GB/s = {100*r['input_gbps']/(both/2):5.1f}% of the stream bound; latency p50 {l['p50']:.0f} us p99 {l['p99']:.0f} us max {l['max']:.0f} us; dropped {d}{share}; verified {r['verified']}; exit {rc}")
PY
}
# The pipes' own ceilings: host gen into one pipe (the input side alone),
# and through a second pipe (what a stream from and to pipes also pays).
pipe_ceiling() { # label, pipeline
  python3 - "$1" "$2" "$total_bytes" <<'PY' | tee -a "$out/summary.txt"
import subprocess, sys, time
label, cmd, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = time.perf_counter(); subprocess.run(cmd, shell=True, check=True); dt = time.perf_counter() - t
print(f"{label:34s} {total / dt / 1e9:7.2f} GB/s (pipe ceiling, no GPU)")
PY
}
total_bytes=$(stat -c %s "$in")
pipe_ceiling "gen | cat" "'$H' gen --total $total | cat > /dev/null"
pipe_ceiling "gen | cat | cat" "'$H' gen --total $total | cat | cat > /dev/null"
for c in 1MiB 4MiB 16MiB; do
  row "file-devnull-$c" "$out/file-devnull-$c.json" "$H" pipeline -w stream --chunk $c --input "$in" --output /dev/null --no-verify --json "$out/file-devnull-$c.json"
  row "pipe-pipe-$c" "$out/pipe-pipe-$c.json" bash -c "'$H' gen --total $total | '$H' pipeline -w stream --chunk $c --input - --output - --no-verify --json '$out/pipe-pipe-$c.json' > /dev/null"
done
# Chunks read at once (the rows above: the default, 4 at 4 MiB); one at a
# time is how streams read a file before --readers.
for r in 1 2 8 16; do
  row "file-devnull-4MiB-readers-$r" "$out/file-devnull-4MiB-readers-$r.json" "$H" pipeline -w stream --chunk 4MiB --input "$in" --output /dev/null --no-verify --readers $r --json "$out/file-devnull-4MiB-readers-$r.json"
done
# One row again with a trace (each chunk's read, GPU operations and
# latency; open in Perfetto), apart so the timing events do not touch the
# rows above.
row "file-devnull-4MiB-traced" "$out/file-devnull-4MiB-traced.json" "$H" pipeline -w stream --chunk 4MiB --input "$in" --output /dev/null --no-verify --trace "$out/file-devnull-4MiB.trace.json" --json "$out/file-devnull-4MiB-traced.json"
# The reading side alone, no GPU: what the readers deliver from this file.
for c in 1MiB 4MiB 16MiB; do
  row "file-host-only-$c" "$out/file-host-only-$c.json" "$H" pipeline -w stream --chunk $c --input "$in" --host-only --json "$out/file-host-only-$c.json"
done
# File to file (FileSink, written in parallel pieces, one chunk at a time),
# through the GPU and through the host side alone.
outfile="${TMPDIR:-/tmp}/stream-out.bin"
row "file-file-4MiB" "$out/file-file-4MiB.json" "$H" pipeline -w stream --chunk 4MiB --input "$in" --output "$outfile" --no-verify --json "$out/file-file-4MiB.json"
rm -f "$outfile"
row "file-file-host-only-4MiB" "$out/file-file-host-only-4MiB.json" "$H" pipeline -w stream --chunk 4MiB --input "$in" --output "$outfile" --host-only --json "$out/file-file-host-only-4MiB.json"
rm -f "$outfile"
row "file-devnull-4MiB-verified" "$out/file-devnull-4MiB-verified.json" "$H" pipeline -w stream --chunk 4MiB --input "$in" --output /dev/null --json "$out/file-devnull-4MiB-verified.json"
# Latency at the load issue 9 names: half the stream bound, whatever the
# chunk size, dropping the oldest chunk when every staging slot is busy.
half=$(python3 -c "print($both / 4)")
echo "latency at half the stream bound ($half GB/s of input offered), --drop-oldest, from a file:" | tee -a "$out/summary.txt"
for c in 64KiB 256KiB 1MiB 4MiB 16MiB; do
  row "half-bound-$c-at-${half:0:5}GBps" "$out/half-bound-$c.json" "$H" pipeline -w stream --chunk $c --input "$in" --output /dev/null --no-verify --rate "$half" --drop-oldest --json "$out/half-bound-$c.json"
done
# Beside it, latency at a rate each chunk size sustains: half of what the
# same size reached unpaced in this run, blocking, so latency is not queue
# growth and nothing is dropped.
echo "latency at a sustainable rate (half of each chunk size's unpaced rate), blocking, from a file:" | tee -a "$out/summary.txt"
for c in 64KiB 256KiB 1MiB 4MiB 16MiB; do
  row "unpaced-$c" "$out/unpaced-$c.json" "$H" pipeline -w stream --chunk $c --input "$in" --output /dev/null --no-verify --json "$out/unpaced-$c.json"
  rate=$(python3 -c "import json,sys; print(min(json.load(open(sys.argv[1]))['input_gbps'] / 2, $both / 4))" "$out/unpaced-$c.json")
  row "sustainable-$c-at-${rate:0:5}GBps" "$out/paced-$c.json" "$H" pipeline -w stream --chunk $c --input "$in" --output /dev/null --no-verify --rate "$rate" --json "$out/paced-$c.json"
done
rm -f "$in"
