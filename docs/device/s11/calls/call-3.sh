#!/bin/bash
# Session 11, device call 3: is DeepSeek-V2-Lite's all-GPU prefill (+29% over its prediction,
# every GPU part 20-25% slower than the probe timed it) slowed by the GPU's clocks under
# sustained load? nvidia-smi logs SM clock, power and throttle reasons every 20 ms through a
# probe and through all-GPU bf16 prefills (P=512 and 2048, --gen-len 1, many reps).
set -u
. "$(dirname "$0")/common.sh"
nvidia-smi -q -d CLOCK,POWER,PERFORMANCE > $OUT/smi-q.txt 2>&1
(ls /usr/local/cuda*/bin 2>/dev/null; which nsys ncu) > $OUT/tools.txt 2>&1
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active,utilization.gpu --format=csv -lms 20 > $OUT/smi-log.csv 2>&1 &
SMI=$!
stamp() { echo "== $1 $(date -u +%T.%N | cut -c1-12)" | tee -a $OUT/stamps.txt; }
stamp probe-start
timeout 150 /tmp/ktc/kt-rt probe -o $OUT/probe-c.json 2>&1 | while IFS= read -r l; do echo "$(date -u +%T.%N | cut -c1-12) $l"; done > $OUT/probe-c.txt
stamp probe-end
mkdir -p $OUT/m
OUT=$OUT/m VARIANTS="gpu-bf16-all" NO_EAGER=1 NO_P2048=1 REPS=2 KEEP_CHECKPOINT=1 \
  timeout 200 bash scripts/device-hybrid-bench.sh --model dsv2 > $OUT/hybench-stdout.txt 2>&1
echo "dsv2 rc=$? ${SECONDS}s"
grep -E "^rc=" $OUT/m/hybench.txt | cut -c1-200
P=.hybench/dsv2.gpu-bf16-all.ktplan
for run in "512 30" "2048 8"; do
  set -- $run
  stamp "bench-p$1-start"
  timeout 90 /tmp/ktc/kt-rt bench $P --prompt-len $1 --gen-len 1 --reps $2 --json > $OUT/bench-p$1.txt 2>&1
  stamp "bench-p$1-end rc=$?"
  tail -1 $OUT/bench-p$1.txt | cut -c1-160
done
stamp padded-start
KT_CUDA_MOE_GEMM=padded timeout 90 /tmp/ktc/kt-rt bench $P --prompt-len 512 --gen-len 1 --reps 30 --json > $OUT/bench-p512-padded.txt 2>&1
stamp "padded-end rc=$?"
tail -1 $OUT/bench-p512-padded.txt | cut -c1-160
kill $SMI
rm -rf /tmp/kt-bench/hy-dsv2
echo "total ${SECONDS}s"; cd $OUT && tar czf all.tgz --remove-files $(ls | grep -v "^all.tgz$")
