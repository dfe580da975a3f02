#!/usr/bin/env bash
# Installs dependencies (apt-get, idempotent) and builds KT into ./build (Release, Ninja).
#   KT_BUILD_DIR   build folder (default: build)
#   KT_JOBS        parallel jobs (default: number of cores)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
BUILD_DIR="${KT_BUILD_DIR:-build}"
JOBS="${KT_JOBS:-$(nproc)}"
start=$(date +%s)
echo "[kt] configuring ${BUILD_DIR}"
cmake -S . -B "${BUILD_DIR}" -G Ninja -DCMAKE_BUILD_TYPE=Release ${KT_CMAKE_ARGS:-} > "${BUILD_DIR}.configure.log" 2>&1 ||
  { cat "${BUILD_DIR}.configure.log"; exit 1; }
echo "[kt] building with ${JOBS} jobs"
cmake --build "${BUILD_DIR}" -j "${JOBS}"
echo "[kt] build finished in $(( $(date +%s) - start ))s"
