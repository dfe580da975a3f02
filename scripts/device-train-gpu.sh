#!/usr/bin/env bash
# Issue #8 on the device machine (H100 + 16-core Xeon): LoRA training with the GPU-placed steps on
# the GPU and the MoE steps (router, shared and routed experts) on the CPU (runtime/train/cuda,
# kernels/cuda/grad; docs/training.md "Training on a GPU"). Builds nothing: run it from a configured
# and built build dir (ninja kt_cuda_train_grad_test kt_train_peft_gpu_test kt-compile kt-rt
# kt-synth).
#
#   OUT=/some/dir scripts/device-train-gpu.sh [BUILD_DIR=build-dev] [TEXT_FILE]
#
# 1. tests: kt_cuda_train_grad_test (every GPU training kernel against kernels/cpu/grad on odd
#    shapes) and kt_train_peft_gpu_test (the six PEFT fixtures with the hybrid placement: losses,
#    step-0 gradients, the 5-step adapter, final logits); logs in $OUT/tests-*.log.
# 2. benchmark: kt-synth DeepSeek-V2-Lite (real shapes, bf16; LAYERS=8 by default, ~9.5 GB, as
#    docs/benchmarks.md "LoRA training"; LAYERS=27 is the whole model, ~31 GB, and takes longer than
#    one 10-minute device call with the tests: run it alone with TESTS=0. The device has 64 GB of
#    disk, so the hybrid plan's packed sidecar is deleted before the CPU plan is compiled and
#    everything is deleted at the end), kt-compile --cpu-quant int8 --train lora (the targets of
#    docs/benchmarks.md "LoRA training") once with the hybrid placement (every step on gpu:0, the
#    routed experts on cpu:numa0) and once for the CPU only; kt-rt train --steps $STEPS --batch 1
#    --max-seq-len 256 --threads 16 on each, under /usr/bin/time -v. $OUT/train-bench.txt: tokens/s,
#    peak GPU memory (kt-rt's own accounting, from --log-json), peak host RSS, checkpoint and plan
#    sizes. Data: rows of TEXT_FILE when given and the plan has a tokenizer, else deterministic
#    random ids (kt-synth checkpoints have no tokenizer).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
B=${1:-build-dev}
[[ "$B" = /* ]] || B=$ROOT/$B
TEXT=${2:-}
OUT=${OUT:-/tmp/kt-train-gpu-out}
LAYERS=${LAYERS:-8}
TESTS=${TESTS:-1}
BUDGET_S=${BUDGET_S:-540} # the CPU-only comparison is skipped when the run is past this
START=$(date +%s)
STEPS=${STEPS:-4}
THREADS=${THREADS:-16}
W=/tmp/kt-train-gpu # checkpoint, plans, data (deleted at the end)
# /usr/bin/time -v for peak RSS and wall time where the image has it (kt-rt train prints its own
# peak RSS too).
TIMEV=()
[ -x /usr/bin/time ] && TIMEV=(/usr/bin/time -v)
mkdir -p "$OUT"
SUM=$OUT/train-bench.txt
: > "$SUM"
note() { echo "$*" | tee -a "$SUM"; }
cleanup() { rm -rf "$W"; }
trap cleanup EXIT

note "== device-train-gpu $(date -u +%FT%TZ) build $B"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$SUM"
nproc | sed 's/^/cpus: /' | tee -a "$SUM"

# ---- 1. tests -----------------------------------------------------------------------------------
[ "$TESTS" = 1 ] || note "tests skipped (TESTS=$TESTS)"
for t in test/unit/cuda/kt_cuda_train_grad_test test/unit/train/kt_train_peft_gpu_test; do
  [ "$TESTS" = 1 ] || break
  name=$(basename "$t")
  if [ ! -x "$B/$t" ]; then
    note "MISSING $B/$t (build it first)"
    continue
  fi
  timeout 300 "$B/$t" > "$OUT/tests-$name.log" 2>&1
  rc=$?
  note "test $name: rc=$rc: $(grep -E '^\[  (PASSED|FAILED|SKIPPED) +\] [0-9]+ tests?[,.]' "$OUT/tests-$name.log" | tr '\n' ' ')"
  grep -E '^\[ [a-z_0-9]+ \]|FAILED|Failure' "$OUT/tests-$name.log" | head -60 >> "$SUM"
done

# ---- 2. benchmark -------------------------------------------------------------------------------
KTC=$B/tools/kt-compile/kt-compile
KTRT=$B/tools/kt-rt/kt-rt
SYNTH=$B/tools/kt-synth/kt-synth
for x in "$KTC" "$KTRT" "$SYNTH"; do
  [ -x "$x" ] || { note "MISSING $x: no benchmark"; exit 1; }
done
rm -rf "$W"
mkdir -p "$W"
CK=$W/dsv2
note "== kt-synth DeepSeek-V2-Lite, $LAYERS layers, bf16 $(date -u +%T)"
${TIMEV[@]+"${TIMEV[@]}"} "$SYNTH" examples/configs/deepseek-v2-lite.json "$CK" --dtype bf16 --seed 0 \
  --layers "$LAYERS" -q > "$OUT/synth.log" 2>&1 || { note "kt-synth failed"; tail "$OUT/synth.log"; exit 1; }
note "checkpoint: $(du -sb "$CK" | cut -f1) bytes ($(du -sh "$CK" | cut -f1))"

# Data: 64 rows of 256 tokens.
DATA=$W/data.jsonl
awk -v seed=1 'BEGIN { srand(seed); for (r = 0; r < 64; ++r) { s = "{\"ids\": ["; for (t = 0; t < 256; ++t) s = s (t ? ", " : "") int(1 + rand() * 100000); print s "]}" } }' > "$DATA"

TRAIN_FLAGS=(--train lora --lora-r 8 --lora-alpha 16
  --lora-targets q_proj,kv_a_proj_with_mqa,kv_b_proj,o_proj
  --lora-target-parameters gate_up_proj,down_proj --cpu-quant int8)
HYBRID=(--hw examples/hw/device-h100-xeon-measured.json --gpu-mem unlimited
  --placement-override '.=gpu:0' --placement-override '\.experts=cpu:numa0')

bench() { # name, then kt-compile placement flags
  local name=$1
  shift
  local plan=$W/$name.ktplan
  note "== $name: kt-compile $(date -u +%T)"
  ${TIMEV[@]+"${TIMEV[@]}"} "$KTC" "$CK" -o "$plan" "${TRAIN_FLAGS[@]}" "$@" > "$OUT/compile-$name.log" 2>&1 ||
    { note "kt-compile $name failed"; grep -v -E '^\s' "$OUT/compile-$name.log" | tail -3 | tee -a "$SUM"; return 1; }
  note "plan $name: $(du -cb "$plan"* | tail -1 | cut -f1) bytes (plan + sidecar)"
  if [ -n "$TEXT" ] && [ -f "$TEXT" ] && "$KTRT" inspect "$plan" 2>/dev/null | grep -E '^tokenizer' | grep -vq ' none'; then
    awk 'length($0) > 200 { gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); print "{\"text\": \"" $0 "\"}" }' \
      "$TEXT" | head -64 > "$W/text.jsonl"
    DATA=$W/text.jsonl
  fi
  note "== $name: kt-rt train $(date -u +%T)"
  ${TIMEV[@]+"${TIMEV[@]}"} timeout 300 "$KTRT" train "$plan" --data "$DATA" --out "$W/adapter-$name" \
    --steps "$STEPS" --batch 1 --max-seq-len 256 --threads "$THREADS" --profile \
    --log-json "$OUT/train-$name.jsonl" > "$OUT/train-$name.log" 2>&1
  local rc=$?
  note "kt-rt train $name: rc=$rc"
  [ $rc = 0 ] || grep -v -E '^\s' "$OUT/train-$name.log" | tail -3 | tee -a "$SUM"
  grep -E '^\[train\] (steps run|done|GPU)' "$OUT/train-$name.log" | tee -a "$SUM"
  grep -E 'Maximum resident|Elapsed \(wall' "$OUT/train-$name.log" | sed 's/^\s*/  /' | tee -a "$SUM"
  tail -1 "$OUT/train-$name.jsonl" 2>/dev/null | sed 's/^/  last step: /' | tee -a "$SUM"
  rm -rf "$plan"* "$W/adapter-$name"
  return $rc
}

bench hybrid "${HYBRID[@]}"
if [ $(($(date +%s) - START)) -lt "$BUDGET_S" ]; then
  bench cpu
else
  note "cpu-only comparison skipped: $(($(date +%s) - START)) s spent (BUDGET_S=$BUDGET_S)"
fi
note "== done $(date -u +%T)"
