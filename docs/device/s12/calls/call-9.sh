#!/bin/bash
# Session 12, device call 9 (checks scripts/device/call-common.sh with TARGETS), as call 5: the AVX-512 / AMX quant kernel tests after the GEMM tiles share one
# loop (tileDot) — the dev VM exposed no AVX-512 today.
# (Ran with the same configure and build lines written out, into /tmp/ktq or /tmp/ktg.)
set -u
TARGETS=kt_quant_matmul_test . "$(dirname "$0")/../scripts/device/call-common.sh"
grep -o "avx512[a-z_0-9]*\|amx[a-z_0-9]*" /proc/cpuinfo | sort -u | tr '\n' ' '; echo
/tmp/ktc/kt_quant_matmul_test > $OUT/quant_test.txt 2>&1; echo "rc=$?"
grep -E "PASSED|FAILED|SKIPPED|tests ran" $OUT/quant_test.txt | head -20
