#!/usr/bin/python3
"""A header-only checkpoint for cost-model work: the tensor names and shapes of
`kt-synth CONFIG --dry-run --list` (read on stdin) written as one sparse
model.safetensors (the data region is a hole: a 31 GB model takes under 1 MB of
disk) plus the config. kt-compile / kt-opt only read headers and the config to
partition and predict (--explain, --explain-json, --emit-mlir); the weights
are all zero, so never run the result.

  kt-synth examples/configs/deepseek-v2-lite.json --dry-run --list \\
    | scripts/sparse-checkpoint.py examples/configs/deepseek-v2-lite.json /tmp/dsv2lite
"""
import json
import os
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: kt-synth CONFIG --dry-run --list | sparse-checkpoint.py CONFIG OUT_DIR")
    config, out = sys.argv[1], sys.argv[2]
    header, offset = {}, 0
    for line_no, line in enumerate(sys.stdin, 1):
        # "model.layers.0.self_attn.q_proj.weight [3072, 2048] linear"
        if " [" not in line:
            continue
        name, rest = line.split(" [", 1)
        try:
            shape = [int(x) for x in rest.split("]", 1)[0].split(",")]
        except ValueError:
            sys.exit(f"stdin line {line_no}: cannot read the shape of '{name}': {line.strip()}")
        count = 1
        for d in shape:
            count *= d
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + 2 * count]}
        offset += 2 * count
    if not header:
        sys.exit("stdin: no tensors (expected the output of kt-synth --dry-run --list)")
    os.makedirs(out, exist_ok=True)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        f.truncate(8 + len(text) + offset)  # the data: a hole
    with open(config) as f:
        cfg = json.load(f)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    print(f"{len(header)} tensors, {offset / 1e9:.2f} GB of bf16 data (sparse) -> {out}")


if __name__ == "__main__":
    main()
