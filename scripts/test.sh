#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: installs what it needs, builds, runs ctest
# (GoogleTest unit + end-to-end parity tests and the lit/FileCheck tests of the dialect).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
BUILD_DIR="${KT_BUILD_DIR:-build}"
ctest --test-dir "${BUILD_DIR}" --output-on-failure -j "${KT_JOBS:-$(nproc)}"
