#!/usr/bin/env bash
# Prediction vs measurement for CPU plans on this machine (docs/cost-model.md, "Accuracy"):
#   1. kt-rt probe measures the machine into a hardware profile right before each model's runs,
#      so that prediction and measurement see the same neighbours on a shared machine (or
#      --profile FILE uses one profile for all);
#   2. each model is compiled with kt-compile --hw PROFILE --explain-json: predicted prefill and
#      decode tok/s;
#   3. kt-rt bench runs the same plan RUNS times: measured tok/s (median, min, max);
#   4. a markdown table of both and the error (predicted / measured - 1) is printed.
# The cost model is never tuned to these numbers: it only sees the probe's profile.
#
#   scripts/check-cost-model.sh [--build DIR] [--profile hw.json] [--runs 3] [--threads 2]
#                               [--prompt-len 128[,512,2048]] [--gen-len 32] [--work DIR]
#                               [--no-synth | --synth-only] [--dsv2-layers 3]
# Models: examples/austen-moe at --cpu-quant f32/int8/int4 (unless --synth-only), and (unless
# --no-synth) kt-synth checkpoints of real shapes: DeepSeek-V2-Lite with 3 layers (or
# --dsv2-layers; int8, int4) and Qwen3-30B-A3B with 2 layers (int4), written once into the work
# folder (~7 GB of disk at 3 layers, ~1.1 GB more per DeepSeek layer). Each model is compiled and
# measured at every prompt length of --prompt-len (one probe per model).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build
PROFILE=""
RUNS=3
THREADS=2
PROMPTS=128
GEN=32
WORK=${TMPDIR:-/tmp}/kt-cost-check
SYNTH=1
AUSTEN=1
DSV2_LAYERS=3
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) BUILD=$2; shift 2 ;;
    --profile) PROFILE=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --prompt-len) PROMPTS=$2; shift 2 ;;
    --gen-len) GEN=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --no-synth) SYNTH=0; shift ;;
    --synth-only) AUSTEN=0; shift ;;
    --dsv2-layers) DSV2_LAYERS=$2; shift 2 ;;
    -h|--help) sed -n 2,18p "$0"; exit 0 ;;
    *) echo "check-cost-model.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
KTC=$BUILD/tools/kt-compile/kt-compile
KTRT=$BUILD/tools/kt-rt/kt-rt
SYN=$BUILD/tools/kt-synth/kt-synth
PY=/usr/bin/python3
for t in "$KTC" "$KTRT"; do
  [[ -x $t ]] || { echo "check-cost-model.sh: $t not built (ninja -C $BUILD kt-compile kt-rt kt-synth)" >&2; exit 1; }
done
mkdir -p "$WORK"

FIXED_PROFILE=$PROFILE

# name|model dir|--cpu-quant
MODELS=()
[[ $AUSTEN == 1 ]] && MODELS+=("austen-moe|$ROOT/examples/austen-moe|f32"
                                "austen-moe|$ROOT/examples/austen-moe|int8"
                                "austen-moe|$ROOT/examples/austen-moe|int4")
if [[ $SYNTH == 1 ]]; then
  [[ -x $SYN ]] || { echo "check-cost-model.sh: $SYN not built (or pass --no-synth)" >&2; exit 1; }
  DSV2=$WORK/dsv2lite-${DSV2_LAYERS}l
  if [[ ! -f $DSV2/config.json ]]; then
    echo "== kt-synth DeepSeek-V2-Lite, $DSV2_LAYERS layers" >&2
    "$SYN" "$ROOT/examples/configs/deepseek-v2-lite.json" "$DSV2" --layers "$DSV2_LAYERS" -q
  fi
  if [[ ! -f $WORK/qwen3-2l/config.json ]]; then
    echo "== kt-synth Qwen3-30B-A3B, 2 layers" >&2
    "$SYN" "$ROOT/examples/configs/qwen3-30b-a3b.json" "$WORK/qwen3-2l" --layers 2 -q
  fi
  MODELS+=("DeepSeek-V2-Lite ${DSV2_LAYERS}L|$DSV2|int8"
           "DeepSeek-V2-Lite ${DSV2_LAYERS}L|$DSV2|int4"
           "Qwen3-30B-A3B 2L|$WORK/qwen3-2l|int4")
fi

