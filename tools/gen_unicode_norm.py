#!/usr/bin/env python3
"""Writes src/Runtime/Tokenizers/Unicode/normalization.txt.gz: the Unicode data that NFC/NFD/NFKC/NFKD need,
taken from Python's unicodedata (the runtime runs with InvariantGlobalization, where string.Normalize is a
no-op beyond ASCII). Hangul syllables are left out: they are (de)composed algorithmically.

Lines (hex code points):
  c <cp> <ccc>                 canonical combining class, when not 0
  d <cp> <cp> <cp>...          full canonical decomposition (NFD of the single code point), when it differs
  k <cp> <cp> <cp>...          full compatibility decomposition (NFKD), when it differs from the NFD one
  p <a> <b> <composite>        a primary composition pair used by NFC/NFKC

With --cases it also writes tests/ModelCompiler.Tests/Data/tokenizers/normalization_cases.json: seeded random
strings (decomposable characters, combining marks, Hangul jamo, supplementary characters) with their four
normal forms, which the tests compare UnicodeNormalizer against.
"""
import gzip, json, random, sys, unicodedata

out = []
out.append(f"# unicodedata {unicodedata.unidata_version}")
def is_hangul(cp): return 0xAC00 <= cp <= 0xD7A3
for cp in range(0x110000):
    if 0xD800 <= cp <= 0xDFFF: continue
    ch = chr(cp)
    ccc = unicodedata.combining(ch)
    if ccc: out.append(f"c {cp:X} {ccc}")
    if is_hangul(cp): continue
    nfd = unicodedata.normalize("NFD", ch)
    nfkd = unicodedata.normalize("NFKD", ch)
    if nfd != ch: out.append("d %X " % cp + " ".join("%X" % ord(c) for c in nfd))
    if nfkd != nfd: out.append("k %X " % cp + " ".join("%X" % ord(c) for c in nfkd))
    dec = unicodedata.decomposition(ch)
    if dec and not dec.startswith("<"):
        parts = [int(x, 16) for x in dec.split()]
        if len(parts) == 2 and unicodedata.normalize("NFC", chr(parts[0]) + chr(parts[1])) == ch:
            out.append(f"p {parts[0]:X} {parts[1]:X} {cp:X}")
data = ("\n".join(out) + "\n").encode()
path = "src/Runtime/Tokenizers/Unicode/normalization.txt.gz"
with gzip.GzipFile(path, "wb", mtime=0) as f: f.write(data)
print(path, len(data), "bytes raw")

if "--cases" in sys.argv:
    random.seed(1234)
    decomp = [c for c in range(0x110000) if not (0xD800 <= c <= 0xDFFF) and unicodedata.decomposition(chr(c))]
    marks = [c for c in range(0x110000) if not (0xD800 <= c <= 0xDFFF) and unicodedata.combining(chr(c))]
    plain = list(range(0x20, 0x7F)) + [0xE9, 0x4E2D, 0x1F600, 0x20000, 0x1100, 0x1161, 0x11A8, 0xAC00, 0xD55C]
    cases = ["\ufb01 caf\u00e9 \u2460  \uff21 \u01c5 e\u0301 \u0130 \u03a3", "\u212b \u00c5 A\u030a", "\u1e9b\u0323",
             "a\u0328\u0301\u0328", "\u0958\u093c", "\ud55c\uad6d\uc5b4 \u1100\u1161\u11a8 \u1100\u1161",
             "\uff28\uff45\uff4c\uff4c\uff4f\u3000\uff37", "\u00bd \u00b2 \u338f \u210c \u2122 \u2026",
             "Vi\u1ec7t Nam", "o\u0308\u0304 u\u0308\u0301", "A\u030a\u0301", "\U0001d400\U0001d7ce",
             "e\u0301\u0327", "\u00c5\u0327", "\u0ccb", "\u0ddd"]
    for _ in range(1500):
        n = random.randint(1, 6)
        cases.append("".join(chr(random.choice(random.choice([decomp, decomp, marks, plain]))) for _ in range(n)))
    out = [{"text": t, "nfc": unicodedata.normalize("NFC", t), "nfd": unicodedata.normalize("NFD", t),
            "nfkc": unicodedata.normalize("NFKC", t), "nfkd": unicodedata.normalize("NFKD", t)} for t in cases]
    cases_path = "tests/ModelCompiler.Tests/Data/tokenizers/normalization_cases.json"
    with open(cases_path, "w") as f:
        json.dump({"unicodedata": unicodedata.unidata_version, "cases": out}, f, ensure_ascii=True)
    print(cases_path, len(out), "cases")
