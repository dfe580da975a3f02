#!/usr/bin/env bash
# Device machine: run one of the scripts/device-*.sh runners on the committed tree rather than on
# the copied working tree (which a helper may be editing here). Here first:
#   git archive --format=tar.gz -o .cudaparity/src.tar.gz HEAD -- CMakeLists.txt cmake kernels \
#     runtime scripts test compiler dialects tools bench frontends examples/hw examples/configs
# then on the device (carry [".cudaparity", ".devdeps"] and ".hybench" for the benchmark):
#   bash scripts/device/from-archive.sh scripts/device-cuda-parity.sh
#   VARIANTS="gpu-int4-all" bash scripts/device/from-archive.sh scripts/device-hybrid-bench.sh --model dsv2
# The tool returns at most 8 files of $OUT: everything is also packed into $OUT/all.tgz.
set -u
R=$(cd "$(dirname "$0")/../.." && pwd)
[ -f "$R/.cudaparity/src.tar.gz" ] || { echo "no .cudaparity/src.tar.gz: make it here first" >&2; exit 1; }
rm -rf /tmp/src && mkdir -p /tmp/src /tmp/deps && tar -xzf "$R/.cudaparity/src.tar.gz" -C /tmp/src
ln -sfn "$R/.cudaparity" /tmp/src/.cudaparity
[ -d "$R/.hybench" ] && ln -sfn "$R/.hybench" /tmp/src/.hybench
cp -r "$R/.devdeps" /tmp/src/.devdeps
cd /tmp/src
for f in .devdeps/*.deb; do dpkg -x "$f" /tmp/deps; done
[ -f /tmp/ktc/build.ninja ] || cmake -S scripts/device -B /tmp/ktc -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DDEPS=/tmp/deps -DKT_GEN=/tmp/src/.cudaparity/gen > "$OUT/cmake.txt" 2>&1 ||
  { tail -20 "$OUT/cmake.txt"; exit 1; }
bash "$@"
rc=$?
(cd "$OUT" && tar czf all.tgz --exclude=all.tgz . 2>/dev/null)
exit $rc
