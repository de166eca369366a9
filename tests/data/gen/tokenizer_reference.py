"""Reference encodings from Hugging Face `tokenizers` for tests/tokenizer/test_hf_parity.cpp.

    python3 tests/data/gen/tokenizer_reference.py tests/data/tokenizer/tokenizer.json \
        tests/data/tokenizer/hf_reference.json

Loads our tokenizer.json with tokenizers.Tokenizer.from_file (so the file format itself is
checked), encodes every string below with and without special tokens, decodes the ids back,
and writes {"tokenizers_version", "vocab_size", "cases": [{"text", "ids", "ids_with_bos",
"decoded", "pretokens"}]} (pretokens: HF's pre-tokenizer split, in byte-level spelling). The C++ test requires our encoder to give the same ids and our decoder the same
text.

The tokenizer.json it reads was trained by
    dsv3 tokenizer train --vocab 800 --out tests/data/tokenizer/tokenizer.json \
        --corpus docs/*.md lessons/*.md <the first 25,000 bytes of corpus/{ru,de,zh,es,python}.train.txt>
(commit 22ee270); only the trained file is committed. Invalid UTF-8 cannot be a Python str, so
those cases live in the C++ tests only.
"""
import json
import sys

import tokenizers
from tokenizers import Tokenizer

CASES = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you're right: they've said it'll work, he'd known, it's John's.",
    "DON'T SHOUT, IT'S LOUD; 'S 'T 'RE",
    "''s ' 's'S 'll've",
    "don\u2019t (a typographic apostrophe)",
    "  two leading spaces",
    "trailing spaces   ",
    "multiple   spaces   between    words",
    "   ",
    " ",
    "",
    "line one\nline two\n\n\nline three\n",
    "windows\r\nline endings\r\n\r\n",
    "  \n  x\n\t\ty",
    "def f(x):\n\tif x:\n\t\treturn x * 2\n    else:\n        return None\n",
    'int main(void) {\n  printf("%d\\n", 42);\n  return 0;\n}\n',
    "for (int i = 0; i < n; ++i) a[i] += b[i] * 2.5f;",
    "3.14159 1,000,000 2024-05-01 0x1F 1e-9",
    "abc123def 42nd 3rd x2 2x",
    "\u00bd \u00b2 \u0663 \u2167 \u2460",
    "Gr\u00f6\u00dfenwahn ist eine Stra\u00dfenbahn \u00fcber die Br\u00fccke.",
    "\u0421\u044a\u0435\u0448\u044c \u0436\u0435 \u0435\u0449\u0451 \u044d\u0442\u0438\u0445 "
    "\u043c\u044f\u0433\u043a\u0438\u0445 \u0444\u0440\u0430\u043d\u0446\u0443\u0437\u0441\u043a"
    "\u0438\u0445 \u0431\u0443\u043b\u043e\u043a, \u0434\u0430 \u0432\u044b\u043f\u0435\u0439 "
    "\u0447\u0430\u044e.",
    "\u00bfD\u00f3nde est\u00e1 la biblioteca? \u00a1Ma\u00f1ana ser\u00e1 otro d\u00eda!",
    "\u6df1\u5ea6\u6c42\u7d22\u53d1\u5e03\u4e86\u4e00\u4e2a\u6df7\u5408\u4e13\u5bb6\u6a21\u578b"
    "\u3002\u4f60\u597d\uff0c\u4e16\u754c\uff01",
    "\u4eca\u65e5\u306f\u826f\u3044\u5929\u6c17\u3067\u3059\u306d\u3002\u30ab\u30bf\u30ab\u30ca",
    "\uc548\ub155\ud558\uc138\uc694 \uc138\uacc4",
    "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "I \u2764\ufe0f \U0001f980 and \U0001f469\u200d\U0001f4bb \U0001f1e9\U0001f1ea!!",
    "e\u0301 cafe\u0301 na\u00efve",
    "Wait... what?!?! (yes) [no] {maybe} <tag/> --flag",
    "a\u00a0b\u3000c\u2003d\u0085e\u000b\u000cf",
    "a\u200bb zero\u200bwidth",
    "## Heading\n\n- item one\n- item `code`\n\n| a | b |\n|---|---|\n",
    "https://example.com/path?q=1&r=2#frag",
    "x\u00b2 + y\u00b2 = z\u00b2, \u2211\u1d62 a\u1d62 \u2264 \u221e, \u03b1\u2192\u03b2",
    "MLA's KV cache: 70KB/token vs. 516KB (7.4x smaller).",
    "\u0001\u0002\u001e\u007f control",
    "  123  456 ",
    "\u4e2d" * 40 + "\u6587" * 3,
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "the the the the, The THE tHe",
]


def main():
    tok = Tokenizer.from_file(sys.argv[1])
    cases = []
    for text in CASES:
        ids = tok.encode(text, add_special_tokens=False).ids
        ids_bos = tok.encode(text).ids
        decoded = tok.decode(ids)
        if decoded != text:
            print(f"HF decode differs: {text!r} -> {decoded!r}")
        words = [w for w, _ in tok.pre_tokenizer.pre_tokenize_str(text)]
        cases.append({"text": text, "ids": ids, "ids_with_bos": ids_bos, "decoded": decoded,
                      "pretokens": words})
    out = {
        "tokenizers_version": tokenizers.__version__,
        "vocab_size": tok.get_vocab_size(),
        "cases": cases,
    }
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"tokenizers {tokenizers.__version__}: {len(cases)} cases written to {sys.argv[2]}")


if __name__ == "__main__":
    main()
