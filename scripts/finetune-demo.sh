#!/usr/bin/env bash
# LoRA fine-tuning demo (docs/fine-tuning.md): fine-tunes the bundled austen-moe model (a trained
# DeepSeek-V2-architecture MoE, bf16) on Moby Dick, which it has never seen, on the CPU, and shows
# the held-out loss before, during and after training.
#   1. the last ~10% of ../shared/corpus/mobydick.txt is held out; the rest becomes {"text"} lines
#   2. kt-compile --train lora: adapters on attention, the dense MLP, the shared and routed experts
#   3. kt-rt train: AdamW, warmup + cosine, packing into rows of SEQ tokens, checkpoints
#   4. each checkpoint is merged into a plan (kt-compile --adapter) and scored on the held-out text
#      with kt-rt perplexity — the same command that measures the untuned model
# Environment: STEPS (150) BATCH (4) SEQ (128) LR (3e-3) R (16) THREADS (2) SAVE_EVERY (30)
#              EVAL_CTX (256) EVAL_TOKENS (8192) TRAIN_QUANT (bf16) KT_BUILD_DIR (build)
#              OUT (BUILD_DIR/finetune-demo)
#              CORPUS (../shared/corpus/mobydick.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${KT_BUILD_DIR:-build}"
OUT="${OUT:-${BUILD_DIR}/finetune-demo}"
CORPUS="${CORPUS:-../shared/corpus/mobydick.txt}"
STEPS="${STEPS:-150}" BATCH="${BATCH:-4}" SEQ="${SEQ:-128}" LR="${LR:-3e-3}" R="${R:-16}"
THREADS="${THREADS:-2}" SAVE_EVERY="${SAVE_EVERY:-30}" EVAL_CTX="${EVAL_CTX:-256}"
EVAL_TOKENS="${EVAL_TOKENS:-8192}" TRAIN_QUANT="${TRAIN_QUANT-bf16}"
KT_COMPILE="${BUILD_DIR}/tools/kt-compile/kt-compile"
KT_RT="${BUILD_DIR}/tools/kt-rt/kt-rt"
MODEL=examples/austen-moe
for tool in "${KT_COMPILE}" "${KT_RT}"; do
  [ -x "${tool}" ] || { echo "missing ${tool}: run ./scripts/build.sh first" >&2; exit 1; }
done
mkdir -p "${OUT}"

# 1. Data: the book without Project Gutenberg's header and license, a line-aligned 90/10 split;
#    the training part as JSONL {"text"} pieces of up to ~2000 characters cut at paragraph ends
#    (each gets BOS ... EOS; --pack then fills rows of SEQ tokens).
sed -n '/^\*\*\* START OF/,/^\*\*\* END OF/p' "${CORPUS}" | sed '1d;$d' | tr -d '\r' > "${OUT}/book.txt"
lines=$(wc -l < "${OUT}/book.txt")
head -n $((lines * 9 / 10)) "${OUT}/book.txt" > "${OUT}/train.txt"
tail -n +$((lines * 9 / 10 + 1)) "${OUT}/book.txt" > "${OUT}/heldout.txt"
jq -R -s -c 'split("\n\n") | map(select(test("\\S"))) |
  reduce .[] as $p ([]; if (length > 0 and ((.[-1] | length) + ($p | length) < 2000))
                        then .[-1] += "\n\n" + $p else . + [$p] end) | .[] | {text: .}' \
  "${OUT}/train.txt" > "${OUT}/train.jsonl"
echo "data: $(wc -l < "${OUT}/train.jsonl") training pieces ($(wc -c < "${OUT}/train.txt") bytes), held out $(wc -c < "${OUT}/heldout.txt") bytes"

# 2. Plans: the untuned model, and the training plan.
"${KT_COMPILE}" "${MODEL}" -o "${OUT}/base.ktplan"
# The training plan packs the frozen matrices for the AVX-512/AMX bf16 kernels (the checkpoint is
# bf16, so nothing is rounded; activations enter those kernels as bf16): ~1.5x faster than the
# row-major path on this machine. TRAIN_QUANT="" trains on the row-major weights instead.
"${KT_COMPILE}" "${MODEL}" -o "${OUT}/train.ktplan" ${TRAIN_QUANT:+--cpu-quant "${TRAIN_QUANT}"} \
  --train lora --lora-r "${R}" \
  --lora-alpha $((2 * R)) \
  --lora-targets q_proj,kv_a_proj_with_mqa,kv_b_proj,o_proj,gate_proj,up_proj,down_proj \
  --lora-target-parameters gate_up_proj,down_proj

score() { # PLAN -> held-out loss (nats/token)
  "${KT_RT}" perplexity "$1" --text-file "${OUT}/heldout.txt" --ctx "${EVAL_CTX}" \
    --max-tokens "${EVAL_TOKENS}" --threads "${THREADS}" --json 2>/dev/null | jq -r .loss
}
echo "step loss" > "${OUT}/heldout-curve.txt"
echo "0 $(score "${OUT}/base.ktplan")" | tee -a "${OUT}/heldout-curve.txt"

# 3. Train (peak RSS from /usr/bin/time when it exists).
TIME=()
[ -x /usr/bin/time ] && TIME=(/usr/bin/time -v -o "${OUT}/train.time")
"${TIME[@]}" "${KT_RT}" train "${OUT}/train.ktplan" --data "${OUT}/train.jsonl" \
  --out "${OUT}/adapter" --steps "${STEPS}" --batch "${BATCH}" --max-seq-len "${SEQ}" --pack \
  --lr "${LR}" --warmup $((STEPS / 10)) --schedule cosine --clip 1 --seed 1 \
  --save-every "${SAVE_EVERY}" --log-json "${OUT}/train-log.jsonl" --threads "${THREADS}"
[ -f "${OUT}/train.time" ] && grep -E "Maximum resident|Elapsed" "${OUT}/train.time"

# 4. Held-out loss of each checkpoint and of the final adapter, merged into the weights.
for ckpt in $(ls -d "${OUT}"/adapter/checkpoint-* 2>/dev/null | sort -V) "${OUT}/adapter"; do
  step=$(jq -r .step "${ckpt}/trainer_state.json")
  "${KT_COMPILE}" "${MODEL}" -o "${OUT}/tuned-${step}.ktplan" --adapter "${ckpt}"
  echo "${step} $(score "${OUT}/tuned-${step}.ktplan")" | tee -a "${OUT}/heldout-curve.txt"
done
echo
echo "held-out loss (nats/token) by optimizer step:"
cat "${OUT}/heldout-curve.txt"
"${KT_RT}" run "${OUT}/tuned-${step}.ktplan" -p "Call me Ishmael." -n 40 --temperature 0.7 \
  --top-p 0.9 --seed 1 --threads "${THREADS}"
