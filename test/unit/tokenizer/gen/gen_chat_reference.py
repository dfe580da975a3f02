#!/usr/bin/env python3
"""Writes ../chat_reference.json: the fixture chat templates rendered by Jinja2 the way transformers'
apply_chat_template renders them (sandboxed environment, trim_blocks, lstrip_blocks, loopcontrols),
for conversations beyond the single one in reference.json. Dev-only; the C++ test reads the JSON.
    python3 gen_chat_reference.py ../chat_reference.json
"""
import json
import os
import sys

import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

F = os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../../fixtures/tokenizers/')

def render(cfg, messages, gen):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    def raise_exception(m): raise Exception(m)
    env.globals['raise_exception'] = raise_exception
    env.filters['tojson'] = lambda x, **kw: json.dumps(x)
    tok = lambda k: (cfg.get(k)['content'] if isinstance(cfg.get(k), dict) else cfg.get(k))
    t = env.from_string(cfg['chat_template'])
    return t.render(messages=messages, tools=None, documents=None, add_generation_prompt=gen,
                    bos_token=tok('bos_token'), eos_token=tok('eos_token'), unk_token=tok('unk_token'), pad_token=tok('pad_token'))

convs = [
  [{"role": "user", "content": "Hi"}],
  [{"role": "system", "content": "  Be brief.\n"}, {"role": "user", "content": "  Hello there  \n"}, {"role": "assistant", "content": "Hi! How can I help?"}, {"role": "user", "content": "Tell me a joke."}],
  [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n4"}, {"role": "user", "content": "and 3+3?"}, {"role": "assistant", "content": "<think>\nsimple\n</think>\n\n6"}],
  [{"role": "system", "content": "A"}, {"role": "system", "content": "B"}, {"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
  [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": "calling"}, {"role": "tool", "content": "sunny"}, {"role": "tool", "content": "20C"}, {"role": "assistant", "content": "It is sunny."}],
  [{"role": "user", "content": "<tool_response>\nx\n</tool_response>"}, {"role": "assistant", "content": "ok"}],
  [{"role": "user", "content": "Unicode: 混合专家 😀 ｜"}],
  [],
]
out = {}
for name in ['qwen3', 'deepseek_v3', 'llama3']:
    cfg = json.load(open(F + name + '/tokenizer_config.json'))
    cases = []
    for c in convs:
        for gen in (True, False):
            try:
                text = render(cfg, c, gen)
            except Exception:
                continue  # the template rejects this conversation (e.g. Qwen3 with no messages)
            cases.append({"messages": c, "add_generation_prompt": gen, "text": text})
    out[name] = cases
json.dump(out, open(sys.argv[1], 'w'), ensure_ascii=False, indent=1)
