#!/bin/bash
# Session 12, device call 8: the CUDA attention tests (prefill, split decode, paged) after their
# MLA problems come from one helper (test/unit/cuda/MlaProblem.h).
# (Ran with the same configure and build lines written out, into /tmp/ktq or /tmp/ktg.)
set -u
TARGETS=kt_cuda_test . "$(dirname "$0")/../scripts/device/call-common.sh"
/tmp/ktc/kt_cuda_test --gtest_filter="*Attention*" > $OUT/attention_test.txt 2>&1; echo "rc=$?"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |tests ran|Failure" $OUT/attention_test.txt | head -20
