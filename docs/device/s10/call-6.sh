#!/bin/bash
# Session 10, device call 6: the hybrid/split whole-plan parity tests with every activation move
# through the pinned staging (KT_CUDA_STAGED_MOVE_BYTES=0), then with the default threshold.
set -u
R=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p /tmp/deps /work/main && ln -sfn "$R/.cudaparity" /work/main/.cudaparity 2>/dev/null
for f in "$R"/.devdeps/*.deb; do dpkg -x "$f" /tmp/deps; done
cd "$R"
[ -e /lib/x86_64-linux-gnu/libudev.so.1 ] || [ -e /usr/lib/x86_64-linux-gnu/libudev.so.1 ] ||
  export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu
SECONDS=0
cmake -S scripts/device -B /tmp/ktc -G Ninja -DCMAKE_BUILD_TYPE=Release -DDEPS=/tmp/deps \
  -DKT_GEN="$R/.cudaparity/gen" > $OUT/build.txt 2>&1 &&
  ninja -C /tmp/ktc -j16 kt_cuda_plan_test >> $OUT/build.txt 2>&1 || { tail -40 $OUT/build.txt; exit 1; }
echo "build ${SECONDS}s"
F='*/llama_gpu:*/llama_hybrid:*/llama_hybridq:*/llama_split:*/llama_splitq:*/deepseek_v2_gpu:*/deepseek_v2_hybrid:*/deepseek_v2_hybridq:*/deepseek_v2_split:*/deepseek_v2_splitq:*/qwen3_moe_gpu:*/qwen3_moe_hybrid:*/qwen3_moe_hybridq:*/qwen3_moe_split:*/qwen3_moe_splitq'
for stage in 0 default; do
  if [ $stage = 0 ]; then export KT_CUDA_STAGED_MOVE_BYTES=0; else unset KT_CUDA_STAGED_MOVE_BYTES; fi
  KT_CUDA_PLANS="$R/.cudaparity/plans" KT_CUDA_FIXTURES="$R/.cudaparity" \
    timeout 150 /tmp/ktc/kt_cuda_plan_test --gtest_filter="$F" > $OUT/parity-$stage.txt 2>&1
  echo "stage=$stage rc=$? ${SECONDS}s"
  grep -E "^\[  (PASSED|FAILED) |^\[  FAILED|Failure|tests ran" $OUT/parity-$stage.txt | head -20
done
echo "total ${SECONDS}s"
