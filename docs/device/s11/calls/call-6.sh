#!/bin/bash
# Session 11, device call 6: --profile (best of 2) of DeepSeek-V2-Lite's 8 GiB hybrid and
# cpu-int8 at P=512: the hybrid's prefill stays 20-35% over its prediction while cpu-int8's and
# the hybrid's at P=2048 are within 25%.
set -u
. "$(dirname "$0")/common.sh"
probe probe-a
mkdir -p $OUT/m
OUT=$OUT/m VARIANTS="hybrid8g cpu-int8" NO_EAGER=1 NO_P2048=1 REPS=2 PROFILE=1 \
  timeout $((540 - SECONDS)) bash scripts/device-hybrid-bench.sh --model dsv2 > $OUT/hybench-stdout.txt 2>&1
echo "dsv2 rc=$? ${SECONDS}s"
grep -E "^== |^rc=" $OUT/m/hybench.txt | cut -c1-300
echo "total ${SECONDS}s"; cd $OUT && tar czf all.tgz --remove-files $(ls | grep -v "^all.tgz$")
