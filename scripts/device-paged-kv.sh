#!/usr/bin/env bash
# Issue #7's paged KV cache on the device machine (docs/cuda.md, "Paged KV cache"). Builds nothing:
# runs the tests and a decode benchmark from an existing build directory, either a full build
# (binaries under test/unit/cuda and tools/) or the device's reduced one (scripts/device: binaries
# at its top, no compiler; the fixture plans then come from .cudaparity as in
# scripts/device-cuda-parity.sh, the bench plans from .pagedkv made here by --prepare).
#
#   scripts/device-paged-kv.sh --prepare [BUILD_DIR=build]   here: .pagedkv/ (the bench plans,
#       compiled against 2-layer kt-synth checkpoints in /tmp/kt-paged-kv, deleted again);
#       carry ".pagedkv" (with ".cudaparity" for the fixture plans)
#   OUT=$OUT scripts/device-paged-kv.sh [BUILD_DIR=build-dev] [BASELINE_BUILD_DIR]   device
#
# 1. Tests: the page bookkeeping (KvPages.*), kt_cuda_test's attention kernels (paged vs dense
#    bit-identity, splits, CPU references), then all of kt_cuda_plan_test (every fixture plan
#    variant, CUDA graphs bit-identical to eager, CudaPagedKv: three sequences batched with a
#    restart equal to each alone, CudaKvPool: the pool on its own), then compute-sanitizer
#    memcheck over the paged kernel tests, the pool test and two paged plan tests (skipped with
#    SKIP_MEMCHECK=1 or without compute-sanitizer).
# 2. Decode speed: kt-synth's DeepSeek-V2-Lite (MLA) and Qwen3-30B-A3B (GQA) cut to 2 layers (real
#    attention shapes, bf16, all on the GPU), `kt-rt bench` at prompt 512 and 2048, batch 1 and 8,
#    pages of 16 (default) and 64 positions; with BASELINE_BUILD_DIR (a build of the commit before
#    the paged cache, same plan format) the same runs with its kt-rt, for before/after.
# Logs under $OUT: summary.txt, machine.txt, kv_pages_test.txt, cuda_test.txt, plan_test.txt,
# paged_lines.txt ([paged]/[paged-kv]/[graphs]/[gpu-mem] lines), memcheck*.txt, bench.txt (one
# line per run: tok/s and the GPU memory line with the KV pages) and bench/*.json.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
P=$ROOT/.pagedkv
W=/tmp/kt-paged-kv # checkpoints (the same absolute path on both machines: the plans name it)
MODELS="dsv2 qwen3"
config_of() { [ "$1" = dsv2 ] && echo examples/configs/deepseek-v2-lite.json ||
  echo examples/configs/qwen3-30b-a3b.json; }
# A binary of build $1: the full build's layout ($2 = its folder) or the device build's (top).
bin() { for f in "$1/$2/$3" "$1/$3"; do [ -x "$f" ] && { echo "$f"; return 0; }; done; return 1; }

