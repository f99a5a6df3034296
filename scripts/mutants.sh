#!/usr/bin/env bash
# Mutation testing of the CPU tests, by a list of our own: each mutant is a
# file, an exact snippet of it, its replacement, and the test command that
# should fail with it. Each runs in a scratch copy of the working tree (the
# tree itself is never touched), is put back after its command, and is
# reported KILLED (the command failed), SURVIVED (it passed: a gap in the
# tests) or STALE (the snippet is no longer in the file: update the list).
# Every command first runs once on the unmutated copy, which must pass.
#
#   scripts/mutants.sh            # every mutant
#   scripts/mutants.sh stream     # the mutants whose name contains "stream"
#
# Raw log: docs/mutation-cpu.txt (MUTANTS_LOG to change); summary on
# stdout; exit status 1 when a mutant survived or went stale (those marked
# `gpu-only` are expected to survive: only a GPU run can catch them).
# Needs python3 (exact, checked replacement) and cargo. Builds in a target
# directory of its own (target/mutants): the copy's crates hash like the
# tree's, so sharing target/ would mix their builds.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
log=${MUTANTS_LOG:-$root/docs/mutation-cpu.txt}
filter=${1:-}
limit=${MUTANT_TIMEOUT:-900}
export CARGO_TARGET_DIR=${MUTANTS_TARGET_DIR:-$root/target/mutants}

names=() files=() origs=() repls=() cmds=() notes=()
# mutant NAME FILE ORIGINAL REPLACEMENT COMMAND [NOTE]
mutant() {
  names+=("$1") files+=("$2") origs+=("$3") repls+=("$4") cmds+=("$5") notes+=("${6:-}")
}

lib='cargo test -p pc-pipeline --locked --lib'
# --- the six that survived the issue's run ---
mutant stream-executor-ignores-waits pipeline/src/exec/device.rs \
  'Action::Wait { stream, event } => to.wait(stream, event)?,' \
  'Action::Wait { .. } => {}' \
  "$lib stream::tests"
mutant passed-without-chunks-checked pipeline/src/reference.rs \
  'self.chunks_expected > 0 && self.chunks_checked == self.chunks_expected' \
  'self.chunks_expected > 0' \
  'cargo test -p pc-pipeline --locked --test spec'
mutant stream-checker-passes-a-panicking-reference pipeline/src/stream/mod.rs \
  'Err(_) => Some((0, "the CPU reference panicked".into())),' \
  'Err(_) => None,' \
  "$lib stream::tests"
mutant fir-adds-taps-in-reverse kernel-math/src/lib.rs \
  'for (j, &t) in taps.iter().enumerate() {' \
  'for (j, &t) in taps.iter().enumerate().rev() {' \
  'cargo test -p kernel-math --locked --lib'
mutant history-never-swaps pipeline/src/halo.rs \
  'self.current = next;' \
  'let _ = next;' \
  "$lib halo::tests"
mutant paced-drop-oldest-drops-the-last-whole-chunk pipeline/src/stream/input.rs \
  'whole_chunks: len.saturating_sub(1) / self.chunk_bytes as u64' \
  'whole_chunks: len / self.chunk_bytes as u64' \
  "$lib stream::input::tests"
# --- verify's extras ---
mutant verify-passes-an-extra-record pipeline/src/reference.rs \
  'if reductions.len() > records {' \
  'if reductions.len() > records + 1 {' \
  'cargo test -p pc-pipeline --locked --test spec'
mutant verify-passes-elements-past-the-total pipeline/src/reference.rs \
  'output.filter(|o| o.len() as u64 > want)' \
  'output.filter(|o| o.len() as u64 > want + 2 * size)' \
  'cargo test -p pc-pipeline --locked --test spec'
mutant verify-counts-nothing-checked pipeline/src/reference.rs \
  '        v.wrong(c, items, what);
    }
    v.chunks_checked += 1;' \
  '        v.wrong(c, items, what);
    }' \
  'cargo test -p pc-pipeline --locked --test spec'
