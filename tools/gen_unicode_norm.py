#!/usr/bin/env python3
"""Writes src/Runtime/Tokenizers/Unicode/normalization.txt.gz: the Unicode data that NFC/NFD/NFKC/NFKD need,
taken from Python's unicodedata (the runtime runs with InvariantGlobalization, where string.Normalize is a
no-op beyond ASCII). Hangul syllables are left out: they are (de)composed algorithmically.

Lines (hex code points):
  c <cp> <ccc>                 canonical combining class, when not 0
  d <cp> <cp> <cp>...          full canonical decomposition (NFD of the single code point), when it differs
  k <cp> <cp> <cp>...          full compatibility decomposition (NFKD), when it differs from the NFD one
  p <a> <b> <composite>        a primary composition pair used by NFC/NFKC
"""
import gzip, sys, unicodedata

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
path = sys.argv[1] if len(sys.argv) > 1 else "src/Runtime/Tokenizers/Unicode/normalization.txt.gz"
with gzip.GzipFile(path, "wb", mtime=0) as f: f.write(data)
print(path, len(data), "bytes raw")