if [ "${1:-}" = --prepare ]; then
  B=${2:-build}
  [[ "$B" = /* ]] || B=$ROOT/$B
  SYNTH=$(bin "$B" tools/kt-synth kt-synth) && KTC=$(bin "$B" tools/kt-compile kt-compile) ||
    { echo "$B lacks kt-synth or kt-compile" >&2; exit 1; }
  rm -rf "$P" "$W"
  mkdir -p "$P" "$W"
  for m in $MODELS; do
    "$SYNTH" "$(config_of "$m")" "$W/$m" --dtype bf16 --seed 0 --layers 2 -q || exit 1
    (cd "$W/$m" && md5sum ./*.safetensors > "$P/$m.md5") || exit 1
    "$KTC" "$W/$m" -o "$P/$m.ktplan" --device gpu:0 --dtype bf16 || exit 1
    rm -rf "${W:?}/$m"
  done
  rm -rf "$W"
  du -sh "$P"
  exit 0
fi

B=${1:-build-dev}
[[ "$B" = /* ]] || B=$ROOT/$B
BASE=${2:-}
[ -z "$BASE" ] || [[ "$BASE" = /* ]] || BASE=$ROOT/$BASE
OUT=${OUT:-/tmp/kt-paged-kv-out}
mkdir -p "$OUT/bench"
CUDA_TEST=$(bin "$B" test/unit/cuda kt_cuda_test) && PLAN_TEST=$(bin "$B" test/unit/cuda kt_cuda_plan_test) ||
  { echo "$B lacks kt_cuda_test or kt_cuda_plan_test: build them first" >&2; exit 1; }
PAGES_TEST=$(bin "$B" test/unit/cuda kt_kv_pages_test) || PAGES_TEST= # device build: in kt_cuda_test
# Fixture plans: compiled in-process by a full build; the device build reads .cudaparity's.
if [ -d "$ROOT/.cudaparity/plans" ] && [ -z "${KT_CUDA_PLANS:-}" ]; then
  export KT_CUDA_PLANS=$ROOT/.cudaparity/plans KT_CUDA_FIXTURES=$ROOT/.cudaparity
  # The plans name their weights under /work/main/.cudaparity (where they were compiled).
  if [ "$(realpath "$ROOT")" != /work/main ]; then
    mkdir -p /work/main && ln -sfn "$ROOT/.cudaparity" /work/main/.cudaparity
  fi
fi
[ -e /lib/x86_64-linux-gnu/libudev.so.1 ] || [ -e /usr/lib/x86_64-linux-gnu/libudev.so.1 ] ||
  [ ! -d /tmp/deps ] || export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc; date -u
  git -C "$ROOT" log --oneline -1; echo "build $B, baseline ${BASE:-none}"; } > "$OUT/machine.txt" 2>&1
STATUS=0
step() { # NAME LOG CMD...: runs it, records rc and gtest's totals
  local name=$1 log=$2
  shift 2
  echo "== $name $(date -u +%T)" | tee -a "$OUT/summary.txt"
  SECONDS=0
  "$@" > "$log" 2>&1
  local rc=$?
  echo "rc=$rc (${SECONDS} s): $(grep -E '^\[  (PASSED|FAILED|SKIPPED) +\] [0-9]+ test' "$log" | tr '\n' ' ')" | tee -a "$OUT/summary.txt"
  grep -E '^\[  FAILED  \] [A-Z]' "$log" | head -20 | tee -a "$OUT/summary.txt"
  [ $rc -eq 0 ] || STATUS=1
}

# ---- 1. tests ----
KERNELS='CudaAttentionPaged.*:CudaAttentionSplit.*:CudaKernels.*Attention*:CudaMoeDecode.*'
if [ -n "$PAGES_TEST" ]; then
  step kv_pages "$OUT/kv_pages_test.txt" "$PAGES_TEST"
else
  KERNELS="KvPages.*:$KERNELS"
fi
step cuda_kernels "$OUT/cuda_test.txt" "$CUDA_TEST" --gtest_filter="$KERNELS"
step plan_tests "$OUT/plan_test.txt" "$PLAN_TEST"
grep -hE '^\[(paged|paged-kv|graphs|gpu-mem)\]' "$OUT/cuda_test.txt" "$OUT/plan_test.txt" > "$OUT/paged_lines.txt"
if [ -z "${SKIP_MEMCHECK:-}" ] && command -v compute-sanitizer > /dev/null; then
  step memcheck_kernels "$OUT/memcheck.txt" compute-sanitizer --tool memcheck --error-exitcode 3 \
    "$CUDA_TEST" --gtest_filter='CudaAttentionPaged.*:CudaAttentionSplit.*'
  step memcheck_plans "$OUT/memcheck_plans.txt" compute-sanitizer --tool memcheck --error-exitcode 3 \
    "$PLAN_TEST" --gtest_filter='CudaKvPool.*:*CudaPagedKv.*/deepseek_v2_gpu:*CudaPagedKv.*/qwen3_moe_gpu'
else
  echo "memcheck skipped" | tee -a "$OUT/summary.txt"
fi

# ---- 2. decode speed ----
SYNTH=$(bin "$B" tools/kt-synth kt-synth) && RT=$(bin "$B" tools/kt-rt kt-rt) ||
  { echo "bench skipped: $B lacks kt-synth or kt-rt" | tee -a "$OUT/summary.txt"; exit $STATUS; }
KTC=$(bin "$B" tools/kt-compile kt-compile) || KTC=
[ -n "$BASE" ] && { BASE_RT=$(bin "$BASE" tools/kt-rt kt-rt) ||
  { echo "no kt-rt in $BASE" | tee -a "$OUT/summary.txt"; BASE=; }; }
LOG=$OUT/bench.txt
bench() { # NAME RT PLAN ARGS... (KT_KV_PAGE_TOKENS from the caller's environment)
  local name=$1 rt=$2 plan=$3
  shift 3
  timeout 300 "$rt" bench "$plan" --json "$@" > "$OUT/bench/$name.json" 2> "$OUT/bench/$name.err"
  local rc=$?
  echo "$name rc=$rc $(cat "$OUT/bench/$name.json")" | tee -a "$LOG"
  [ $rc -eq 0 ] || { tail -3 "$OUT/bench/$name.err" | tee -a "$LOG"; STATUS=1; }
}
rm -rf "$W"
mkdir -p "$W"
for m in $MODELS; do
  echo "== kt-synth $m (2 layers) $(date -u +%T)" | tee -a "$LOG"
  "$SYNTH" "$(config_of "$m")" "$W/$m" --dtype bf16 --seed 0 --layers 2 -q 2>&1 | tail -1 | tee -a "$LOG"
  plan=$P/$m.ktplan
  if [ -f "$plan" ]; then # compiled here by --prepare: the same checkpoint bytes?
    (cd "$W/$m" && md5sum -c --quiet "$P/$m.md5") 2>&1 | tee -a "$LOG"
  elif [ -n "$KTC" ]; then
    plan=$W/$m.ktplan
    "$KTC" "$W/$m" -o "$plan" --device gpu:0 --dtype bf16 > "$OUT/bench/compile-$m.txt" 2>&1 ||
      { echo "kt-compile $m failed: $(tail -2 "$OUT/bench/compile-$m.txt")" | tee -a "$LOG"; STATUS=1; continue; }
  else
    echo "bench of $m skipped: no $plan (run --prepare here and carry .pagedkv) and no kt-compile" | tee -a "$LOG"
    continue
  fi
  for p in 512 2048; do
    for b in 1 8; do
      args=(--prompt-len "$p" --gen-len 64 --batch "$b" --reps 2)
      bench "$m-p$p-b$b-page16" "$RT" "$plan" "${args[@]}"
      KT_KV_PAGE_TOKENS=64 bench "$m-p$p-b$b-page64" "$RT" "$plan" "${args[@]}"
      [ -z "$BASE" ] || bench "$m-p$p-b$b-before" "$BASE_RT" "$plan" "${args[@]}"
    done
  done
  rm -rf "${W:?}/$m"
done
rm -rf "$W"
echo "== done $(date -u +%T)" | tee -a "$OUT/summary.txt"
exit $STATUS
