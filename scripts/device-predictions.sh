#!/usr/bin/env bash
# The cost model's predictions for the device benchmark's plans (scripts/device-hybrid-bench.sh),
# from a given hardware profile, and optionally the table against a measurement.
#   scripts/device-predictions.sh HW.json OUT_DIR [KT_BUILD]
#       compiles each plan of the benchmark (dsv2 and qwen3: gpu-bf16-all, gpu-int8-all,
#       gpu-int4-all, hybrid8g at prompt 512 and 2048, cpu-int8 at 512) against `kt-synth
#       --layout-only` checkpoints with --hw HW.json --explain-json OUT_DIR/M.V.pP.json. The
#       placement flags are the benchmark's own (the placement of each plan is also printed as a
#       digest, to check that a plan compiled from another profile places every unit alike).
#       STATS=FILE: the all-GPU plans (whose placement expert stats cannot change) are compiled
#       with --expert-stats FILE as well (e.g. the synthetic DeepSeek-V2-Lite's routing,
#       docs/device/s11/g-synthetic-routing/): the grouped MoE priced by the layers' skew; the
#       stats' layer count must match the model's (dsv2 only: qwen3 compiles without).
#       EXTRA_qwen3_hybrid8g='--placement-override mlp\.gate\.weight=gpu:0' (any model and
#       variant): more kt-compile flags for that plan — to predict the placement that was
#       measured when this profile's partition places the plan otherwise (compare the digests).
#   scripts/device-predictions.sh --table OUT_DIR MEASURED
#       prints predicted vs measured prefill and decode tok/s and the count within 25%. MEASURED:
#       the benchmark's directory of M-V-pP.json files, or its log (hybench.txt, or a call's
#       stdout that tee'd it: "== M-V-pP ..." then "rc=0 {json}" lines), which survives when the
#       device returns too many files to fetch them all.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [ "${1:-}" = --table ]; then
  exec /usr/bin/python3 - "$2" "$3" <<'PY'
import json, os, sys
pred_dir, meas_dir = sys.argv[1], sys.argv[2]
rows, inside = [], [0, 0, 0, 0]
# A log instead of a directory: each "== NAME HH:MM:SS: kt-rt bench ..." line names the JSON of
# the next "rc=0 {...}" line.
logged = {}
if os.path.isfile(meas_dir):
    name = None
    for line in open(meas_dir):
        if line.startswith('== '):
            name = line.split()[1]
        elif line.startswith('rc=0 {') and name:
            logged[name] = line[len('rc=0 '):].strip()
            name = None
for name in sorted(os.listdir(pred_dir)):
    if not name.endswith('.json') or name.count('.') != 3:
        continue
    m, v, p, _ = name.split('.')
    try:
        if os.path.isfile(meas_dir):
            if f'{m}-{v}-{p}' not in logged:
                continue
            got = json.loads(logged[f'{m}-{v}-{p}'])
        else:
            meas = os.path.join(meas_dir, f'{m}-{v}-{p}.json')
            if not os.path.exists(meas):
                continue
            got = json.load(open(meas))
    except ValueError:
        continue
    pr = json.load(open(os.path.join(pred_dir, name)))['predicted']
    cells = [f'{m} {v}', p[1:]]
    for key, col in (('prefill_tokens_per_second', 'prefill_tok_s'),
                     ('decode_tokens_per_second', 'decode_tok_s')):
        a, b = pr[key], got[col]
        err = (a - b) / b * 100
        i = 0 if key.startswith('prefill') else 2
        inside[i] += abs(err) <= 25
        inside[i + 1] += 1
        cells += [f'{a:.1f} / {b:.1f}', ('**%+.0f%%**' if abs(err) <= 25 else '%+.0f%%') % err]
    rows.append('| ' + ' | '.join(cells) + ' |')
print('| plan | P | prefill tok/s pred. / meas. | error | decode tok/s pred. / meas. | error |')
print('|---|---|---|---|---|---|')
print('\n'.join(rows))
print(f'\nWithin 25%: prefill {inside[0]} of {inside[1]}, decode {inside[2]} of {inside[3]}')
PY
fi
HW=$1
OUTD=$2
B=$ROOT/${3:-build}
KTC=$B/tools/kt-compile/kt-compile
CK=/tmp/kt-bench/pred
mkdir -p "$OUTD"
for m in dsv2 qwen3; do
  cfg=examples/configs/deepseek-v2-lite.json layers=27
  [ $m = qwen3 ] && cfg=examples/configs/qwen3-30b-a3b.json layers=48
  rm -rf "$CK-$m"
  "$B/tools/kt-synth/kt-synth" "$cfg" "$CK-$m" --dtype bf16 --seed 0 --layers $layers \
    --layout-only -q > /dev/null
  for v in gpu-bf16-all gpu-int8-all gpu-int4-all hybrid8g cpu-int8; do
    case $v in
    gpu-bf16-all) a=(--gpu-mem unlimited --dtype bf16 --placement-override '.*=gpu:0') ;;
    gpu-int8-all) a=(--gpu-mem unlimited --gpu-quant int8 --placement-override '.*=gpu:0') ;;
    gpu-int4-all) a=(--gpu-mem unlimited --gpu-quant int4 --placement-override '.*=gpu:0') ;;
    hybrid8g) a=(--gpu-mem 8GiB --dtype bf16 --cpu-quant int8 --pack-later) ;;
    cpu-int8) a=(--gpu-mem 0 --cpu-quant int8 --pack-later) ;;
    esac
    for P in 512 2048; do
      [ $v = cpu-int8 ] && [ $P = 2048 ] && continue
      j=$OUTD/$m.$v.p$P.json
      st=()
      [ -n "${STATS:-}" ] && [ $m = dsv2 ] && [[ $v == gpu-*-all ]] && st=(--expert-stats "$STATS")
      # EXTRA_<model>_<variant> (dashes as underscores): more flags for that plan, e.g. a
      # --placement-override that places it as the measured plan (same digest) where this
      # profile's partition would place it otherwise.
      extra_var=EXTRA_${m}_${v//-/_}
      read -r -a extra <<< "${!extra_var:-}"
      st+=("${extra[@]}")
      "$KTC" "$CK-$m" -o /tmp/kt-bench/pred.ktplan --hw "$HW" --cpu-mem 100GiB \
        --prefill-offload never --prompt-len $P "${a[@]}" "${st[@]}" --explain-json "$j" > /tmp/kt-bench/pred.log 2>&1 ||
        { cat /tmp/kt-bench/pred.log; exit 1; }
      /usr/bin/python3 -c "
import hashlib, json, sys
d = json.load(open(sys.argv[1]))
place = json.dumps([[r['layer'], r['group'], r['device'], r['weight_bytes']] for r in d['rows']])
p = d['predicted']
print('%-24s P=%-5s prefill %8.1f decode %6.1f  placement %s' % (sys.argv[2], sys.argv[3],
      p['prefill_tokens_per_second'], p['decode_tokens_per_second'],
      hashlib.sha1(place.encode()).hexdigest()[:12]))" "$j" "$m.$v" $P
    done
  done
  rm -rf "$CK-$m" /tmp/kt-bench/pred.ktplan
done