RESULTS=$WORK/results.jsonl
: > "$RESULTS"
for entry in "${MODELS[@]}"; do
  IFS='|' read -r name dir quant <<< "$entry"
  mtag=$(echo "$name-$quant" | tr ' ' '_')
  PROFILE=$FIXED_PROFILE
  if [[ -z $PROFILE ]]; then
    PROFILE=$WORK/$mtag.probe.json
    echo "== $name --cpu-quant $quant: kt-rt probe $(date -u +%T)" >&2
    "$KTRT" probe --threads "$THREADS" --name probed -q -o "$PROFILE"
  fi
  for PROMPT in ${PROMPTS//,/ }; do
    tag=$mtag-p$PROMPT
    plan=$WORK/$tag.ktplan
    echo "== $name --cpu-quant $quant, prompt $PROMPT $(date -u +%T)" >&2
    "$KTC" "$dir" -o "$plan" --cpu-quant "$quant" --hw "$PROFILE" --prompt-len "$PROMPT" \
      --explain-json "$WORK/$tag.explain.json" > "$WORK/$tag.compile.log" 2>&1 ||
      { cat "$WORK/$tag.compile.log" >&2; exit 1; }
    : > "$WORK/$tag.bench.jsonl"
    load=$(cut -d' ' -f1 /proc/loadavg)
    for ((r = 0; r < RUNS; r++)); do
      "$KTRT" bench "$plan" --prompt-len "$PROMPT" --gen-len "$GEN" --threads "$THREADS" --reps 2 \
        --json 2>/dev/null | tail -1 >> "$WORK/$tag.bench.jsonl"
    done
    "$PY" - "$name" "$quant" "$WORK/$tag.explain.json" "$WORK/$tag.bench.jsonl" "$load" \
      "$PROFILE" "$PROMPT" >> "$RESULTS" <<'EOF'
import json, statistics, sys
name, quant, explain, bench, load, profile, prompt = sys.argv[1:8]
bw = json.load(open(profile))["cpu"]["numa_nodes"][0]["bandwidth_gbs"]
pred = json.load(open(explain))["predicted"]
runs = [json.loads(l) for l in open(bench) if l.strip()]
pre = [r["prefill_tok_s"] for r in runs]
dec = [r["decode_tok_s"] for r in runs]
print(json.dumps({"model": name, "quant": quant, "prompt": int(prompt),
                  "pred_prefill": pred["prefill_tokens_per_second"],
                  "pred_decode": pred["decode_tokens_per_second"],
                  "prefill": [statistics.median(pre), min(pre), max(pre)],
                  "decode": [statistics.median(dec), min(dec), max(dec)],
                  "load": float(load), "probe_gbs": bw,
                  "bench_gbs": statistics.median(r["read_bandwidth_gbs"] for r in runs)}))
EOF
  done
done

"$PY" - "$RESULTS" "${FIXED_PROFILE:-probed before each model}" "$RUNS" "$THREADS" "$PROMPTS" \
  "$GEN" <<'EOF'
import json, sys
results, profile, runs, threads, prompt, gen = sys.argv[1:7]
print(f"profile: {profile}; {threads} threads; prefill {prompt} tokens, decode {gen} tokens; "
      f"measured = median of {runs} kt-rt bench runs [min-max]; load = 1-minute load average "
      f"before the runs; GB/s = the profile's bandwidth_gbs and kt-rt bench's own read "
      f"bandwidth (median of its runs)\n")
print("| model | --cpu-quant | P | prefill predicted | prefill measured | error | "
      "decode predicted | decode measured | error | load | GB/s probe / bench |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
errs = {"prefill": [], "decode": []}
for line in open(results):
    r = json.loads(line)
    cells = []
    for k in ("prefill", "decode"):
        pred, (med, lo, hi) = r["pred_" + k], r[k]
        err = pred / med - 1 if med > 0 else float("nan")
        errs[k].append(abs(err))
        cells += [f"{pred:.0f}", f"{med:.0f} [{lo:.0f}-{hi:.0f}]", f"{err:+.0%}"]
    cells.append(f"{r.get('load', float('nan')):.1f}")
    cells.append(f"{r.get('probe_gbs', 0):.0f} / {r.get('bench_gbs', 0):.0f}")
    print(f"| {r['model']} | {r['quant']} | {r.get('prompt', '')} | " + " | ".join(cells) + " |")
for k, v in errs.items():
    if v:
        within = sum(e <= 0.25 for e in v)
        print(f"\n{k}: {within}/{len(v)} within 25%, mean |error| {sum(v) / len(v):.0%}", end="")
print()
EOF
