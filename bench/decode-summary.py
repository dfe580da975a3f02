#!/usr/bin/env python3
"""Summary table of a bench/decode-device.sh log (decode.txt): per (format, prompt length, binary)
the medians over the rounds of decode tok/s, the bench's read-bandwidth probe, each run's fraction
of the roofline (and its range), the pooled fraction (median decode / roofline of the median probe)
and the per-op decode ms/token of --profile.   usage: bench/decode-summary.py decode.txt"""
import json,sys,re,statistics as st
rows={}
hdr=None; prof={}
for line in open(sys.argv[1]):
    if line.startswith('=='):
        m=re.match(r'== (\w+) (\w+) P=(\d+)',line); hdr=m.groups() if m else None; prof={}
    elif line.startswith('decode/'):
        f=line.split(); prof[f[0][7:]]=float(f[3])
    elif line.startswith('{') and hdr:
        j=json.loads(line); rows.setdefault(hdr,[]).append((j,dict(prof)))
print("| plan | P | binary | runs | decode tok/s (median) | probe GB/s (median) | roofline tok/s | decode/roofline median of runs (min-max) | pooled | MoE / MLA / lm_head / dense MLP ms/token |")
print("|---|---|---|---|---|---|---|---|---|---|")
for q in ['int4','int8']:
  for P in ['128','512']:
    for b in ['base','new']:
      r=rows.get((b,q,P));
      if not r: continue
      d=[x[0]['decode_tok_s'] for x in r]; bw=[x[0]['read_bandwidth_gbs'] for x in r]; fr=[x[0]['decode_fraction_of_roofline'] for x in r]
      B=r[0][0]['active_weight_bytes_per_token']
      roof=st.median(bw)*1e9/B
      p=lambda k: st.median([x[1].get(k,0) for x in r])
      print(f"| {q} | {P} | {b} | {len(r)} | {st.median(d):.2f} | {st.median(bw):.2f} | {roof:.1f} | {st.median(fr)*100:.1f}% ({min(fr)*100:.0f}-{max(fr)*100:.0f}%) | {st.median(d)/roof*100:.1f}% | {p('moe'):.2f} / {p('mla_attention'):.2f} / {p('lm_head'):.2f} / {p('mlp'):.2f} |")
