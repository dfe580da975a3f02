#!/usr/bin/env bash
# Issue #7's benchmark on the device machine (H100 + 16-core Xeon with AMX): kt-synth real-shape
# models — DeepSeek-V2-Lite (27 layers, 31.4 GB bf16) and Qwen3-30B-A3B (all 48 layers, 61.1 GB
# bf16: its checkpoint goes to /dev/shm when the disk cannot hold it beside a packed sidecar) — as
#   gpu-bf16   everything on the GPU, bf16 (cost model with --gpu-mem unlimited)
#   gpu-int8   everything on the GPU, weight-only int8 (--gpu-quant int8)
#   hybrid8g   --gpu-mem 8GiB: the cost model keeps attention, dense and shared parts and the
#              experts that fit on the GPU (bf16); the rest of the routed experts run on the CPU,
#              packed int8 (AMX) — the configuration the project exists for
#   hybrid8g-offload  hybrid8g compiled with --prefill-offload auto: prefills longer than each
#              layer's threshold stream the CPU's experts to the GPU (docs/cuda.md, "Streaming
#              CPU-held experts"); compare its p2048 prefill tok/s with hybrid8g's
#   cpu-int8   everything on the CPU, packed int8 (the comparison)
#   gpu-int4-all  everything forced onto the GPU, weight-only int4 (--gpu-quant int4: an f16
#              scale per row and 128 columns), as gpu-int8-all
#   gpu-bf16-all, gpu-int8-all  as gpu-bf16 / gpu-int8 with every unit forced onto the GPU
#              (--placement-override '.*=gpu:0'): the cost model may keep the embedding or a
#              layer's attention on the CPU, and one host step turns CUDA graphs off for the
#              whole decode; these also run once with KT_CUDA_GRAPHS=0 (eager launches)
# each at prompt 512 and 2048, reporting prefill and decode tok/s, GPU memory, and for hybrid plans
# the GPU's idle time per decoded token (kt-rt bench --json: gpu_idle_ms_per_token). Predictions
# of the cost model come from the same compile (--explain-json, PLAN.explain.json).
#
#   scripts/device-hybrid-bench.sh --prepare [KT_BUILD]   here: .hybench/ (plans compiled with
#       --pack-later against `kt-synth --layout-only` checkpoints in /tmp/kt-bench: the real
#       headers, names and file sizes with the data left as holes, so no disk is needed here)
#       Carry [".hybench", ".cudaparity", ".devdeps"] (.cudaparity/gen: the flatc header).
#   [VARIANTS="gpu-bf16 ..."] scripts/device-hybrid-bench.sh [--model dsv2|qwen3|all]   device, after
#       scripts/device-cuda-parity.sh configured /tmp/ktc: kt-synth, kt-rt pack of the
#       CPU-quantized plans, kt-rt bench; logs and JSON under $OUT. Environment:
#       KEEP_CHECKPOINT=1 keep the checkpoint for a later call; REUSE=1 use a complete one that is
#       there (its config.json is written last); PROFILE=1 add --profile (per-op table in the .err
#       files; PROFILE=layers: --profile-layers, each decoder layer apart); THREADS=N the CPU pool's
#       threads for the hybrid and CPU plans (default 16); NO_EAGER=1 skip the KT_CUDA_GRAPHS=0
#       runs; NO_P2048=1 skip prompts of 2048; REPS=N repetitions per run (best of N; default 2 at 512 tokens, 1 at 2048); SPIN_US=N the
#       hybrid plans also run at 512 tokens with KT_POOL_SPIN_US=N (the CPU pool's workers poll N us
#       before sleeping), as NAME-spinN.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
D=$ROOT/.hybench
HW=examples/hw/device-h100-xeon-measured.json
CK=/tmp/kt-bench/hy # checkpoints $CK-dsv2, $CK-qwen3 (same absolute path on both machines)

config_of() { [ "$1" = dsv2 ] && echo examples/configs/deepseek-v2-lite.json ||
  echo examples/configs/qwen3-30b-a3b.json; }
layers_of() { [ "$1" = dsv2 ] && echo 27 || echo 48; }

