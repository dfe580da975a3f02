#!/usr/bin/env bash
# Run on the device machine (the `device` tool): builds scripts/device and runs the AMX/GPU tests
# and kernel benchmarks, writing everything under $OUT. Needs .devdeps/libgtest-dev_*.deb
# (apt-get download libgtest-dev) carried along.
set -uo pipefail
OUT=${OUT:-/tmp/kt-device-out}
mkdir -p "$OUT" /tmp/deps
for f in .devdeps/*.deb; do dpkg -x "$f" /tmp/deps; done
{ date -u; lscpu; nvidia-smi; } > "$OUT/machine.txt" 2>&1
# kt_cuda_test now builds with the runtime, which needs the plan schema header made ahead
# (scripts/device-cuda-plans.sh; the full CUDA acceptance run is scripts/device-cuda-parity.sh).
GEN=""
[ -d .cudaparity/gen ] && GEN="-DKT_GEN=$PWD/.cudaparity/gen"
cmake -S scripts/device -B /tmp/ktb -G Ninja -DCMAKE_BUILD_TYPE=Release -DDEPS=/tmp/deps $GEN > "$OUT/build.txt" 2>&1 &&
  ninja -C /tmp/ktb -j 16 >> "$OUT/build.txt" 2>&1 || { tail -40 "$OUT/build.txt"; exit 1; }
[ -x /tmp/ktb/kt_cuda_test ] && /tmp/ktb/kt_cuda_test 2>&1 | tee "$OUT/cuda_test.txt" | tail -4
/tmp/ktb/kt_quant_matmul_test 2>&1 > "$OUT/quant_test.txt"; grep -E "PASSED|FAILED|SKIPPED" "$OUT/quant_test.txt" | head -20
NT=$(nproc)
/tmp/ktb/bench/kt_bench_bandwidth --size-mb 1024 --reps 5 > "$OUT/bandwidth.txt" 2>&1; cat "$OUT/bandwidth.txt"
/tmp/ktb/bench/kt_bench_matmul --threads 1,$((NT/2)),$NT --min-time 0.3 --json "$OUT/matmul.json" > "$OUT/matmul.txt" 2>&1; tail -60 "$OUT/matmul.txt"
