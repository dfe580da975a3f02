#!/usr/bin/env bash
# CPU benchmark of packed int4/int8 plans of the synthetic DeepSeek-V2-Lite (examples/configs,
# kt-synth bf16 random weights, seed 0) on the device machine, which has no compiler build and
# cannot receive the GB-sized packed sidecars. Plans are compiled here with --pack-later (small
# .ktplan files, no sidecar); the device regenerates the same checkpoint with kt-synth at the same
# absolute path and rebuilds each sidecar with `kt-rt pack`.
#
#   scripts/device-cpu-bench.sh --prepare [KT_BUILD]   here: .cpubench/ (carry [".cpubench",
#       ".devdeps"]; .devdeps from scripts/device-cuda-plans.sh): plans of 8 and 27 layers x int4,
#       int8, the flatc header for the device build and md5 sums of the checkpoints
#   scripts/device-cpu-bench.sh --gen   here: only the flatc header (after plan.fbs changed)
#   scripts/device-cpu-bench.sh [--model l8|l27|all] [--quant int4|int8|all] [--threads "16 8"]
#       [--reps N (default 2 for l8, 1 for l27)]
#       on the device: builds kt-rt/kt-synth (scripts/device, /tmp/ktcpu), then per model:
#       kt-synth, md5 check, and per quantization: kt-rt pack, kt-rt bench --json at prompt 128 and
#       512 (gen 32) with each thread count, sidecar removed again; probe + triad bandwidth first.
#       Logs and JSON under $OUT (bench.txt, *.json, pack-*.txt, probe.json, bandwidth.txt).
#   scripts/device-cpu-bench.sh --dry [KT_BUILD]   here, end to end on a tiny DeepSeek-V2 (2
#       layers, 8 experts), with the local binaries and --threads 2: proves the steps above.
# KT_BUILD (default build-d) holds tools/kt-compile, tools/kt-rt and tools/kt-synth.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CONFIG=examples/configs/deepseek-v2-lite.json
SEED=0
D=$ROOT/.cpubench
CK=/tmp/kt-bench/dsv2lite-cpu # checkpoints: $CK-l8, $CK-l27 (same path on both machines)

layers_of() { [ "$1" = l8 ] && echo 8 || echo 27; }