if [ "${1:-}" = --prepare ]; then
  B=$ROOT/${2:-build}
  KTC=$B/tools/kt-compile/kt-compile
  rm -rf "$D"
  mkdir -p "$D"
  for m in dsv2 qwen3; do
    ck=$CK-$m
    rm -rf "$ck"
    echo "== kt-synth --layout-only $m $(date -u +%T)"
    "$B/tools/kt-synth/kt-synth" "$(config_of $m)" "$ck" --dtype bf16 --seed 0 \
      --layers "$(layers_of $m)" --layout-only -q || exit 1
    cm=(--hw "$HW" --cpu-mem 100GiB --prompt-len 512 --prefill-offload never)
    "$KTC" "$ck" -o "$D/$m.gpu-bf16.ktplan" "${cm[@]}" --gpu-mem unlimited --dtype bf16 \
      --explain-json "$D/$m.gpu-bf16.explain.json" || exit 1
    "$KTC" "$ck" -o "$D/$m.gpu-int8.ktplan" "${cm[@]}" --gpu-mem unlimited --gpu-quant int8 \
      --explain-json "$D/$m.gpu-int8.explain.json" || exit 1
    "$KTC" "$ck" -o "$D/$m.hybrid8g.ktplan" "${cm[@]}" --gpu-mem 8GiB --dtype bf16 \
      --cpu-quant int8 --pack-later --explain-json "$D/$m.hybrid8g.explain.json" || exit 1
    "$KTC" "$ck" -o "$D/$m.hybrid8g-offload.ktplan" "${cm[@]}" --gpu-mem 8GiB --dtype bf16 \
      --cpu-quant int8 --pack-later --prefill-offload auto --prompt-len 2048 \
      --explain-json "$D/$m.hybrid8g-offload.explain.json" || exit 1
    "$KTC" "$ck" -o "$D/$m.cpu-int8.ktplan" "${cm[@]}" --gpu-mem 0 --cpu-quant int8 \
      --pack-later --explain-json "$D/$m.cpu-int8.explain.json" || exit 1
    "$KTC" "$ck" -o "$D/$m.gpu-bf16-all.ktplan" "${cm[@]}" --gpu-mem unlimited --dtype bf16 \
      --placement-override '.*=gpu:0' --explain-json "$D/$m.gpu-bf16-all.explain.json" || exit 1
    "$KTC" "$ck" -o "$D/$m.gpu-int8-all.ktplan" "${cm[@]}" --gpu-mem unlimited --gpu-quant int8 \
      --placement-override '.*=gpu:0' --explain-json "$D/$m.gpu-int8-all.explain.json" || exit 1
    "$KTC" "$ck" -o "$D/$m.gpu-int4-all.ktplan" "${cm[@]}" --gpu-mem unlimited --gpu-quant int4 \
      --placement-override '.*=gpu:0' --explain-json "$D/$m.gpu-int4-all.explain.json" || exit 1
    rm -rf "$ck"
  done
  du -sh "$D"
  exit 0
fi

MODELS="dsv2 qwen3"
[ "${1:-}" = --model ] && { MODELS=$2; [ "$MODELS" = all ] && MODELS="dsv2 qwen3"; }
OUT=${OUT:-/tmp/kt-hybench-out}
mkdir -p "$OUT"
[ -d "$D" ] || { echo "no $D: run $0 --prepare here and carry .hybench" >&2; exit 1; }
[ -f /tmp/ktc/build.ninja ] || { echo "configure /tmp/ktc first (scripts/device-cuda-parity.sh)" >&2; exit 1; }
[ -e /lib/x86_64-linux-gnu/libudev.so.1 ] || [ -e /usr/lib/x86_64-linux-gnu/libudev.so.1 ] ||
  export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu
