#!/usr/bin/env python3
"""GPT-2 encoding in Python with the `regex` module (the regex engine GPT-2's
own encoder uses), for checking the C tokenizer where gpt-3-encoder (JavaScript)
reads \s differently (U+0085, U+FEFF).  Written for this project's tests.

Usage: python3 gpt2_regex_reference.py < texts.json > cases.jsonl
(texts.json: a JSON array of strings; needs python3-regex)."""
import os
HERE = os.path.dirname(os.path.abspath(__file__))
import json, regex, sys
enc = json.load(open(os.path.join(HERE, 'vocab.json')))
lines = open(os.path.join(HERE, 'merges.txt'), encoding='utf-8').read().split('\n')[1:-1]
ranks = {tuple(l.split()): i for i, l in enumerate(lines)}
bs = list(range(ord('!'), ord('~')+1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
cs = bs[:]; n = 0
for b in range(256):
    if b not in bs: bs.append(b); cs.append(256+n); n += 1
b2u = dict(zip(bs, map(chr, cs)))
pat = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
def bpe(tok):
    word = list(tok)
    while len(word) > 1:
        pairs = [(ranks.get((word[i], word[i+1]), 1e18), i) for i in range(len(word)-1)]
        r, _ = min(pairs)
        if r == 1e18: break
        a, b = lines[int(r)].split()
        out = []; i = 0
        while i < len(word):
            if i < len(word)-1 and word[i] == a and word[i+1] == b: out.append(a+b); i += 2
            else: out.append(word[i]); i += 1
        word = out
    return word
def encode(text):
    ids = []
    for t in pat.findall(text):
        ids += [enc[x] for x in bpe(''.join(b2u[c] for c in t.encode('utf-8')))]
    return ids

if __name__ == "__main__":
    for t in json.load(sys.stdin):
        print(json.dumps({"text": t, "ids": encode(t)}, ensure_ascii=False))
