#!/usr/bin/env bash
# Issue #8 on the device machine (H100 + 16-core Xeon): LoRA training with the GPU-placed steps on
# the GPU and the MoE steps (router, shared and routed experts) on the CPU (runtime/train/cuda,
# kernels/cuda/grad; docs/training.md "Training on a GPU"). The device has no compiler build (no
# MLIR there), so every plan is compiled here first:
#
#   scripts/device-train-gpu.sh --prepare [BUILD=build]     here:
#     - .cudaparity/trainplans/ARCH.ktplan: the six PEFT fixtures' train plans with the hybrid
#       placement (every step on gpu:0, the routed experts on cpu:numa0), and .cudaparity/hf/ARCH/
#       lora (run scripts/device-cuda-plans.sh first: it makes .cudaparity);
#     - .trainbench/: the benchmark's plans for a kt-synth DeepSeek-V2-Lite (27 layers, bf16, seed
#       0 at /tmp/kt-bench/hy-dsv2, the checkpoint of scripts/device-hybrid-bench.sh; synthesized
#       here if missing, 31 GB), int8 base (--cpu-quant int8 --pack-later: the device rebuilds the
#       sidecars with kt-rt pack), once hybrid and once CPU-only, plus 8 rows of 256 random ids.
#   OUT=/some/dir scripts/device-train-gpu.sh [BUILD=/tmp/ktc] [--no-bench | --bench [hybrid|cpu]]
#     device:
#     1. kt_cuda_train_grad_test (every GPU training kernel against kernels/cpu/grad on odd shapes)
#        and kt_train_peft_gpu_test (the PEFT fixtures through the hybrid plans: losses, step-0
#        gradients, the 5-step adapter, final logits; a stand-in kt-compile hands the test the
#        plans compiled here), logs in $OUT/tests-*.log;
#     2. kt-synth the checkpoint, kt-rt pack and kt-rt train --steps 4 --batch 1 --max-seq-len 256
#        --threads 16 of the hybrid plan, then of the CPU-only plan: tokens/s, peak GPU memory
#        (kt-rt's accounting, in --log-json), peak host RSS (/usr/bin/time -v) into
#        $OUT/train-bench.txt. The checkpoint and sidecars are deleted at the end (64 GB disk).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
D=$ROOT/.cudaparity
TB=$ROOT/.trainbench
CK=/tmp/kt-bench/hy-dsv2 # same absolute path on both machines
FIXTURES="llama mixtral qwen3_moe deepseek_v2 deepseek_v2_yarn deepseek_v3"
# A binary of a full build (tools/NAME/NAME) or of the reduced scripts/device build (top level).
bin() { for f in "$1/$2/$3" "$1/$3"; do [ -x "$f" ] && { echo "$f"; return 0; }; done; return 1; }

