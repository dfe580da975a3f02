#!/bin/bash
# Session 11, device call 4: per-kernel GPU durations (Nsight Compute, clocks and caches left
# alone) of one DeepSeek-V2-Lite all-GPU bf16 prefill at P=512, to split the +29% between the
# kernels themselves and the gaps between them.
set -u
. "$(dirname "$0")/common.sh"
CK=/tmp/kt-bench/hy-dsv2
mkdir -p /tmp/kt-bench && rm -rf $CK
/tmp/ktc/kt-synth examples/configs/deepseek-v2-lite.json $CK --dtype bf16 --seed 0 --layers 27 -q 2>&1 | tail -1
echo "synth ${SECONDS}s"
P=.hybench/dsv2.gpu-bf16-all.ktplan
timeout 60 /tmp/ktc/kt-rt bench $P --prompt-len 512 --gen-len 1 --reps 3 --json 2>&1 | tail -1 | cut -c1-120
echo "bench ${SECONDS}s"
timeout 300 /usr/local/cuda/bin/ncu --clock-control none --cache-control none \
  --metrics gpu__time_duration.sum,dram__bytes_read.sum --csv --print-units base \
  --log-file $OUT/ncu.csv /tmp/ktc/kt-rt bench $P --prompt-len 512 --gen-len 1 --reps 1 > $OUT/ncu-stdout.txt 2>&1
echo "ncu rc=$? ${SECONDS}s"
tail -5 $OUT/ncu-stdout.txt; wc -l $OUT/ncu.csv; head -3 $OUT/ncu.csv | cut -c1-300
rm -rf $CK
echo "total ${SECONDS}s"; cd $OUT && gzip ncu.csv
