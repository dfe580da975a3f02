#!/bin/bash
# Session 10, device call 4 (HEAD): why two probes of one instance differ by ~25% on the AMX
# paths (call 2: probe-a before the benchmarks, probe-b after). Two probes back to back, DSV2
# cpu-int8 and 8 GiB hybrid (P=512), a probe with the checkpoint still in memory, then one after
# dropping the page cache and compacting memory; THP state and AnonHugePages at each step.
set -u
. "$(dirname "$0")/common.sh"
thp() { echo "[$1] $(grep -E 'AnonHugePages|MemFree|^Cached' /proc/meminfo | tr -s ' ' | tr '\n' ' ')"; }
cat /sys/kernel/mm/transparent_hugepage/enabled /sys/kernel/mm/transparent_hugepage/defrag
grep -E "Model name|Thread|Core|MHz" $OUT/../lscpu.txt 2>/dev/null; lscpu | grep -E "Model name|Thread\(s\)|Core\(s\)|max MHz|L3"
id -u; thp start
for p in probe-a1 probe-a2; do probe $p; thp $p; done
mkdir -p $OUT/m
(while sleep 2; do thp bench; done) > $OUT/thp-during.txt 2>&1 &
SPID=$!
OUT=$OUT/m VARIANTS="cpu-int8 hybrid8g" NO_EAGER=1 NO_P2048=1 REPS=2 KEEP_CHECKPOINT=1 \
  timeout 240 bash scripts/device-hybrid-bench.sh --model dsv2 > $OUT/hybench-stdout.txt 2>&1
echo "dsv2 rc=$? ${SECONDS}s"; kill $SPID; sed -n "1p;\$p" $OUT/thp-during.txt; awk '{print $3}' $OUT/thp-during.txt | sort -n | sed -n "1p;\$p"
probe probe-b1; thp probe-b1
rm -rf /tmp/kt-bench/hy-dsv2 /dev/shm/hy-dsv2; sync
echo 3 > /proc/sys/vm/drop_caches; echo 1 > /proc/sys/vm/compact_memory; thp dropped
probe probe-b2; thp probe-b2
grep -E "^rc=" $OUT/m/hybench.txt | cut -c1-160
for p in a1 a2 b1 b2; do python3 -c "
import json; c=json.load(open('$OUT/probe-$p.json'))['cpu']
e=c['expert_rows_gflops']['int8']; i=c['expert_rows_gflops_i768']['int8']
print('$p amx', c['gemm_gflops']['amx'], 'gemm512', c['gemm_rows_gflops']['int8']['512'], 'e', [int(e[k]) for k in ['16','32','64','128','256']], 'i768', [int(i[k]) for k in ['16','32','64','128','256']])"; done
tar czf $OUT/m.tgz -C $OUT m && rm -rf $OUT/m
echo "total ${SECONDS}s"
