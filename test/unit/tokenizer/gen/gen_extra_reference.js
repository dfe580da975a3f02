// Writes ../extra_reference.json: Hugging Face tokenizers' own output (npm package "tokenizers",
// the Rust library's Node binding, 0.23.2 as in test/fixtures) for inputs harder than the fixtures':
// added tokens inside text, NFC, Unicode spaces, long words, byte fallback, corpus excerpts.
//   cd /tmp && npm install tokenizers@0.23.2 && \
//   NODE_PATH=/tmp/node_modules node gen_extra_reference.js ../extra_reference.json
// (run from this folder; corpora from ../../../../../shared/corpus, i.e. /work/shared/corpus).
const { Tokenizer } = require('tokenizers');
const fs = require('fs');
const path = require('path');
const F = path.join(__dirname, '../../../fixtures/tokenizers/');
const CORPUS = process.env.KT_CORPUS_DIR || '/work/shared/corpus';
const austen = fs.readFileSync(path.join(CORPUS, 'austen_all.txt'), 'utf8');
const bible = fs.readFileSync(path.join(CORPUS, 'web_bible.txt'), 'utf8');
const texts = [
  "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
  "<think>\nLet me think.\n</think>\n\nThe answer is 42.",
  "<s>Hello</s> world <unk> and <s> again</s>",
  "\uff5cbegin\u2581of\u2581sentence\uff5c <\uff5cbegin\u2581of\u2581sentence\uff5c>Hi<\uff5cUser\uff5c>x<\uff5cAssistant\uff5c>y<\uff5cend\u2581of\u2581sentence\uff5c>",
  "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
  "e\u0301 cafe\u0301 \u212b \u1e9b\u0323 A\u030a\u0327 q\u0307\u0323",
  "\u1100\u1161\u11a8 \u1100\u1161 \ud55c\uad6d\uc5b4",
  "   \n\n   \t\t  x  \n \r\n\r\n  ",
  "a".repeat(300),
  "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
  "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35 \u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!",
  "1234567890 \u0661\u0662\u0663\u0664 \u2167 \u00bd 3.14e-10 0x1F 1,234,567.89",
  "\u00a0\u2003\u3000x\u2028y\u0085z \u180e!",
  "don't DON'T 'quoted' I'LL We'Re it's 'S",
  "\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67\u200d\ud83d\udc66 \ud83c\udff3\ufe0f\u200d\ud83c\udf08 \ud83d\udc4d\ud83c\udffd x\u20e3 \ud83e\udd72",
  "Tab\there\u000bvt\u000cff",
  "int main() {\n\tprintf(\"%d\\n\", a[i] >= 0 ? a[i] : -a[i]);\n\treturn 0; // done\n}\n",
  "<<s>> <s<s>> </s/> <|im_end|<|im_end|>> <think></think>",
  "\u2581\u2581already metaspace\u2581 <0x41> \u0120G",
  austen.slice(2000, 6000),
  bible.slice(10000, 13000),
  austen.slice(100000, 120000),
];
(async () => {
  const out = {};
  for (const name of ['qwen3', 'deepseek_v3', 'llama3', 'mistral']) {
    const tok = Tokenizer.fromFile(F + name + '/tokenizer.json');
    const cases = [];
    for (const text of texts) {
      const ids = Array.from((await tok.encode(text, null, { addSpecialTokens: false })).getIds());
      const ws = Array.from((await tok.encode(text, null, { addSpecialTokens: true })).getIds());
      const dec = await tok.decode(ids, false);
      const decSkip = await tok.decode(ws, true);
      cases.push({ text, ids, ids_with_special: ws, decoded: dec, decoded_skip_special: decSkip });
    }
    out[name] = cases;
  }
  out.generator = 'HF tokenizers 0.23.2 (npm package "tokenizers"), gen/gen_extra_reference.js';
  fs.writeFileSync(process.argv[2], JSON.stringify(out));
})();
