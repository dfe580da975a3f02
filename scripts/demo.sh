#!/usr/bin/env bash
# The demo: sets up, compiles the bundled model (examples/austen-moe, a trained DeepSeek-V2-style
# MoE) into a plan, inspects it and generates a continuation with kt-rt.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
BUILD_DIR="${KT_BUILD_DIR:-build}"
PLAN="${BUILD_DIR}/austen-moe.ktplan"
echo
"${BUILD_DIR}/tools/kt-compile/kt-compile" examples/austen-moe -o "${PLAN}"
"${BUILD_DIR}/tools/kt-rt/kt-rt" inspect "${PLAN}"
echo
"${BUILD_DIR}/tools/kt-rt/kt-rt" generate "${PLAN}" --ids 1,560,272,5398 -n 32 --json