# --- the protocol, the slots, the halo ---
mutant stream-plan-drops-the-freed-wait pipeline/src/exec/plan.rs \
  'if stage + 1 < stages && chunk >= slots {' \
  'if stage + 1 < stages && chunk > slots {' \
  'cargo test -p pc-pipeline --locked --test plan_model'
mutant stream-plan-drops-the-filled-wait pipeline/src/exec/plan.rs \
  '        if stage > 0 {
            out.push(Action::Wait' \
  '        if stage > 1 {
            out.push(Action::Wait' \
  'cargo test -p pc-pipeline --locked --test plan_model'
mutant run-plan-drops-a-graph-wait pipeline/src/exec/plan.rs \
  'for e in graph.waits_of(stage, chunk) {' \
  'for e in graph.waits_of(stage, chunk).into_iter().skip(1) {' \
  'cargo test -p pc-pipeline --locked --test plan_model'
mutant run-plan-swaps-a-slot pipeline/src/exec/plan.rs \
  'slot: chunk % graph.slots() });' \
  'slot: (chunk + chunk / graph.slots()) % graph.slots() });' \
  'cargo test -p pc-pipeline --locked --test plan_model'
mutant halo-reference-history-off-by-one pipeline/src/reference.rs \
  '(values.sub(0..h), values.sub(h..values.len()))' \
  '(values.sub(1..h + 1), values.sub(h + 1..values.len()))' \
  'cargo test -p pc-pipeline --locked --test halo'
mutant reduce-histogram-bin-off-by-one kernel-math/src/lib.rs \
  'let b = ((v + 4.0) * 2.0) as i32;' \
  'let b = ((v + 4.0) * 2.0) as i32 + 1;' \
  'cargo test -p pc-pipeline --locked --test spec'
mutant moving-average-off-by-a-little kernel-math/src/lib.rs \
  '(a + b + c) / 3.0' \
  '(a + b + c) / 3.001' \
  'cargo test -p pc-pipeline --locked --test oracle'
# --- the soundness checks (issue 18): loading, ranks ---
mutant layout-check-accepts-another-size runtime/src/launch.rs \
  'if (p.size, p.align) != (size, align) {' \
  'if p.align != align {' \
  'cargo test -p nvptx-builder --locked --test layout'
mutant layout-check-accepts-a-missing-record runtime/src/launch.rs \
  'let Some((device_signature, found)) = layout_record(ptx, name) else {' \
  'let Some((device_signature, found)) = layout_record(ptx, name).or_else(|| Some((signature, want.iter().map(|p| (p.size, p.align)).collect()))) else {' \
  'cargo test -p pc-runtime --locked --lib'
mutant signature-check-accepts-another-signature runtime/src/launch.rs \
  'if device_signature != signature {' \
  'if device_signature != signature && false {' \
  'cargo test -p nvptx-builder --locked --test layout_holes'
mutant digest-ignores-the-chunk-size pipeline/src/ranks.rs \
  'put(&spec.chunk_elements.to_le_bytes());' \
  '' \
  "$lib ranks::tests"
mutant digest-ignores-the-ring-types pipeline/src/ranks.rs \
  'put(t.name().as_bytes());' \
  'let _ = t.name();' \
  "$lib ranks::tests"
# --- the executor's protocol on the simulated device (issue 20) ---
sim='cargo test -p pc-pipeline --locked --test sim'
mutant sim-walker-ignores-waits pipeline/src/exec/device.rs \
  'Action::Wait { stream, event } => to.wait(stream, event)?,' \
  'Action::Wait { .. } => {}' \
  "$sim"
mutant sim-run-plan-wrong-slot pipeline/src/exec/plan.rs \
  'slot: chunk % graph.slots() });' \
  'slot: (chunk + stage) % graph.slots() });' \
  "$sim"
mutant sim-stream-chunk-wrong-slot pipeline/src/exec/plan.rs \
  'slot: chunk % slots });' \
  'slot: (chunk + stage) % slots });' \
  "$sim"
mutant sim-graph-drops-the-last-filled-edge pipeline/src/graph.rs \
  'edges.push(Edge { kind: EdgeKind::Filled, ring, slot: c % slots, from: (ring, c), to: (ring + 1, c) });' \
  'if c + 1 < chunks { edges.push(Edge { kind: EdgeKind::Filled, ring, slot: c % slots, from: (ring, c), to: (ring + 1, c) }); }' \
  "$sim"
mutant sim-graph-drops-a-freed-edge pipeline/src/graph.rs \
  'if c + slots < chunks {' \
  'if c + slots + 1 < chunks {' \
  "$sim"
mutant sim-run-plan-drops-a-graph-wait pipeline/src/exec/plan.rs \
  'for e in graph.waits_of(stage, chunk) {' \
  'for e in graph.waits_of(stage, chunk).into_iter().skip(1) {' \
  "$sim"
mutant sim-stream-chunk-drops-the-filled-wait pipeline/src/exec/plan.rs \
  '        if stage > 0 {
            out.push(Action::Wait' \
  '        if stage > 1 {
            out.push(Action::Wait' \
  "$sim"
mutant sim-stream-chunk-drops-the-freed-wait pipeline/src/exec/plan.rs \
  'if stage + 1 < stages && chunk >= slots {' \
  'if stage + 1 < stages && chunk > slots {' \
  "$sim"
mutant sim-run-plan-waits-on-a-stale-capture pipeline/src/exec/plan.rs \
  'index: e.from.1 % pool }' \
  'index: e.to.1 % pool }' \
  "$sim"
# --- every form for a map stage (issue 19): the warp-ring kernel must not
# be a MapKernel (its watch address would be a safe stage parameter), and
# the example stage must carry each form for every grain to accept it ---
mutant warp-ring-kernel-becomes-a-map-kernel kernel-macros/src/lib.rs \
  'if writes_tiles(params) {
        return quote! {};
    }' \
  '' \
  'cargo test -p kernels-gpu --locked --test compile_fail'
mutant warps-map-form-not-stored pipeline/src/exec/warps.rs \
  'self.with_warp_form(Arc::new(WarpMap::<K> { ptx }))' \
  'self' \
  'cargo test -p pc-pipeline --locked --test every_form'
# --- the run's fork and join: stream 1.. of a run waits for stream 0's
# earlier work (the previous run's last readers of a slot), and stream 0
# for every other stream at the end ---
mutant sim-run-plan-drops-the-fork-waits pipeline/src/exec/plan.rs \
  'out.extend((1..streams).map(|stream| Action::Wait { stream, event: EventId::Fork }));' \
  '' \
  "$sim"
mutant sim-run-plan-drops-the-join-waits pipeline/src/exec/plan.rs \
  'out.push(Action::Wait { stream: 0, event: EventId::Join(stream) });' \
  '' \
  "$sim"
# A bulk copy of an element whose size does not divide 16 (12 bytes) must
# move whole 16-byte units: the rounding of before issue 19's review.
mutant bulk-unit-rounds-by-whole-elements nvptx-std/src/hopper/ring.rs \
  '16 >> if size.trailing_zeros() > 4 { 4 } else { size.trailing_zeros() }' \
  'if size >= 16 { 1 } else { 16 / size }' \
  'cargo test -p nvptx-std --locked --lib'
# A new grain's module is placed by the table of grains' import: without
# it the layering test would ask for a second line (docs/guide.md says one).
mutant layering-places-no-grain-by-the-table tests/layering.rs \
  'let in_table = g.get("grains").is_some_and(|t| t.contains(module));' \
  'let in_table = false;' \
  'cargo test --locked --test layering'
# --- past the seam: a CPU test cannot see the CUDA call itself. The
# simulated device runs the walker and the plans, not `OnStreams` (the CUDA
# implementation of `EnqueueTo`): a no-op `cuStreamWaitEvent` there is
# still for a GPU run to catch (docs/mutation.md). ---
mutant stream-cuda-wait-is-a-no-op pipeline/src/stream/mod.rs \
  'self.part.streams[stream].wait(self.part.event(event)).map_err(cuda("waiting on an event"))' \
  'Ok(())' \
  "$lib stream::tests" gpu-only

scratch=$(mktemp -d "${TMPDIR:-/tmp}/mutants.XXXXXX")
current=""
# Puts the mutated file back; the scratch copy goes with the exit.
restore() { [ -n "$current" ] && cp "$scratch/.orig" "$scratch/$current"; current=""; }
trap 'restore; rm -rf "$scratch"' EXIT
trap 'echo "interrupted: the tree was never touched; the scratch copy is removed"; exit 130' INT TERM

commit=$(git -C "$root" rev-parse --short HEAD)
dirty=$(git -C "$root" status --porcelain --untracked-files=no | grep -q . && echo " (with uncommitted changes)")
# -m: fresh times, so nothing built earlier from older sources counts as current.
(cd "$root" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -xmf - -C "$scratch"
mkdir -p "$(dirname "$log")"
{
  echo "# scripts/mutants.sh ${filter:+$filter }at $commit$dirty, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "# target dir $CARGO_TARGET_DIR; each command with a limit of ${limit}s"
} >"$log"

run() { # log-label, command: runs it in the scratch copy, output to the log
  echo "## $1: $2" >>"$log"
  (cd "$scratch" && timeout "$limit" bash -c "$2") >>"$log" 2>&1
}

# The baseline: every command passes on the unmutated copy.
declare -A baseline=()
for i in "${!names[@]}"; do
  [[ -n $filter && ${names[$i]} != *"$filter"* ]] && continue
  c=${cmds[$i]}
  [[ -n ${baseline[$c]:-} ]] && continue
  if run baseline "$c"; then baseline[$c]=ok; else
    echo "BASELINE FAILED: $c (see $log)"; exit 2
  fi
done

killed=0 survived=0 stale=0 total=0 expected=0
summary=()
for i in "${!names[@]}"; do
  name=${names[$i]} file=${files[$i]} note=${notes[$i]}
  [[ -n $filter && $name != *"$filter"* ]] && continue
  total=$((total + 1))
  cp "$scratch/$file" "$scratch/.orig"
  current=$file
  if ! python3 - "$scratch/$file" "${origs[$i]}" "${repls[$i]}" <<'EOF'
import sys
path, orig, repl = sys.argv[1:]
text = open(path).read()
if text.count(orig) != 1:
    sys.exit(f"{text.count(orig)} copies of the snippet")
open(path, "w").write(text.replace(orig, repl))
EOF
  then
    restore
    stale=$((stale + 1))
    summary+=("STALE     $name ($file): the snippet is not in the file once")
    continue
  fi
  start=$(date +%s)
  if run "mutant $name ($file)" "${cmds[$i]}"; then status=SURVIVED; else status=KILLED; fi
  restore
  secs=$(($(date +%s) - start))
  if [ $status = KILLED ]; then
    killed=$((killed + 1))
  elif [ "$note" = gpu-only ]; then
    expected=$((expected + 1))
    status="SURVIVED (gpu-only, expected)"
  else
    survived=$((survived + 1))
  fi
  line="$status $name ($file, ${secs}s): ${cmds[$i]}"
  echo "## => $line" >>"$log"
  summary+=("$line")
  echo "$line"
done

{
  echo
  echo "# summary: $killed killed of $total mutants; $survived survived; $expected expected to survive (gpu-only); $stale stale"
  printf '%s\n' "${summary[@]}"
} | tee -a "$log"
[ $survived -eq 0 ] && [ $stale -eq 0 ]
