#!/bin/bash
# Session 10, device call 2 (HEAD): build, kt-rt probe, DeepSeek-V2-Lite cpu-int8 (P=512),
# 8 GiB hybrid and all-GPU bf16 / int8 (P=512, 2048), best of 2, then a second probe.
set -u
. "$(dirname "$0")/common.sh"
probe probe-a
mkdir -p $OUT/m
OUT=$OUT/m VARIANTS="cpu-int8 hybrid8g gpu-bf16-all gpu-int8-all" NO_EAGER=1 REPS=2 \
  timeout $((520 - SECONDS)) bash scripts/device-hybrid-bench.sh --model dsv2 > $OUT/hybench-stdout.txt 2>&1
echo "dsv2 rc=$? ${SECONDS}s"
probe probe-b
grep -E "^== |^rc=" $OUT/m/hybench.txt | cut -c1-700
tar czf $OUT/m.tgz -C $OUT m && rm -rf $OUT/m
echo "total ${SECONDS}s"
