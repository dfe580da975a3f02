#!/bin/bash
# Session 12, device call 6: kt-rt serve over a GPU plan (the demo model compiled here with
# --device gpu:0): greedy completions over HTTP, whole and streamed, beside kt-rt run on the same
# plan and examples/austen-moe/reference.json.
set -u
. "$(dirname "$0")/../scripts/device/call-common.sh"
[ -e /work/main ] || { mkdir -p /work && ln -s "$R" /work/main; } # the plan's absolute weight path
/tmp/ktc/kt-rt run .s12/austen-gpu.ktplan -p "In the beginning" -n 32 --ignore-eos > $OUT/run.txt 2> $OUT/run-err.txt
echo "run rc=$?"; cat $OUT/run.txt; echo; tail -2 $OUT/run-err.txt
/tmp/ktc/kt-rt serve .s12/austen-gpu.ktplan --port 0 2> $OUT/serve.txt &
SP=$!
for i in $(seq 50); do grep -q "127.0.0.1:" $OUT/serve.txt && break; sleep 0.2; done
PORT=$(grep -o "127.0.0.1:[0-9]*" $OUT/serve.txt | cut -d: -f2)
python3 - "$PORT" <<'PY'
import json, sys, time, urllib.request
port = sys.argv[1]
ref = json.load(open("examples/austen-moe/reference.json"))
def post(path, body):
    r = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode())
    t = time.time(); raw = urllib.request.urlopen(r).read().decode(); return time.time() - t, raw
ok = 0
for g in ref["greedy"]:
    want = g["text"][len(g["prompt"]):]
    body = {"prompt": g["prompt"], "max_tokens": 32, "temperature": 0, "ignore_eos": True}
    dt, raw = post("/v1/completions", body)
    got = json.loads(raw)["choices"][0]["text"]
    body["stream"] = True
    _, raw = post("/v1/completions", body)
    streamed = "".join(json.loads(l[6:])["choices"][0]["text"] for l in raw.split("\n\n")
                       if l.startswith("data: {"))
    ok += got == want and streamed == want
    print(f"{g['prompt']!r}: whole {'==' if got == want else '!='} reference, streamed "
          f"{'==' if streamed == want else '!='} reference, {dt*1000:.0f} ms")
    if got != want: print("  got:", repr(got), "\n  want:", repr(want))
print(f"{ok} of {len(ref['greedy'])} prompts equal the reference text")
_, raw = post("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8, "seed": 3})
print("chat:", raw[:300])
PY
kill $SP; wait $SP 2>/dev/null
cat $OUT/serve.txt
