#!/bin/bash
# Session 11, device call 2 (HEAD): build, kt-rt probe, DeepSeek-V2-Lite cpu-int8 (P=512),
# 8 GiB hybrid and all-GPU bf16 / int8 (P=512, 2048), best of 2, a second probe, all-GPU bf16
# at P=512 with --profile (best of 2), then the hybrid/split parity tests (staged moves forced
# and default) on the trimmed .cudaparity.
set -u
. "$(dirname "$0")/common.sh"
probe probe-a
mkdir -p $OUT/m $OUT/p
OUT=$OUT/m VARIANTS="cpu-int8 hybrid8g gpu-bf16-all gpu-int8-all" NO_EAGER=1 REPS=2 KEEP_CHECKPOINT=1 \
  timeout $((400 - SECONDS)) bash scripts/device-hybrid-bench.sh --model dsv2 > $OUT/hybench-stdout.txt 2>&1
echo "dsv2 rc=$? ${SECONDS}s"
probe probe-b
grep -E "^== |^rc=" $OUT/m/hybench.txt | cut -c1-700
OUT=$OUT/p VARIANTS="gpu-bf16-all" NO_EAGER=1 NO_P2048=1 REPS=2 REUSE=1 PROFILE=1 \
  timeout $((470 - SECONDS)) bash scripts/device-hybrid-bench.sh --model dsv2 > $OUT/profile-stdout.txt 2>&1
echo "profile rc=$? ${SECONDS}s"
rm -rf /tmp/kt-bench/hy-dsv2
tar czf $OUT/m.tgz -C $OUT m p && rm -rf $OUT/m $OUT/p
# parity: the plans name /work/main/.cudaparity
R=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p /work/main && [ "$R" = /work/main ] || ln -sfn "$R/.cudaparity" /work/main/.cudaparity
ninja -C /tmp/ktc -j16 kt_cuda_plan_test > $OUT/build-parity.txt 2>&1 || { tail -30 $OUT/build-parity.txt; exit 1; }
echo "parity build ${SECONDS}s"
F='*/llama_gpu:*/llama_hybrid:*/llama_hybridq:*/llama_split:*/llama_splitq:*/deepseek_v2_gpu:*/deepseek_v2_hybrid:*/deepseek_v2_hybridq:*/deepseek_v2_split:*/deepseek_v2_splitq:*/qwen3_moe_gpu:*/qwen3_moe_hybrid:*/qwen3_moe_hybridq:*/qwen3_moe_split:*/qwen3_moe_splitq'
for stage in 0 default; do
  if [ $stage = 0 ]; then export KT_CUDA_STAGED_MOVE_BYTES=0; else unset KT_CUDA_STAGED_MOVE_BYTES; fi
  KT_CUDA_PLANS="$R/.cudaparity/plans" KT_CUDA_FIXTURES="$R/.cudaparity" \
    timeout 90 /tmp/ktc/kt_cuda_plan_test --gtest_filter="$F" > $OUT/parity-$stage.txt 2>&1
  echo "stage=$stage rc=$? ${SECONDS}s"
  grep -E "^\[  (PASSED|FAILED) |^\[  FAILED|Failure|tests ran" $OUT/parity-$stage.txt | head -20
done
echo "total ${SECONDS}s"; cd $OUT && tar czf all.tgz --remove-files $(ls | grep -v "^all.tgz$")
