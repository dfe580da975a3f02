#!/bin/bash
# Session 12, device call 7: kt_cuda_train_grad_test after its five layer tests share one
# forward/backward comparison (expectLayerMatches).
# (Ran with the same configure and build lines written out, into /tmp/ktq or /tmp/ktg.)
set -u
TARGETS=kt_cuda_train_grad_test . "$(dirname "$0")/../scripts/device/call-common.sh"
/tmp/ktc/kt_cuda_train_grad_test > $OUT/train_grad_test.txt 2>&1; echo "rc=$?"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |tests ran|Failure" $OUT/train_grad_test.txt | head -20
