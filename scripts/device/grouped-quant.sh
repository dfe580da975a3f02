#!/usr/bin/env bash
# Device script of the grouped prefill MoE over int8/int4 experts (docs/cuda.md, "Grouped prefill
# MoE over int8 and int4 experts"). Builds nothing: give it a device build directory that already
# holds kt_cuda_test and kt_cuda_plan_test (scripts/device, as scripts/device-cuda-parity.sh builds
# them). Usage, on the device machine from the repository root:
#   OUT=/some/dir scripts/device/grouped-quant.sh [BUILD_DIR (default /tmp/ktc)]
# Runs, logs under $OUT:
#   widen.txt         kernels: CudaQuantWiden.* and the int8/int4 linear tests (kt_cuda_test)
#   chunk.txt         CudaMoeGroupedQuant.*: a grouped int8/int4 chunk against the per-expert
#                     path and a scalar reference ([grouped-quant] lines: the measured diffs)
#   timing.txt        DISABLED_TimeDeepSeekV2LiteShape: one 64 x 1408 x 2048 layer, grouped vs
#                     per expert, bf16/int8/int4, 512 and 1024 tokens ([grouped-quant-time])
#   plans.txt         when fixture plans are there (KT_CUDA_PLANS, default .cudaparity/plans):
#                     the int8/int4 plans of every fixture (CudaPlan + CudaGraphs), grouped;
#   plans-chunk7.txt  the same CudaPlan tests with 7-token chunks (KT_CUDA_MOE_CHUNK=7);
#   plans-loop.txt    and with KT_CUDA_MOE_GROUPED=0 (the per-expert path), for comparison;
#   memcheck.txt      compute-sanitizer over the kernel and chunk tests (SKIP_MEMCHECK=1: not).
set -uo pipefail
BUILD=${1:-/tmp/ktc}
OUT=${OUT:-/tmp/kt-grouped-quant-out}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
mkdir -p "$OUT"
for t in kt_cuda_test kt_cuda_plan_test; do
  [ -x "$BUILD/$t" ] || { echo "grouped-quant.sh: $BUILD/$t is missing (build it first)"; exit 2; }
done
# As scripts/device-cuda-parity.sh: the plans name their weights under /work/main/.cudaparity, and
# libhwloc may need the carried libudev.
if [ -d "$ROOT/.cudaparity" ] && [ "$(realpath "$ROOT")" != /work/main ]; then
  mkdir -p /work/main && ln -sfn "$ROOT/.cudaparity" /work/main/.cudaparity
fi
[ -e /lib/x86_64-linux-gnu/libudev.so.1 ] || [ -e /usr/lib/x86_64-linux-gnu/libudev.so.1 ] ||
  export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu
{ date -u; nvidia-smi; } > "$OUT/machine.txt" 2>&1
summary() { grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED|Failure|Expected|Which is|actual" "$1" | head -"${2:-30}"; }

echo "== kernels (kt_cuda_test)"
"$BUILD/kt_cuda_test" --gtest_filter='CudaQuantWiden.*:CudaKernels.LinearInt*:CudaKernels.Int4Gemv*' \
  > "$OUT/widen.txt" 2>&1
echo "rc=$?"; summary "$OUT/widen.txt"

echo "== grouped int8/int4 chunk (kt_cuda_plan_test)"
"$BUILD/kt_cuda_plan_test" --gtest_filter='CudaMoeGroupedQuant.*' > "$OUT/chunk.txt" 2>&1
echo "rc=$?"; summary "$OUT/chunk.txt"; grep -E "^\[grouped-quant\]" "$OUT/chunk.txt"

echo "== timing (DeepSeek-V2-Lite layer shape)"
timeout 300 "$BUILD/kt_cuda_plan_test" --gtest_also_run_disabled_tests \
  --gtest_filter='CudaMoeGroupedQuant.DISABLED_TimeDeepSeekV2LiteShape' > "$OUT/timing.txt" 2>&1
echo "rc=$?"; summary "$OUT/timing.txt" 10; grep -E "^\[grouped-quant-time\]" "$OUT/timing.txt"

PLANS=${KT_CUDA_PLANS:-$ROOT/.cudaparity/plans}
if [ -d "$PLANS" ]; then
  FIX=${KT_CUDA_FIXTURES:-$ROOT/.cudaparity}
  QUANT='Fixtures/CudaPlan.*_int8:Fixtures/CudaPlan.*_int4'
  echo "== int8/int4 fixture plans, grouped (default chunks)"
  KT_CUDA_PLANS="$PLANS" KT_CUDA_FIXTURES="$FIX" timeout 400 "$BUILD/kt_cuda_plan_test" \
    --gtest_filter="$QUANT:Fixtures/CudaGraphs.*_int8:Fixtures/CudaGraphs.*_int4" \
    > "$OUT/plans.txt" 2>&1
  echo "rc=$?"; summary "$OUT/plans.txt"
  echo "== the same with 7-token chunks (KT_CUDA_MOE_CHUNK=7)"
  KT_CUDA_MOE_CHUNK=7 KT_CUDA_PLANS="$PLANS" KT_CUDA_FIXTURES="$FIX" timeout 300 \
    "$BUILD/kt_cuda_plan_test" --gtest_filter="$QUANT" > "$OUT/plans-chunk7.txt" 2>&1
  echo "rc=$?"; summary "$OUT/plans-chunk7.txt"
  echo "== the same on the per-expert path (KT_CUDA_MOE_GROUPED=0), for comparison"
  KT_CUDA_MOE_GROUPED=0 KT_CUDA_PLANS="$PLANS" KT_CUDA_FIXTURES="$FIX" timeout 300 \
    "$BUILD/kt_cuda_plan_test" --gtest_filter="$QUANT" > "$OUT/plans-loop.txt" 2>&1
  echo "rc=$?"; summary "$OUT/plans-loop.txt"
  # Sequence agreement and KL per plan: grouped, 7-token chunks, per-expert.
  for f in plans plans-chunk7 plans-loop; do
    grep -E "^\[parity\].*seq (top-1 agreement|mean KL)" "$OUT/$f.txt" | sed "s/^/$f /"
  done > "$OUT/parity_summary.txt"
  head -40 "$OUT/parity_summary.txt"
else
  echo "== no fixture plans at $PLANS: the whole-plan runs are skipped"
fi

if [ -z "${SKIP_MEMCHECK:-}" ] && command -v compute-sanitizer > /dev/null; then
  echo "== compute-sanitizer memcheck"
  timeout 300 compute-sanitizer --tool memcheck --error-exitcode 9 "$BUILD/kt_cuda_test" \
    --gtest_filter='CudaQuantWiden.*:CudaKernels.LinearInt*' > "$OUT/memcheck.txt" 2>&1
  echo "kernels: rc=$?"
  timeout 300 compute-sanitizer --tool memcheck --error-exitcode 9 "$BUILD/kt_cuda_plan_test" \
    --gtest_filter='CudaMoeGroupedQuant.*' >> "$OUT/memcheck.txt" 2>&1
  echo "chunk: rc=$?"
  grep -E "ERROR SUMMARY|Invalid" "$OUT/memcheck.txt" | sort | uniq -c | head
fi
echo "== done"
