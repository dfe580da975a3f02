#!/bin/bash
# Session 10, device call 5 (HEAD + the profile's move-to-host / move-to-device entries): Qwen3
# 8 GiB hybrid with --profile over 2 reps (the last one's table) at P=512 and 2048: where the
# P=2048 prefill's +40% goes.
set -u
. "$(dirname "$0")/common.sh"
mkdir -p $OUT/m
OUT=$OUT/m VARIANTS="hybrid8g" PROFILE=1 NO_EAGER=1 REPS=2 \
  timeout 400 bash scripts/device-hybrid-bench.sh --model qwen3 > $OUT/hybench-stdout.txt 2>&1
echo "qwen3 rc=$? ${SECONDS}s"
grep -E "^rc=" $OUT/m/hybench.txt | cut -c1-200
for f in $OUT/m/*.err; do echo "== ${f##*/}"; grep -E "^prefill/" $f | sort -k3 -rn | head -14; done | cut -c1-120
tar czf $OUT/m.tgz -C $OUT m && rm -rf $OUT/m
echo "total ${SECONDS}s"
