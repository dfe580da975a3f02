#!/usr/bin/env bash
# Run on the device machine after scripts/device-cuda-parity.sh (which configures /tmp/ktc):
# regenerates the kt-synth DeepSeek-V2-Lite checkpoint (bf16, random weights of the real shapes;
# byte-identical to the one the plans were compiled against, at the same absolute path) and runs
# `kt-rt bench` on its GPU-only, hybrid (routed experts on the CPU) and CPU-only plans
# (.cudaparity/bench/, compiled ahead by scripts/device-cuda-plans.sh --bench). Logs under $OUT.
# --cost-model: instead, the plans the cost model placed with the device's measured profile
# (dsv2lite.cm-{gpu,hybrid,cpu}.ktplan, from device-cuda-plans.sh --bench; predictions in
# .cudaparity/bench/explain/) as `kt-rt bench --json`, then one `--profile` rep of each; GPU
# profiles run with CUDA_LAUNCH_BLOCKING=1 so each op's wall time includes its kernels. Configures
# /tmp/ktc itself when the parity script has not run on this machine.
set -uo pipefail
OUT=${OUT:-/tmp/kt-cuda-out}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
mkdir -p "$OUT"
M=/tmp/kt-bench/dsv2lite
B=.cudaparity/bench
if [ ! -f /tmp/ktc/build.ninja ]; then
  mkdir -p /tmp/deps
  for f in .devdeps/*.deb; do dpkg -x "$f" /tmp/deps; done
  cmake -S scripts/device -B /tmp/ktc -G Ninja -DCMAKE_BUILD_TYPE=Release -DDEPS=/tmp/deps \
    -DKT_GEN="$ROOT/.cudaparity/gen" > "$OUT/build.txt" 2>&1 || { tail -30 "$OUT/build.txt"; exit 1; }
fi
[ -e /lib/x86_64-linux-gnu/libudev.so.1 ] || [ -e /usr/lib/x86_64-linux-gnu/libudev.so.1 ] ||
  export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu
SECONDS=0
ninja -C /tmp/ktc -j "$(nproc)" kt-rt kt-synth >> "$OUT/build.txt" 2>&1 ||
  { tail -30 "$OUT/build.txt"; exit 1; }
echo "build: ${SECONDS} s"
/tmp/ktc/kt-rt devices 2>&1 | tee "$OUT/bench.txt"
echo "== kt-synth $(date -u +%T)" | tee -a "$OUT/bench.txt"
SECONDS=0
/tmp/ktc/kt-synth examples/configs/deepseek-v2-lite.json "$M" --dtype bf16 -q 2>&1 |
  tee -a "$OUT/bench.txt"
echo "kt-synth: ${SECONDS} s" | tee -a "$OUT/bench.txt"
run() { # NAME TIMEOUT ARGS...
  local name=$1 limit=$2
  shift 2
  echo "== $name $(date -u +%T): kt-rt bench $*" | tee -a "$OUT/bench.txt"
  timeout "$limit" /tmp/ktc/kt-rt bench "$@" 2>&1 | grep -v "uploading weights" | tee -a "$OUT/bench.txt"
}
if [ "${1:-}" = --cost-model ]; then
  run cm-gpu 90 $B/dsv2lite.cm-gpu.ktplan --prompt-len 512 --gen-len 32 --reps 2 --json
  run cm-hybrid 120 $B/dsv2lite.cm-hybrid.ktplan --prompt-len 512 --gen-len 32 --reps 2 --json
  run cm-cpu 90 $B/dsv2lite.cm-cpu.ktplan --prompt-len 128 --gen-len 16 --reps 1 --json --profile
  export CUDA_LAUNCH_BLOCKING=1
  run cm-gpu-profile 90 $B/dsv2lite.cm-gpu.ktplan --prompt-len 512 --gen-len 32 --reps 1 --profile
  run cm-hybrid-profile 90 $B/dsv2lite.cm-hybrid.ktplan --prompt-len 512 --gen-len 32 --reps 1 --profile
  echo "== done $(date -u +%T)" | tee -a "$OUT/bench.txt"
  exit 0
fi
run gpu 150 $B/dsv2lite.gpu.ktplan --prompt-len 512 --gen-len 64 --reps 2
run gpu-p2048 120 $B/dsv2lite.gpu.ktplan --prompt-len 2048 --gen-len 16 --reps 1
run hybrid 150 $B/dsv2lite.hybrid.ktplan --prompt-len 512 --gen-len 32 --reps 2
run cpu 150 $B/dsv2lite.cpu.ktplan --prompt-len 128 --gen-len 16 --reps 1
echo "== done $(date -u +%T)" | tee -a "$OUT/bench.txt"
