# Sourced by a device call script (`docs/device/s12/calls/call-N.sh` and later sessions'), run
# on the device machine from a staging folder at the repository root (e.g. `.s13/`, carried with
# `.hybench` and `.devdeps`; the staging folder holds the flatc header as `gen/`, a copy of
# `.cudaparity/gen` made by scripts/device-cuda-plans.sh here). Links the tree at /tmp/src,
# unpacks the .debs of .devdeps, configures and builds $TARGETS (default kt-rt, kt-synth and
# kt_bench_moe; e.g. TARGETS=kt_cuda_test for the CUDA tests) in /tmp/ktc (kept between calls on a
# warm machine), and defines `probe NAME`: kt-rt probe into
# $OUT/NAME.json, printing the CPU's bandwidth, op overhead, pool wake-up and prefill attention
# (a disturbed machine shows there first: docs/cost-model.md, twelfth device run).
STAGE=$(cd "$(dirname "$0")" && pwd)
R=$(cd "$STAGE/.." && pwd)
rm -rf /tmp/src && mkdir -p /tmp/deps && ln -sfn "$R" /tmp/src
[ -L "$R/.cudaparity" ] && rm -f "$R/.cudaparity"
mkdir -p "$R/.cudaparity" && rm -rf "$R/.cudaparity/gen" && cp -r "$STAGE/gen" "$R/.cudaparity/gen"
for f in "$R"/.devdeps/*.deb; do dpkg -x "$f" /tmp/deps; done
cd /tmp/src
[ -e /lib/x86_64-linux-gnu/libudev.so.1 ] || [ -e /usr/lib/x86_64-linux-gnu/libudev.so.1 ] ||
  export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu
SECONDS=0
[ -f /tmp/ktc/build.ninja ] || cmake -S scripts/device -B /tmp/ktc -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DDEPS=/tmp/deps -DKT_GEN=/tmp/src/.cudaparity/gen > $OUT/cmake.txt 2>&1 ||
  { tail -20 $OUT/cmake.txt; exit 1; }
ninja -C /tmp/ktc -j16 ${TARGETS:-kt-rt kt-synth kt_bench_moe} > $OUT/build.txt 2>&1 ||
  { tail -30 $OUT/build.txt; exit 1; }
echo "build ${SECONDS}s"
probe() { # NAME
  timeout 150 /tmp/ktc/kt-rt probe -o $OUT/$1.json > $OUT/$1.txt 2>&1
  echo "$1 rc=$? ${SECONDS}s"
  python3 -c "import json; c=json.load(open('$OUT/$1.json'))['cpu']; print(c['numa_nodes'][0]['bandwidth_gbs'], c['op_overhead_us'], c['pool_wake_us'], c.get('prefill_attention_gflops'))"
}
