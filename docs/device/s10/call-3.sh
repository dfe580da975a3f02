#!/bin/bash
# Session 10, device call 3 (HEAD): probe, then --profile runs (per-op tables in the .err files)
# of the misses of calls 1-2: DSV2 all-GPU bf16 prefill (P=512, 2048), DSV2 8 GiB hybrid
# (P=512), Qwen3-30B-A3B 8 GiB hybrid (P=512, 2048).
set -u
. "$(dirname "$0")/common.sh"
probe probe-a
mkdir -p $OUT/m
OUT=$OUT/m VARIANTS="gpu-bf16-all hybrid8g" PROFILE=1 NO_EAGER=1 REPS=1 \
  timeout 200 bash scripts/device-hybrid-bench.sh --model dsv2 > $OUT/hybench-dsv2-stdout.txt 2>&1
echo "dsv2 rc=$? ${SECONDS}s"
OUT=$OUT/m VARIANTS="hybrid8g" PROFILE=1 NO_EAGER=1 REPS=1 \
  timeout $((575 - SECONDS)) bash scripts/device-hybrid-bench.sh --model qwen3 > $OUT/hybench-qwen3-stdout.txt 2>&1
echo "qwen3 rc=$? ${SECONDS}s"
grep -E "^rc=" $OUT/m/hybench.txt | cut -c1-200
for f in $OUT/m/*.err; do echo "== ${f##*/}"; grep -E "^prefill/" $f | sort -k3 -rn | head -12; done | cut -c1-120
tar czf $OUT/m.tgz -C $OUT m && rm -rf $OUT/m
echo "total ${SECONDS}s"
