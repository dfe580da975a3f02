#!/usr/bin/env bash
# End-to-end CPU decode of the 8-layer synthetic DeepSeek-V2-Lite (int4 / int8 plans) on the device
# machine's Xeon with 2 threads, before and after a change, in ONE call (the machine goes back soon
# after each call, and the dev VM is too loaded to time 2-thread decode: `cpu share` < 0.5).
#
# Here (once): plans without sidecars and the schema header, plus the baseline versions of the
# changed files, under build-cc/cpubench (git-ignored):
#   kt-compile /tmp/kt-n/dsv2l-8 -o build-cc/cpubench/plans/d8.int4.ktplan --cpu-quant int4 --pack-later
#   (same for int8), flatc ... -o build-cc/cpubench/gen/runtime/schema runtime/schema/plan.fbs,
#   build-cc/cpubench/base/<path> = the file as it was before the change.
# On the device (run tool, carry [".devdeps", "build-cc/cpubench"]):
#   OUT=$OUT [ROUNDS=3] bench/decode-device.sh [QUANTS] [PROMPTS]
# builds kt-rt twice (working tree -> /tmp/ktnew; working tree with base/ copied over ->
# /tmp/ktbase), regenerates the checkpoint the plans were compiled from (kt-synth, same config,
# seed and path), packs each plan's sidecar (kt-rt pack), then runs
#   kt-rt bench PLAN --prompt-len P --gen-len 32 --threads 2 --reps 2 --json --profile
# with both binaries, alternating, into $OUT/decode.txt.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${OUT:-/tmp/kt-decode-out}
QUANTS=${1:-"int4 int8"}
PROMPTS=${2:-"128 512"}
ROUNDS=${ROUNDS:-1} # alternating base/new runs per (format, prompt length)
G=$ROOT/build-cc/cpubench
CK=/tmp/kt-n/dsv2l-8 # the path the plans were compiled against
mkdir -p "$OUT" /tmp/deps
LOG=$OUT/decode.txt
SECONDS=0
for f in .devdeps/*.deb; do dpkg -x "$f" /tmp/deps; done
[ -e /lib/x86_64-linux-gnu/libudev.so.1 ] || [ -e /usr/lib/x86_64-linux-gnu/libudev.so.1 ] ||
  export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu
{ date -u; lscpu | head -20; } > "$OUT/machine.txt" 2>&1

rm -rf /tmp/base && mkdir -p /tmp/base
tar -C "$ROOT" --exclude=./build-cc -cf - . | tar -C /tmp/base -xf -
cp -r "$G/base/." /tmp/base/
# Device-copy-only fix while runtime/probe/NodeMemory.cpp (new) is missing from the device
# CMakeLists' explicit probe source list (owned elsewhere; the local tree is not touched).
for src in "$ROOT" /tmp/base; do
  [ -f "$src/runtime/probe/NodeMemory.cpp" ] &&
    ! grep -q NodeMemory "$src/scripts/device/CMakeLists.txt" &&
    sed -i 's|\${ROOT}/runtime/probe/ProfileJson.cpp|${ROOT}/runtime/probe/ProfileJson.cpp ${ROOT}/runtime/probe/NodeMemory.cpp|' \
      "$src/scripts/device/CMakeLists.txt"
done
build() { # SRC DIR
  cmake -S "$1/scripts/device" -B "$2" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDEPS=/tmp/deps \
    -DKT_GEN="$G/gen" && ninja -C "$2" -j 16 kt-rt kt-synth
}
build "$ROOT" /tmp/ktnew > "$OUT/build-new.txt" 2>&1 &
build /tmp/base /tmp/ktbase > "$OUT/build-base.txt" 2>&1 &
wait
for b in new base; do
  [ -x /tmp/kt$b/kt-rt ] || { echo "build $b failed"; tail -30 "$OUT/build-$b.txt"; exit 1; }
done
echo "builds: ${SECONDS} s" | tee -a "$LOG"

/tmp/ktnew/kt-synth examples/configs/deepseek-v2-lite.json "$CK" --layers 8 --seed 1 -q 2>&1 |
  tail -1 | tee -a "$LOG"
echo "synth: ${SECONDS} s" | tee -a "$LOG"
for q in $QUANTS; do
  plan=$G/plans/d8.$q.ktplan
  if [ $SECONDS -gt 420 ]; then
    echo "skipping $q: ${SECONDS} s used" | tee -a "$LOG"
    continue
  fi
  /tmp/ktnew/kt-rt pack "$plan" --threads 16 2>&1 | tail -1 | tee -a "$LOG"
  for p in $PROMPTS; do
    for r in $(seq "$ROUNDS"); do
      for b in base new; do
        echo "== $b $q P=$p round $r $(date -u +%T) load $(cut -d' ' -f1 /proc/loadavg)" |
          tee -a "$LOG"
        timeout 120 /tmp/kt$b/kt-rt bench "$plan" --prompt-len "$p" --gen-len 32 --threads 2 \
          --reps 2 --json --profile >> "$LOG" 2>&1
        tail -1 "$LOG"
      done
    done
  done
  rm -f "$plan.weights"
done
echo "== done ${SECONDS} s" | tee -a "$LOG"
