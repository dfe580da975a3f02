#!/bin/bash
# Session 11, device call 1 (HEAD): build, kt-rt probe, Qwen3-30B-A3B cpu-int8 (P=512) and
# 8 GiB hybrid (P=512, 2048), then all-GPU bf16 (P=512, 2048), best of 2 at 512.
set -u
. "$(dirname "$0")/common.sh"
probe probe-a
mkdir -p $OUT/m
OUT=$OUT/m VARIANTS="cpu-int8 hybrid8g gpu-bf16-all" NO_EAGER=1 REPS=2 \
  timeout $((585 - SECONDS)) bash scripts/device-hybrid-bench.sh --model qwen3 > $OUT/hybench-stdout.txt 2>&1
echo "qwen3 rc=$? ${SECONDS}s"
grep -E "^== |^rc=" $OUT/m/hybench.txt | cut -c1-900
tar czf $OUT/m.tgz -C $OUT m && rm -rf $OUT/m
echo "total ${SECONDS}s"
