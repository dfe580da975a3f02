#!/usr/bin/env bash
# Prepares, on the development machine, what scripts/device-cuda-parity.sh needs on the device
# machine (which has no compiler build, no flatc and no Debian packages):
#   .cudaparity/hf/MODEL/      each fixture's config, weights and HF reference (copied)
#   .cudaparity/plans/         MODEL.{gpu,hybrid,bf16,int8,hybridq,split,splitq,int4,split4}.ktplan compiled against
#                              copies (hybridq: CPU experts packed int8, sidecar beside it), and
#                              MODEL.{offload,offloadq,offload4,splitoff}.ktplan (not llama): plans
#                              whose prefill streams the CPU experts to the GPU (--prefill-offload
#                              always; offloadq: CPU experts packed int8; offload4: --gpu-quant int4;
#                              splitoff: the split layers of `split`, streamed)
#   .cudaparity/gen/           plan_generated.h (flatc) for the device's runtime build
#   .devdeps/*.deb             gtest, flatbuffers, nlohmann-json, hwloc, pcre2, udev (apt-get download)
# The plans record absolute weight paths under $ROOT/.cudaparity; the device script links that
# path to its own checkout. Both folders are git-ignored: pass carry [".cudaparity", ".devdeps"].
# Usage: scripts/device-cuda-plans.sh [KT_COMPILE] [--bench]
#        (KT_COMPILE default build-c/tools/kt-compile/kt-compile; kt-synth beside it in the build)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KTC=$ROOT/build-c/tools/kt-compile/kt-compile
if [ $# -ge 1 ] && [ "$1" != --bench ]; then KTC=$1; fi
FIX=${KT_FIXTURES:-/work/shared/fixtures}
D=$ROOT/.cudaparity
HW=$ROOT/examples/hw/xeon-2s-rtx4090.json
rm -rf "$D"
mkdir -p "$D/hf" "$D/plans" "$D/gen/runtime/schema"
for m in llama mixtral qwen3_moe deepseek_v2 deepseek_v2_yarn deepseek_v3; do
  mkdir -p "$D/hf/$m"
  cp "$FIX/hf/$m/"*.json "$FIX/hf/$m/model.safetensors" "$FIX/hf/$m/reference.safetensors" "$D/hf/$m/"
  # hybrid: everything on the GPU except the routed experts (llama has none: its MLPs instead).
  cpu='\.experts=cpu:numa0'
  [ "$m" = llama ] && cpu='\.mlp\.=cpu:numa0'
  "$KTC" "$D/hf/$m" -o "$D/plans/$m.gpu.ktplan" --device gpu:0
  "$KTC" "$D/hf/$m" -o "$D/plans/$m.bf16.ktplan" --device gpu:0 --dtype bf16
  "$KTC" "$D/hf/$m" -o "$D/plans/$m.hybrid.ktplan" --hw "$HW" \
    --placement-override '.=gpu:0' --placement-override "$cpu"
  "$KTC" "$D/hf/$m" -o "$D/plans/$m.int8.ktplan" --device gpu:0 --gpu-quant int8
  "$KTC" "$D/hf/$m" -o "$D/plans/$m.hybridq.ktplan" --hw "$HW" --cpu-quant int8 \
    --placement-override '.=gpu:0' --placement-override "$cpu"
  # split layers: experts 0-3 on the CPU (split), or 4.. on the CPU packed int8 (splitq)
  s1='experts\.[0-3]\.=cpu:numa0' s2='experts\.([4-9]|1[0-9])\.=cpu:numa0'
  [ "$m" = llama ] && s1=$cpu s2=$cpu
  "$KTC" "$D/hf/$m" -o "$D/plans/$m.split.ktplan" --hw "$HW" \
    --placement-override '.=gpu:0' --placement-override "$s1"
  "$KTC" "$D/hf/$m" -o "$D/plans/$m.splitq.ktplan" --hw "$HW" --cpu-quant int8 \
    --placement-override '.=gpu:0' --placement-override "$s2"
  # weight-only int4 on the GPU: everything there (int4), and split layers as split (split4)
  "$KTC" "$D/hf/$m" -o "$D/plans/$m.int4.ktplan" --device gpu:0 --gpu-quant int4
  "$KTC" "$D/hf/$m" -o "$D/plans/$m.split4.ktplan" --hw "$HW" --gpu-quant int4 \
    --placement-override '.=gpu:0' --placement-override "$s1"
  # prefill offload (docs/cuda.md, "Streaming CPU-held experts"): hybrid plans that stream the
  # CPU's experts to the GPU for every prefill and keep them on the CPU for decode
  if [ "$m" != llama ]; then
    off=(--hw "$HW" --prefill-offload always --placement-override '.=gpu:0' --placement-override "$cpu")
    "$KTC" "$D/hf/$m" -o "$D/plans/$m.offload.ktplan" "${off[@]}"
    "$KTC" "$D/hf/$m" -o "$D/plans/$m.offloadq.ktplan" "${off[@]}" --cpu-quant int8
    "$KTC" "$D/hf/$m" -o "$D/plans/$m.offload4.ktplan" "${off[@]}" --gpu-quant int4
    # split layers (experts 0-3 on the CPU, streamed; 4.. resident on the GPU)
    "$KTC" "$D/hf/$m" -o "$D/plans/$m.splitoff.ktplan" --hw "$HW" --prefill-offload always \
      --placement-override '.=gpu:0' --placement-override "$s1"
  fi
done
# --bench: plans of the kt-synth DeepSeek-V2-Lite checkpoint (31 GB, written to /tmp/kt-bench and
# removed again; the device regenerates the same bytes there) for scripts/device-cuda-bench.sh.
if [ "${2:-${1:-}}" = --bench ]; then
  M=/tmp/kt-bench/dsv2lite
  SYNTH=$(dirname "$KTC")/../kt-synth/kt-synth
  mkdir -p "$D/bench"
  "$SYNTH" "$ROOT/examples/configs/deepseek-v2-lite.json" "$M" --dtype bf16 -q
  # Only the GPU-only plan computes in bf16: --dtype bf16 on CPU-placed weights packs a sidecar as
  # large as the checkpoint (PLAN.weights), which the device can neither receive nor rebuild. The
  # CPU-only and hybrid plans compute in f32 over the unpacked bf16 checkpoint.
  "$KTC" "$M" -o "$D/bench/dsv2lite.gpu.ktplan" --device gpu:0 --dtype bf16
  "$KTC" "$M" -o "$D/bench/dsv2lite.cpu.ktplan"
  "$KTC" "$M" -o "$D/bench/dsv2lite.hybrid.ktplan" --hw "$HW" \
    --placement-override '.=gpu:0' --placement-override '\.experts=cpu:numa0'
  # Plans placed by the cost model with the device's measured profile (docs/cost-model.md, "GPU and
  # hybrid plans on the device machine"), their predictions in bench/explain/. The probe saw only
  # 8.5 GiB of CPU memory on the device's VM (128 GiB in truth), hence --cpu-mem. The hybrid plan
  # is compiled with --prefill-offload never: the runtime did not stream experts to the GPU then,
  # so the prediction must be of what it runs (the default `auto` prediction is kept beside it).
  MHW=$ROOT/examples/hw/device-h100-xeon-measured.json
  X=$D/bench/explain
  mkdir -p "$X"
  "$KTC" "$M" -o "$D/bench/dsv2lite.cm-gpu.ktplan" --hw "$MHW" --gpu-mem unlimited --dtype bf16 \
    --prompt-len 512 --explain-json "$X/gpu.json"
  "$KTC" "$M" -o "$D/bench/dsv2lite.cm-hybrid.ktplan" --hw "$MHW" --gpu-mem 8GiB --cpu-mem 100GiB \
    --prompt-len 512 --prefill-offload never --explain-json "$X/hybrid-never.json"
  "$KTC" "$M" -o /dev/null --hw "$MHW" --gpu-mem 8GiB --cpu-mem 100GiB --prompt-len 512 \
    --explain-json "$X/hybrid.json"
  "$KTC" "$M" -o "$D/bench/dsv2lite.cm-cpu.ktplan" --hw "$MHW" --gpu-mem 0 --cpu-mem 100GiB \
    --prompt-len 128 --explain-json "$X/cpu.json"
  if compgen -G "$D/bench/*.weights" > /dev/null; then
    echo "unexpected packed sidecar in $D/bench" >&2
    exit 1
  fi
  rm -rf "$M"
fi
flatc --cpp --gen-object-api --gen-compare --scoped-enums -o "$D/gen/runtime/schema" \
  "$ROOT/runtime/schema/plan.fbs"
mkdir -p "$ROOT/.devdeps"
(cd "$ROOT/.devdeps" && apt-get download libgtest-dev libflatbuffers-dev nlohmann-json3-dev \
  libhwloc-dev libpcre2-dev libudev1 2>/dev/null)
du -sh "$D" "$ROOT/.devdeps"