# ---- here: plans without sidecars -------------------------------------------------------------
prepare() { # KT_BUILD PLANS_DIR MODELS SYNTH_EXTRA...
  local build=$1 plans=$2 models=$3
  shift 3
  mkdir -p "$plans"
  for m in $models; do
    local ck=$CK-$m
    rm -rf "$ck"
    echo "== kt-synth $m $(date -u +%T)"
    "$build/tools/kt-synth/kt-synth" "$CONFIG" "$ck" --dtype bf16 --seed $SEED \
      --layers "$(layers_of "$m")" "$@" -q || return 1
    (cd "$ck" && md5sum ./*.safetensors > "$plans/$m.md5") || return 1
    for q in int4 int8; do
      "$build/tools/kt-compile/kt-compile" "$ck" -o "$plans/dsv2lite-$m.$q.ktplan" \
        --cpu-quant "$q" --pack-later || return 1
    done
    rm -rf "$ck"
  done
}

# The device builds against this flatc output; the schema's md5 beside it lets the device refuse a
# stale header (run --gen again after plan.fbs changes; the plans themselves stay readable).
gen() {
  rm -rf "$D/gen"
  mkdir -p "$D/gen/runtime/schema"
  flatc --cpp --gen-object-api --gen-compare --scoped-enums -o "$D/gen/runtime/schema" \
    runtime/schema/plan.fbs && md5sum runtime/schema/plan.fbs > "$D/gen/plan.fbs.md5"
}

if [ "${1:-}" = --gen ]; then
  gen || exit 1
  exit 0
fi
if [ "${1:-}" = --prepare ]; then
  B=$ROOT/${2:-build-d}
  rm -rf "$D"
  prepare "$B" "$D/plans" "l8 l27" || exit 1
  gen || exit 1
  [ -d .devdeps ] || echo "note: .devdeps missing (scripts/device-cuda-plans.sh makes it)" >&2
  du -sh "$D"
  exit 0
fi

# ---- the benchmark (device, or --dry here) ------------------------------------------------------
MODELS="l8 l27" QUANTS="int4 int8" THREADS="16 8" PROMPTS="128 512" GEN=32 REPS=""
DRY=""
while [ $# -gt 0 ]; do
  case $1 in
  --model) MODELS=$2; shift ;;
  --quant) QUANTS=$2; shift ;;
  --threads) THREADS=$2; shift ;;
  --reps) REPS=$2; shift ;;
  --dry) DRY=1; [ -n "${2:-}" ] && [ "${2#--}" = "$2" ] && { DRYBUILD=$2; shift; } ;;
  *) echo "unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
[ "$MODELS" = all ] && MODELS="l8 l27"
[ "$QUANTS" = all ] && QUANTS="int4 int8"

if [ -n "$DRY" ]; then
  OUT=${OUT:-/tmp/kt-cpubench-dry}
  B=$ROOT/${DRYBUILD:-build-d}
  RT=$B/tools/kt-rt/kt-rt SYNTH=$B/tools/kt-synth/kt-synth
  CK=/tmp/kt-cpubench-dry/dsv2lite-cpu
  D=/tmp/kt-cpubench-dry/cpubench
  MODELS="l8" THREADS="2" PROMPTS="16 32" GEN=4 REPS=1
  TINY=(--set n_routed_experts=8 --set num_experts_per_tok=2 --set vocab_size=4096
    --set moe_intermediate_size=256 --set intermediate_size=1024)
  layers_of() { echo 2; }
  rm -rf "$D" "$OUT"
  mkdir -p "$OUT"
  prepare "$B" "$D/plans" "$MODELS" "${TINY[@]}" 2>&1 | tail -4 || exit 1
else
  OUT=${OUT:-/tmp/kt-cpubench-out}
  mkdir -p "$OUT" /tmp/deps
  [ -d "$D/plans" ] || { echo "no $D/plans: run $0 --prepare here and carry .cpubench" >&2; exit 1; }
  md5sum --quiet -c "$D/gen/plan.fbs.md5" ||
    { echo "$D/gen is of another plan.fbs: run $0 --gen here first" >&2; exit 1; }
  for f in .devdeps/*.deb; do dpkg -x "$f" /tmp/deps; done
  [ -e /lib/x86_64-linux-gnu/libudev.so.1 ] || [ -e /usr/lib/x86_64-linux-gnu/libudev.so.1 ] ||
    export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu
  # The 27-layer checkpoint (31 GB) and its int8 sidecar (15 GB) need the disk: drop the CUDA
  # benchmark's checkpoint (scripts/device-cuda-bench.sh regenerates it) if a warm machine has it.
  [ -d /tmp/kt-bench/dsv2lite ] && echo "removing /tmp/kt-bench/dsv2lite" && rm -rf /tmp/kt-bench/dsv2lite
  { date -u; lscpu; free -g; df -h /tmp; } > "$OUT/machine.txt" 2>&1
  SECONDS=0
  # Its own build folder: /tmp/ktc (CUDA scripts) may hold a header of an older plan schema.
  { cmake -S scripts/device -B /tmp/ktcpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DDEPS=/tmp/deps \
    -DKT_GEN="$D/gen" && ninja -C /tmp/ktcpu -j "$(nproc)" kt-rt kt-synth kt_bench_bandwidth; } \
    > "$OUT/build.txt" 2>&1 || { tail -40 "$OUT/build.txt"; exit 1; }
  echo "build: ${SECONDS} s"
  RT=/tmp/ktcpu/kt-rt SYNTH=/tmp/ktcpu/kt-synth
  TINY=()
  # Measured bandwidth beside the benchmark (kt-rt bench also reports the read bandwidth it uses).
  "$RT" probe --no-gpu -o "$OUT/probe.json" > "$OUT/probe.txt" 2>&1
  [ -x /tmp/ktcpu/bench/kt_bench_bandwidth ] &&
    /tmp/ktcpu/bench/kt_bench_bandwidth --size-mb 1024 --reps 3 > "$OUT/bandwidth.txt" 2>&1
  grep -iE "bandwidth|GB/s" "$OUT/probe.txt" | head -5
  cat "$OUT/bandwidth.txt" 2>/dev/null
fi

LOG=$OUT/bench.txt
for m in $MODELS; do
  ck=$CK-$m
  if [ -z "$DRY" ]; then
    echo "== kt-synth $m $(date -u +%T)" | tee -a "$LOG"
    SECONDS=0
    rm -rf "$ck"
    "$SYNTH" "$CONFIG" "$ck" --dtype bf16 --seed $SEED --layers "$(layers_of "$m")" \
      ${TINY[@]+"${TINY[@]}"} -q 2>&1 | tee -a "$LOG"
    echo "kt-synth: ${SECONDS} s" | tee -a "$LOG"
    # The same bytes as where the plans were compiled (kt-rt pack can only check sizes).
    if [ "$m" = l8 ] || [ -n "${VERIFY_ALL:-}" ]; then
      (cd "$ck" && md5sum -c --quiet "$D/plans/$m.md5") 2>&1 | tee -a "$LOG" ||
        echo "WARNING: $m checkpoint differs from the one compiled against" | tee -a "$LOG"
    fi
  else
    # --dry: prepare removed it; regenerate it the way the device does.
    "$SYNTH" "$CONFIG" "$ck" --dtype bf16 --seed $SEED --layers 2 "${TINY[@]}" -q
    (cd "$ck" && md5sum -c --quiet "$D/plans/$m.md5") || { echo "dry: checkpoint differs"; exit 1; }
  fi
  reps=${REPS:-$([ "$m" = l27 ] && echo 1 || echo 2)}
  for q in $QUANTS; do
    plan=$D/plans/dsv2lite-$m.$q.ktplan
    echo "== pack $m $q $(date -u +%T)" | tee -a "$LOG"
    rm -f "$plan.weights"
    "$RT" pack "$plan" --threads "${THREADS%% *}" > "$OUT/pack-$m-$q.txt" 2>&1
    rc=$?
    tail -1 "$OUT/pack-$m-$q.txt" | tee -a "$LOG"
    [ $rc -eq 0 ] || continue
    if [ -n "$DRY" ]; then
      # The rebuilt sidecar must be the one kt-compile writes itself (same plan name, own folder).
      mkdir -p "$D/ref"
      "$B/tools/kt-compile/kt-compile" "$ck" -o "$D/ref/${plan##*/}" --cpu-quant "$q" 2> /dev/null &&
        cmp "$D/ref/${plan##*/}.weights" "$plan.weights" && cmp "$D/ref/${plan##*/}" "$plan" &&
        echo "dry: plan and rebuilt sidecar identical to kt-compile's" | tee -a "$LOG" ||
        { echo "dry: rebuilt sidecar differs from kt-compile's" | tee -a "$LOG"; exit 1; }
    fi
    for t in $THREADS; do
      for p in $PROMPTS; do
        name=$m-$q-p$p-t$t
        echo "== bench $name $(date -u +%T)" | tee -a "$LOG"
        timeout 240 "$RT" bench "$plan" --prompt-len "$p" --gen-len $GEN --threads "$t" \
          --reps "$reps" --json > "$OUT/$name.json" 2> "$OUT/$name.err"
        echo "rc=$? $(cat "$OUT/$name.json")" | tee -a "$LOG"
      done
    done
    rm -f "$plan.weights" # the next quantization needs the disk
  done
  rm -rf "$ck"
done
echo "== done $(date -u +%T)" | tee -a "$LOG"