if [ "${1:-}" = --prepare ]; then
  B=${2:-build}
  [[ "$B" = /* ]] || B=$ROOT/$B
  KTC=$(bin "$B" tools/kt-compile kt-compile) && SYNTH=$(bin "$B" tools/kt-synth kt-synth) ||
    { echo "$B lacks kt-compile or kt-synth" >&2; exit 1; }
  [ -d "$D/hf" ] || { echo "no $D/hf: run scripts/device-cuda-plans.sh first" >&2; exit 1; }
  mkdir -p "$D/trainplans"
  for m in $FIXTURES; do
    [ -d "$D/hf/$m" ] || continue
    rm -rf "$D/hf/$m/lora"
    cp -r "${KT_FIXTURES:-/work/shared/fixtures}/hf/$m/lora" "$D/hf/$m/lora"
    # The test compiles "DIR -o PLAN --train lora --lora-config DIR/lora/adapter_init/..." plus the
    # hybrid placement (test/unit/train/peft_acceptance_test.cpp, KT_TRAIN_PEFT_GPU).
    "$KTC" "$D/hf/$m" -o "$D/trainplans/$m.ktplan" --train lora \
      --lora-config "$D/hf/$m/lora/adapter_init/adapter_config.json" \
      --hw examples/hw/xeon-2s-rtx4090.json --placement-override '.=gpu:0' \
      --placement-override '\.experts=cpu:numa0' > /dev/null || exit 1
  done
  mkdir -p "$TB"
  if [ ! -d "$CK" ]; then
    "$SYNTH" examples/configs/deepseek-v2-lite.json "$CK" --dtype bf16 --seed 0 --layers 27 -q ||
      exit 1
  fi
  T=(--train lora --lora-r 8 --lora-alpha 16 --lora-targets q_proj,kv_a_proj_with_mqa,kv_b_proj,o_proj
    --lora-target-parameters gate_up_proj,down_proj --cpu-quant int8 --pack-later)
  "$KTC" "$CK" -o "$TB/dsv2.train-hybrid.ktplan" "${T[@]}" \
    --hw examples/hw/device-h100-xeon-measured.json --cpu-mem 100GiB \
    --placement-override '.=gpu:0' --placement-override '\.experts=cpu:numa0' || exit 1
  "$KTC" "$CK" -o "$TB/dsv2.train-cpu.ktplan" "${T[@]}" || exit 1
  /usr/bin/python3 -c "
import json, random
random.seed(1)
with open('$TB/ids.jsonl', 'w') as f:
    for _ in range(8):
        f.write(json.dumps({'ids': [random.randrange(102400) for _ in range(256)]}) + '\n')"
  du -sh "$D/trainplans" "$TB"
  exit 0
fi

B=${1:-/tmp/ktc}
[[ "$B" = /* ]] || B=$ROOT/$B
# --no-bench: the tests only; --bench [hybrid|cpu]: that benchmark only (a call each fits 10 min).
TESTS=1 BENCHES="hybrid cpu"
[ "${2:-}" = --no-bench ] && BENCHES=""
[ "${2:-}" = --bench ] && TESTS=0 BENCHES=${3:-hybrid cpu}
OUT=${OUT:-/tmp/kt-train-gpu-out}
mkdir -p "$OUT"
SUM=$OUT/train-bench.txt
: > "$SUM"
note() { echo "$*" | tee -a "$SUM"; }
TIMEV=()
[ -x /usr/bin/time ] && TIMEV=(/usr/bin/time -v)
# The plans name their weights under /work/main/.cudaparity (where they were compiled).
if [ "$(realpath "$ROOT")" != /work/main ]; then
  mkdir -p /work/main && ln -sfn "$D" /work/main/.cudaparity
fi
note "== device-train-gpu $(date -u +%FT%TZ) build $B"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$SUM"

# ---- 1. tests -----------------------------------------------------------------------------------
KTRT=$(bin "$B" tools/kt-rt kt-rt) || { note "no kt-rt in $B"; exit 1; }
if ! bin "$B" tools/kt-compile kt-compile > /dev/null; then
  # Where the test calls the compiler (KT_BINARY_DIR/tools/...): a stand-in that copies the plan
  # compiled here for the fixture directory it is given; kt-rt where the test expects it.
  mkdir -p "$B/tools/kt-compile" "$B/tools/kt-rt"
  cat > "$B/tools/kt-compile/kt-compile" << EOF
#!/bin/bash
# Stand-in (scripts/device-train-gpu.sh): kt-compile FIXTURE_DIR -o PLAN ... -> the plan made ahead.
out=""; prev=""
for a in "\$@"; do [ "\$prev" = -o ] && out=\$a; prev=\$a; done
exec cp "$D/trainplans/\$(basename "\$1").ktplan" "\$out"
EOF
  chmod +x "$B/tools/kt-compile/kt-compile"
  [ -x "$B/tools/kt-rt/kt-rt" ] || ln -sfn "$KTRT" "$B/tools/kt-rt/kt-rt"
fi
# The merge test needs a real compiler (--adapter); the rest is the GPU's.
FILTER='*PeftTraining.*:TrainFiniteDifferences.*:TrainAccumulation.*:TrainResume.*'
for t in kt_cuda_train_grad_test kt_train_peft_gpu_test; do
  [ "$TESTS" = 1 ] || break
  exe=$(bin "$B" test/unit/cuda "$t" || bin "$B" test/unit/train "$t") ||
    { note "MISSING $t in $B"; continue; }
  f='*'
  [ "$t" = kt_train_peft_gpu_test ] && f=$FILTER
  timeout 300 "$exe" --gtest_filter="$f" > "$OUT/tests-$t.log" 2>&1
  note "test $t: rc=$? $(grep -E '^\[  (PASSED|FAILED|SKIPPED) +\] [0-9]+ tests?' "$OUT/tests-$t.log" | tr '\n' ' ')"
  grep -E 'FAILED|Failure' "$OUT/tests-$t.log" | head -30 >> "$SUM"
done
[ -n "$BENCHES" ] || exit 0

# ---- 2. benchmark -------------------------------------------------------------------------------
SYNTH=$(bin "$B" tools/kt-synth kt-synth) || { note "no kt-synth in $B"; exit 1; }
[ -d "$TB" ] || { note "no $TB: run $0 --prepare here and carry .trainbench"; exit 1; }
if [ ! -d "$CK" ]; then
  note "== kt-synth DeepSeek-V2-Lite, 27 layers $(date -u +%T)"
  "$SYNTH" examples/configs/deepseek-v2-lite.json "$CK" --dtype bf16 --seed 0 --layers 27 -q 2>&1 |
    tail -1 | tee -a "$SUM"
fi
for name in $BENCHES; do
  plan=$TB/dsv2.train-$name.ktplan
  note "== $name: kt-rt pack $(date -u +%T)"
  "$KTRT" pack "$plan" --threads "$(nproc)" --force > "$OUT/pack-$name.txt" 2>&1 ||
    { tail -3 "$OUT/pack-$name.txt" | tee -a "$SUM"; continue; }
  tail -1 "$OUT/pack-$name.txt" | tee -a "$SUM"
  note "== $name: kt-rt train $(date -u +%T)"
  ${TIMEV[@]+"${TIMEV[@]}"} timeout 300 "$KTRT" train "$plan" --data "$TB/ids.jsonl" \
    --out "/tmp/kt-train-adapter-$name" --steps 4 --batch 1 --max-seq-len 256 --threads 16 \
    --profile --log-json "$OUT/train-$name.jsonl" > "$OUT/train-$name.log" 2>&1
  note "kt-rt train $name: rc=$?"
  grep -E '^\[train\]' "$OUT/train-$name.log" | tail -8 | tee -a "$SUM"
  grep -E 'Maximum resident|Elapsed \(wall' "$OUT/train-$name.log" | sed 's/^\s*/  /' | tee -a "$SUM"
  tail -1 "$OUT/train-$name.jsonl" 2>/dev/null | cut -c1-400 | sed 's/^/  last step: /' | tee -a "$SUM"
  rm -rf "$plan.weights" "/tmp/kt-train-adapter-$name"
done
[ -n "${KEEP_CHECKPOINT:-}" ] || rm -rf "$CK"
note "== done $(date -u +%T)"
