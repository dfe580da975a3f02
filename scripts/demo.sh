#!/usr/bin/env bash
# The demo: sets up (apt-get + build), compiles the bundled model (examples/austen-moe, a trained
# DeepSeek-V2-architecture MoE with 16 routed experts) into a plan, shows what the plan holds and
# streams English continuations with kt-rt.
#   ./scripts/demo.sh ["Your prompt"]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
BUILD_DIR="${KT_BUILD_DIR:-build}"
PLAN="${BUILD_DIR}/austen-moe.ktplan"
KT_RT="${BUILD_DIR}/tools/kt-rt/kt-rt"
echo
"${BUILD_DIR}/tools/kt-compile/kt-compile" examples/austen-moe -o "${PLAN}"
"${KT_RT}" inspect "${PLAN}"
echo
if [ $# -gt 0 ]; then
  "${KT_RT}" run "${PLAN}" -p "$1" -n 64 --temperature 0.7 --top-p 0.9 --seed 1
else
  for prompt in "It is a truth universally acknowledged" "Emma Woodhouse was" "In the beginning"; do
    "${KT_RT}" run "${PLAN}" -p "${prompt}" -n 48 --temperature 0.7 --top-p 0.9 --repetition-penalty 1.1 --seed 1
    echo
  done
fi
