#!/bin/bash
# Session 12, device call 8: the CUDA attention tests (prefill, split decode, paged) after their
# MLA problems come from one helper (test/unit/cuda/MlaProblem.h).
set -u
R=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p /tmp/deps && for f in "$R"/.devdeps/*.deb; do dpkg -x "$f" /tmp/deps; done
mkdir -p "$R/.cudaparity" && rm -rf "$R/.cudaparity/gen" && cp -r "$R/.s12/gen" "$R/.cudaparity/gen"
cd "$R"
[ -e /lib/x86_64-linux-gnu/libudev.so.1 ] || [ -e /usr/lib/x86_64-linux-gnu/libudev.so.1 ] ||
  export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu
SECONDS=0
cmake -S scripts/device -B /tmp/ktg -G Ninja -DCMAKE_BUILD_TYPE=Release -DDEPS=/tmp/deps \
  -DKT_GEN="$R/.cudaparity/gen" > $OUT/cmake.txt 2>&1 || { tail -20 $OUT/cmake.txt; exit 1; }
ninja -C /tmp/ktg -j16 kt_cuda_test > $OUT/build.txt 2>&1 || { tail -30 $OUT/build.txt; exit 1; }
echo "build ${SECONDS}s"
/tmp/ktg/kt_cuda_test --gtest_filter="*Attention*" > $OUT/attention_test.txt 2>&1; echo "rc=$?"
grep -E "^\[  (PASSED|FAILED|SKIPPED) |tests ran|Failure" $OUT/attention_test.txt | head -20
