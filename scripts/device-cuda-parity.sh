#!/usr/bin/env bash
# Run on the device machine (the `device` tool, carry [".cudaparity", ".devdeps"]; prepare both
# here first with scripts/device-cuda-plans.sh): builds the runtime with the CUDA backend
# (scripts/device, no compiler), runs the CUDA kernel tests and the whole-plan parity tests
# (GPU-only, hybrid, bf16, int8, int4 and split plans of every fixture model, and the prefill
# offload plans offload/offloadq/offload4/splitoff whose prefill streams the CPU experts to the GPU:
# PrefillStreamsDecodeStaysOnCpu checks that it did; VARIANTS="int4 split4" limits the parity run
# to those variants) and writes the logs under $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/kt-cuda-out}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
mkdir -p "$OUT" /tmp/deps
for f in .devdeps/*.deb; do dpkg -x "$f" /tmp/deps; done
# The plans name their weights under /work/main/.cudaparity (where they were compiled).
if [ "$(realpath "$ROOT")" != /work/main ]; then
  mkdir -p /work/main && ln -sfn "$ROOT/.cudaparity" /work/main/.cudaparity
fi
[ -e /lib/x86_64-linux-gnu/libudev.so.1 ] || [ -e /usr/lib/x86_64-linux-gnu/libudev.so.1 ] ||
  export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu
{ date -u; nvidia-smi; nvcc --version; lscpu | head -20; } > "$OUT/machine.txt" 2>&1
cmake -S scripts/device -B /tmp/ktc -G Ninja -DCMAKE_BUILD_TYPE=Release -DDEPS=/tmp/deps \
  -DKT_GEN="$ROOT/.cudaparity/gen" > "$OUT/build.txt" 2>&1 &&
  ninja -C /tmp/ktc -j "$(nproc)" kt_cuda_test kt_cuda_plan_test >> "$OUT/build.txt" 2>&1 ||
  { tail -60 "$OUT/build.txt"; exit 1; }
echo "== kernels (kt_cuda_test)"
/tmp/ktc/kt_cuda_test > "$OUT/cuda_test.txt" 2>&1
grep -E "^\[  (PASSED|FAILED|SKIPPED) |Failure|Expected|Which is|actual" "$OUT/cuda_test.txt" | head -40
echo "== plans (kt_cuda_plan_test)"
# VARIANTS (optional, e.g. "int4 split4"): only those plans (and their CUDA graph tests).
FILTER='*'
if [ -n "${VARIANTS:-}" ]; then
  FILTER=$(for v in $VARIANTS; do printf '*_%s:' "$v"; done)
  FILTER=${FILTER%:}
fi
KT_CUDA_PLANS="$ROOT/.cudaparity/plans" KT_CUDA_FIXTURES="$ROOT/.cudaparity" \
  /tmp/ktc/kt_cuda_plan_test --gtest_filter="$FILTER" > "$OUT/parity.txt" 2>&1
grep -E "^\[  (PASSED|FAILED) |^\[  FAILED|Failure" "$OUT/parity.txt" | head -60
grep -E "^\[parity\]" "$OUT/parity.txt" | grep -E "max\|diff\||agreement|ids equal|KL" |
  awk '{print}' > "$OUT/parity_summary.txt"
grep -E "^\[gpu-mem\]" "$OUT/parity.txt" | sort -u | head -20
# Prefill offload: what the offload plans streamed (the backend's memory line says it).
grep -E "^\[gpu-mem\].*prefill offload" "$OUT/parity.txt" | sort -u > "$OUT/offload_summary.txt"
grep -E "^\[parity\].*(offload|offloadq|offload4|splitoff) " "$OUT/parity.txt" >> "$OUT/offload_summary.txt"
head -8 "$OUT/offload_summary.txt"
# CUDA graphs: the CudaGraphs suite above compares replay with eager launches bit for bit; here
# the GPU-only plans' parity runs once more with graphs forced off (KT_CUDA_GRAPHS=0).
grep -E "^\[graphs\]" "$OUT/parity.txt" > "$OUT/graphs_summary.txt"
cat "$OUT/graphs_summary.txt"
echo "== plans with KT_CUDA_GRAPHS=0 (eager decode)"
KT_CUDA_GRAPHS=0 KT_CUDA_PLANS="$ROOT/.cudaparity/plans" KT_CUDA_FIXTURES="$ROOT/.cudaparity" \
  /tmp/ktc/kt_cuda_plan_test --gtest_filter='Fixtures/CudaPlan.*_gpu:Fixtures/CudaPlan.*_bf16:Fixtures/CudaPlan.*_int8:Fixtures/CudaPlan.*_int4' \
  > "$OUT/parity_nographs.txt" 2>&1
grep -E "^\[  (PASSED|FAILED) |^\[  FAILED|Failure|CUDA graphs off" "$OUT/parity_nographs.txt" | head -30
grep -h "CUDA graphs off" "$OUT/parity.txt" | sort | uniq -c | head
# Out-of-bounds / uninitialised-memory check of every kernel and of one plan per architecture.
if [ -z "${SKIP_MEMCHECK:-}" ] && command -v compute-sanitizer > /dev/null; then
  echo "== compute-sanitizer memcheck"
  timeout 300 compute-sanitizer --tool memcheck --error-exitcode 9 /tmp/ktc/kt_cuda_test \
    > "$OUT/memcheck.txt" 2>&1; echo "kernels: rc=$?"
  KT_CUDA_PLANS="$ROOT/.cudaparity/plans" KT_CUDA_FIXTURES="$ROOT/.cudaparity" \
    timeout 300 compute-sanitizer --tool memcheck --error-exitcode 9 /tmp/ktc/kt_cuda_plan_test \
    --gtest_filter="${MEMCHECK_FILTER:-*llama_hybrid:*qwen3_moe_gpu:*deepseek_v3_hybrid:*mixtral_bf16:*qwen3_moe_int8:*deepseek_v3_splitq:*deepseek_v2_split:*CudaGraphs*deepseek_v2_gpu:*mixtral_int4:*deepseek_v2_split4:*deepseek_v2_offload:*mixtral_offloadq:*qwen3_moe_offload4:*deepseek_v3_splitoff}" \
    >> "$OUT/memcheck.txt" 2>&1; echo "plans: rc=$?"
  grep -E "ERROR SUMMARY|Invalid" "$OUT/memcheck.txt" | sort | uniq -c | head
fi
echo "== done"
