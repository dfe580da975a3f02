#!/bin/bash
# Session 12, device call 5: the AVX-512 / AMX quant kernel tests after the GEMM tiles share one
# loop (tileDot) — the dev VM exposed no AVX-512 today.
set -u
R=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p /tmp/deps && for f in "$R"/.devdeps/*.deb; do dpkg -x "$f" /tmp/deps; done
mkdir -p "$R/.cudaparity" && rm -rf "$R/.cudaparity/gen" && cp -r "$R/.s12/gen" "$R/.cudaparity/gen"
cd "$R"
SECONDS=0
cmake -S scripts/device -B /tmp/ktq -G Ninja -DCMAKE_BUILD_TYPE=Release -DDEPS=/tmp/deps \
  -DKT_GEN="$R/.cudaparity/gen" > $OUT/cmake.txt 2>&1 || { tail -20 $OUT/cmake.txt; exit 1; }
ninja -C /tmp/ktq -j16 kt_quant_matmul_test > $OUT/build.txt 2>&1 || { tail -30 $OUT/build.txt; exit 1; }
echo "build ${SECONDS}s"
grep -o "avx512[a-z_0-9]*\|amx[a-z_0-9]*" /proc/cpuinfo | sort -u | tr '\n' ' '; echo
/tmp/ktq/kt_quant_matmul_test > $OUT/quant_test.txt 2>&1; echo "rc=$?"
grep -E "PASSED|FAILED|SKIPPED|tests ran" $OUT/quant_test.txt | head -20
