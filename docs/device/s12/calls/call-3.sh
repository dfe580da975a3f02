#!/bin/bash
# Session 12, device call 3 (HEAD): build, kt-rt probe, DeepSeek-V2-Lite (27 layers) cpu-int8 (P=512),
# 8 GiB hybrid and all-GPU bf16 / int8 (P=512, 2048), best of 2.
set -u
. "$(dirname "$0")/../scripts/device/call-common.sh" # (ran as .s12/common.sh, the same lines)
probe probe-a
mkdir -p $OUT/m
OUT=$OUT/m VARIANTS="cpu-int8 hybrid8g gpu-bf16-all gpu-int8-all" NO_EAGER=1 REPS=2 \
  timeout $((585 - SECONDS)) bash scripts/device-hybrid-bench.sh --model dsv2 > $OUT/hybench-stdout.txt 2>&1
echo "dsv2 rc=$? ${SECONDS}s"
grep -E "^== |^rc=" $OUT/m/hybench.txt | cut -c1-400
echo "total ${SECONDS}s"; cd $OUT && tar czf all.tgz --remove-files $(ls | grep -v "^all.tgz$")
