#!/usr/bin/env bash
# Device machine (issues #6 and #7): the grouped prefill MoE's GPU tests and its probe curves in
# both row layouts, from an existing build (this script builds nothing).
#   bash scripts/device/grouped-moe-probe.sh [BUILD_DIR]      (default /tmp/ktc; $OUT: where to write)
# Works with the reduced device build (scripts/device/CMakeLists.txt: the tests inside kt_cuda_test;
# built beforehand with `ninja -C /tmp/ktc kt_cuda_test kt-rt`) and with a full build
# (build-*/test/unit/cuda/kt_cuda_test and kt_cuda_moe_grouped_test, tools/kt-rt/kt-rt).
# The whole probe runs twice (10-20 s each on the H100 machine).
# Writes under $OUT:
#   tests.txt                 the gtest runs (ragged and padded linear stacks against a host
#                             reference; the grouped chunk in both layouts against the per-expert
#                             path; the host grouping)
#   probe-padded.{json,txt}   kt-rt probe with KT_CUDA_MOE_GEMM=padded: grouped_moe_gflops[_i768]
#                             is the padded layout, _grouped_moe_alt_gflops the ragged one
#   probe-ragged.{json,txt}   the same with KT_CUDA_MOE_GEMM=ragged (the curves swap)
#   summary.txt               each chunk's rates in both layouts (the probe's progress lines)
# Exit status: non-zero when a test failed or a probe did not run.
set -u
B=${1:-/tmp/ktc}
OUT=${OUT:-/tmp/grouped-moe-out}
mkdir -p "$OUT"
[ -d "$B" ] || { echo "no build directory $B" >&2; exit 2; }
rc=0

FILTER='CudaBlas.*:CudaBlasStack.*:CudaMoeGrouped.*:MoeGrouping.*'
tests=$(find "$B" -maxdepth 5 -type f \( -name kt_cuda_test -o -name kt_cuda_moe_grouped_test \) \
        -perm -u+x | sort)
: > "$OUT/tests.txt"
[ -n "$tests" ] || { echo "no kt_cuda_test / kt_cuda_moe_grouped_test under $B" | tee -a "$OUT/tests.txt"; rc=1; }
for t in $tests; do
  echo "== $t --gtest_filter=$FILTER" | tee -a "$OUT/tests.txt"
  "$t" --gtest_filter="$FILTER" >> "$OUT/tests.txt" 2>&1 || { echo "FAILED: $t" | tee -a "$OUT/tests.txt"; rc=1; }
done
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[==========\]|FAILED" "$OUT/tests.txt"

KTRT=$(find "$B" -maxdepth 4 -type f -name kt-rt -perm -u+x | head -1)
if [ -z "$KTRT" ]; then
  echo "no kt-rt under $B" >&2
  exit 1
fi
: > "$OUT/summary.txt"
for mode in padded ragged; do
  echo "== KT_CUDA_MOE_GEMM=$mode $KTRT probe" | tee -a "$OUT/summary.txt"
  if KT_CUDA_MOE_GEMM=$mode "$KTRT" probe -o "$OUT/probe-$mode.json" 2> "$OUT/probe-$mode.txt"; then
    grep -E "grouped MoE" "$OUT/probe-$mode.txt" | tee -a "$OUT/summary.txt"
  else
    echo "probe failed ($mode): see probe-$mode.txt" | tee -a "$OUT/summary.txt"
    tail -5 "$OUT/probe-$mode.txt"
    rc=1
  fi
done
# The curves side by side (GFLOP/s by mean rows per expert), when a Python is at hand.
PY=$(command -v python3 || true)
if [ -n "$PY" ] && [ -f "$OUT/probe-padded.json" ]; then
  "$PY" - "$OUT/probe-padded.json" <<'EOF' | tee -a "$OUT/summary.txt"
import json, sys
g = json.load(open(sys.argv[1]))["gpus"][0]
alt = g.get("_grouped_moe_alt_gflops", {})
print("layout of the curves:", g.get("_grouped_moe_layout"), "| alt:", alt.get("layout"))
for key in ("grouped_moe_gflops", "grouped_moe_gflops_i768"):
    for fmt, points in sorted(g.get(key, {}).items()):
        other = alt.get(key, {}).get(fmt, {})
        row = ", ".join("%s: %.0f / %s" % (r, v, ("%.0f" % other[r]) if r in other else "-")
                        for r, v in sorted(points.items(), key=lambda kv: int(kv[0])))
        print("%s %s (rows: padded / ragged GFLOP/s): %s" % (key, fmt, row))
print("grouped_gemm_gflops (uniform):", g.get("grouped_gemm_gflops"))
EOF
fi
exit $rc
