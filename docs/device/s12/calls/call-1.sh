#!/bin/bash
# Session 12, device call 1 (HEAD): build, kt-rt probe (with the skewed grouped-MoE curves),
# DeepSeek-V2-Lite all-GPU bf16 / int8 at P=512 and 2048 (to check the skew-aware grouped price),
# then the 8 GiB hybrid and cpu-int8 at P=512 with --profile-layers (the CPU experts per layer),
# the hybrid again on 15 pool threads, kt_bench_moe under routing skew, and a second probe.
set -u
. "$(dirname "$0")/../scripts/device/call-common.sh" # (ran as .s12/common.sh, the same lines)
probe probe-a
mkdir -p $OUT/m $OUT/h $OUT/t15
OUT=$OUT/m VARIANTS="gpu-bf16-all gpu-int8-all" NO_EAGER=1 REPS=2 KEEP_CHECKPOINT=1 \
  timeout $((400 - SECONDS)) bash scripts/device-hybrid-bench.sh --model dsv2 > $OUT/m-stdout.txt 2>&1
echo "gpu rc=$? ${SECONDS}s"
OUT=$OUT/h VARIANTS="hybrid8g cpu-int8" NO_EAGER=1 NO_P2048=1 REPS=2 PROFILE=layers REUSE=1 KEEP_CHECKPOINT=1 \
  timeout $((480 - SECONDS)) bash scripts/device-hybrid-bench.sh --model dsv2 > $OUT/h-stdout.txt 2>&1
echo "hybrid rc=$? ${SECONDS}s"
OUT=$OUT/t15 VARIANTS="hybrid8g" NO_EAGER=1 NO_P2048=1 REPS=2 THREADS=15 REUSE=1 \
  timeout $((520 - SECONDS)) bash scripts/device-hybrid-bench.sh --model dsv2 > $OUT/t15-stdout.txt 2>&1
echo "t15 rc=$? ${SECONDS}s"
timeout $((560 - SECONDS)) /tmp/ktc/bench/kt_bench_moe --threads 16 --tokens 512 --skew 0,0.5,1,1.5 --shared 0 \
  --min-time 0.3 > $OUT/bench-moe.txt 2>&1
echo "bench-moe rc=$? ${SECONDS}s"; cat $OUT/bench-moe.txt
[ $SECONDS -lt 520 ] && probe probe-b
for f in m h t15; do grep -E "^== |^rc=" $OUT/$f/hybench.txt | cut -c1-330; done
echo "total ${SECONDS}s"; cd $OUT && tar czf all.tgz --remove-files $(ls | grep -v "^all.tgz$")