RT=/tmp/ktc/kt-rt
ninja -C /tmp/ktc -j "$(nproc)" kt-rt kt-synth > "$OUT/build.txt" 2>&1 || { tail -20 "$OUT/build.txt"; exit 1; }
LOG=$OUT/hybench.txt
bench() { # NAME PLAN ARGS...
  local name=$1 plan=$2
  shift 2
  echo "== $name $(date -u +%T): kt-rt bench ${plan##*/} $*" | tee -a "$LOG"
  timeout 240 "$RT" bench "$plan" --json "$@" > "$OUT/$name.json" 2> "$OUT/$name.err"
  echo "rc=$? $(cat "$OUT/$name.json")" | tee -a "$LOG"
  grep -E "uploaded|warning" "$OUT/$name.err" | tail -2 | tee -a "$LOG"
}
for m in $MODELS; do
  ck=$CK-$m
  synth=(/tmp/ktc/kt-synth "$(config_of $m)" "$ck" --dtype bf16 --seed 0 --layers "$(layers_of $m)")
  if [ -n "${REUSE:-}" ] && [ -f "$ck/config.json" ]; then
    echo "== reusing the checkpoint in $ck" | tee -a "$LOG"
  else
    echo "== kt-synth $m $(date -u +%T)" | tee -a "$LOG"
    SECONDS=0
    rm -rf "$ck" "/dev/shm/${ck##*/}"
    mkdir -p "${ck%/*}"
    # Leave the disk to the packed sidecars (up to half the checkpoint) when both do not fit.
    need=$("${synth[@]}" --dry-run | awk '/^file_bytes:/ {print $2}')
    avail=$(($(df --output=avail -B1 "${ck%/*}" 2>/dev/null | tail -1)))
    shm=$(($(df --output=avail -B1 /dev/shm 2>/dev/null | tail -1)))
    if [ $((need + need / 2)) -gt "$avail" ] && [ "$need" -lt "$shm" ]; then
      mkdir -p "/dev/shm/${ck##*/}" && ln -sfn "/dev/shm/${ck##*/}" "$ck"
      echo "checkpoint in /dev/shm (${need} bytes; disk free ${avail})" | tee -a "$LOG"
    fi
    "${synth[@]}" -q 2>&1 | tail -1 | tee -a "$LOG"
    echo "kt-synth: ${SECONDS} s" | tee -a "$LOG"
  fi
  for v in ${VARIANTS:-gpu-bf16 gpu-int8 gpu-bf16-all gpu-int8-all gpu-int4-all hybrid8g hybrid8g-offload cpu-int8}; do
    plan=$D/$m.$v.ktplan
    # Plans with CPU-held packed weights (the cost model may keep e.g. the embedding on the CPU
    # even with unlimited GPU memory): rebuild their sidecar from the checkpoint first.
    if "$RT" inspect "$plan" 2>/dev/null | grep -q "${plan##*/}.weights"; then
      echo "== pack $m $v $(date -u +%T)" | tee -a "$LOG"
      "$RT" pack "$plan" --threads "$(nproc)" --force > "$OUT/pack-$m-$v.txt" 2>&1 || {
        tail -3 "$OUT/pack-$m-$v.txt" | tee -a "$LOG"
        continue
      }
      tail -1 "$OUT/pack-$m-$v.txt" | tee -a "$LOG"
    fi
    threads=()
    [[ "$v" == hybrid8g* ]] || [ "$v" = cpu-int8 ] && threads=(--threads "${THREADS:-16}")
    [ -n "${PROFILE:-}" ] && threads+=(--profile)
    [ "${PROFILE:-}" = layers ] && threads[-1]=--profile-layers
    bench "$m-$v-p512" "$plan" --prompt-len 512 --gen-len 32 --reps "${REPS:-2}" "${threads[@]}"
    [[ "$v" == hybrid8g* ]] && [ -n "${SPIN_US:-}" ] && KT_POOL_SPIN_US=$SPIN_US \
      bench "$m-$v-spin$SPIN_US-p512" "$plan" --prompt-len 512 --gen-len 32 --reps "${REPS:-2}" "${threads[@]}"
    [[ "$v" == *-all ]] && [ -z "${NO_EAGER:-}" ] && KT_CUDA_GRAPHS=0 \
      bench "$m-$v-eager-p512" "$plan" --prompt-len 512 --gen-len 32 --reps 2 "${threads[@]}"
    [ "$v" = cpu-int8 ] || [ -n "${NO_P2048:-}" ] ||
      bench "$m-$v-p2048" "$plan" --prompt-len 2048 --gen-len 16 --reps "${REPS:-1}" "${threads[@]}"
    rm -f "$plan.weights" # the next plan's sidecar needs the disk
  done
  # KEEP_CHECKPOINT=1: the caller runs more and removes it
  [ -n "${KEEP_CHECKPOINT:-}" ] || rm -rf "$ck" "/dev/shm/${ck##*/}"
done
echo "== done $(date -u +%T)" | tee -a "$LOG"
