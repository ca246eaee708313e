using System.IO.Compression;
using System.Text;

namespace ModelCompiler.Runtime.Tokenizers.Unicode;

/// <summary>The four Unicode normalization forms.</summary>
public enum NormalizationKind { Nfc, Nfd, Nfkc, Nfkd }

/// <summary>
/// Unicode normalization (NFC, NFD, NFKC, NFKD) in managed code. The solution builds with
/// <c>InvariantGlobalization</c>, where <see cref="string.Normalize()"/> leaves non-ASCII text as it is, so
/// tokenizers (whose NFKC normalizers must change text exactly as Hugging Face's do) use this instead. The
/// data is <c>normalization.txt.gz</c>, made by <c>tools/gen_unicode_norm.py</c> from Python's
/// <c>unicodedata</c>; Hangul syllables are handled algorithmically.
/// </summary>
public static class UnicodeNormalizer
{
    private sealed class Tables
    {
        public readonly Dictionary<int, byte> Ccc = new();
        public readonly Dictionary<int, int[]> Canonical = new();
        public readonly Dictionary<int, int[]> Compat = new();
        public readonly Dictionary<long, int> Compose = new();
    }

    private static readonly Lazy<Tables> Data = new(LoadTables);

    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private static Tables LoadTables()
    {
        var t = new Tables();
        using var raw = typeof(UnicodeNormalizer).Assembly.GetManifestResourceStream("ModelCompiler.Runtime.Tokenizers.Unicode.normalization.txt.gz")
            ?? throw new InvalidOperationException("the Unicode normalization data is missing from ModelCompiler.Runtime");
        using var gz = new GZipStream(raw, CompressionMode.Decompress);
        using var reader = new StreamReader(gz, Encoding.ASCII);
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            if (line.Length == 0 || line[0] == '#') continue;
            var parts = line.Split(' ');
            int cp = Convert.ToInt32(parts[1], 16);
            switch (parts[0])
            {
                case "c": t.Ccc[cp] = byte.Parse(parts[2]); break;
                case "d": t.Canonical[cp] = parts[2..].Select(p => Convert.ToInt32(p, 16)).ToArray(); break;
                case "k": t.Compat[cp] = parts[2..].Select(p => Convert.ToInt32(p, 16)).ToArray(); break;
                case "p": t.Compose[((long)cp << 21) | (uint)Convert.ToInt32(parts[2], 16)] = Convert.ToInt32(parts[3], 16); break;
            }
        }
        return t;
    }

    /// <summary>The canonical combining class of a code point (0 for starters).</summary>
    public static int CombiningClass(int cp) => Data.Value.Ccc.TryGetValue(cp, out var c) ? c : 0;

    public static string Normalize(string s, NormalizationKind kind)
    {
        if (IsAscii(s)) return s;
        // ASCII is invariant under every form, never reorders and is never the second half of a composition:
        // copy ASCII runs and normalize only the rest, each piece with the ASCII character before it (which may
        // compose with what follows) and ending before an ASCII character followed by ASCII or the end.
        var sb = new StringBuilder(s.Length + 8);
        int i = 0, n = s.Length;
        while (i < n)
        {
            int j = i;
            while (j < n && s[j] < 0x80) j++;
            if (j == n) { sb.Append(s, i, n - i); break; }
            int segStart = j > i ? j - 1 : j;
            sb.Append(s, i, segStart - i);
            int k = j;
            while (k < n && !(s[k] < 0x80 && (k + 1 == n || s[k + 1] < 0x80))) k++;
            sb.Append(NormalizeSegment(s.Substring(segStart, k - segStart), kind));
            i = k;
        }
        return sb.ToString();
    }

    private static string NormalizeSegment(string s, NormalizationKind kind)
    {
        bool compat = kind is NormalizationKind.Nfkc or NormalizationKind.Nfkd;
        bool compose = kind is NormalizationKind.Nfc or NormalizationKind.Nfkc;
        var t = Data.Value;

        // 1. Full decomposition.
        var cps = new List<int>(s.Length + 8);
        foreach (var rune in s.EnumerateRunes())
        {
            int cp = rune.Value;
            if (cp >= SBase && cp < SBase + SCount)
            {
                int si = cp - SBase;
                cps.Add(LBase + si / NCount);
                cps.Add(VBase + si % NCount / TCount);
                if (si % TCount != 0) cps.Add(TBase + si % TCount);
            }
            else if (compat && t.Compat.TryGetValue(cp, out var k)) cps.AddRange(k);
            else if (t.Canonical.TryGetValue(cp, out var d)) cps.AddRange(d);
            else cps.Add(cp);
        }

        // 2. Canonical ordering: a stable sort of each run of non-starters by combining class.
        for (int i = 0; i < cps.Count; i++)
        {
            if (CombiningClass(cps[i]) == 0) continue;
            int j = i;
            while (j < cps.Count && CombiningClass(cps[j]) != 0) j++;
            if (j - i > 1)
            {
                var run = cps.GetRange(i, j - i).Select((c, n) => (c, n)).OrderBy(x => CombiningClass(x.c)).ThenBy(x => x.n).Select(x => x.c).ToList();
                for (int m = 0; m < run.Count; m++) cps[i + m] = run[m];
            }
            i = j;
        }

        // 3. Canonical composition.
        if (compose && cps.Count > 1)
        {
            // lastClass: the class of the last character kept after the current starter, -1 when none.
            int starter = -1, lastClass = -1, write = 0;
            for (int read = 0; read < cps.Count; read++)
            {
                int c = cps[read];
                int cc = CombiningClass(c);
                if (starter >= 0 && (lastClass == -1 || lastClass < cc))
                {
                    int composed = ComposePair(t, cps[starter], c);
                    if (composed >= 0) { cps[starter] = composed; continue; }
                }
                if (cc == 0) { starter = write; lastClass = -1; }
                else lastClass = cc;
                cps[write++] = c;
            }
            cps.RemoveRange(write, cps.Count - write);
        }

        var result = new StringBuilder(cps.Count + 4);
        foreach (int cp in cps) result.AppendRune(new Rune(cp));
        return result.ToString();
    }

    private static int ComposePair(Tables t, int a, int b)
    {
        if (a >= LBase && a < LBase + LCount && b >= VBase && b < VBase + VCount)
            return SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
        if (a >= SBase && a < SBase + SCount && (a - SBase) % TCount == 0 && b > TBase && b < TBase + TCount)
            return a + (b - TBase);
        return t.Compose.TryGetValue(((long)a << 21) | (uint)b, out var c) ? c : -1;
    }

    private static bool IsAscii(string s)
    {
        foreach (char c in s) if (c >= 0x80) return false;
        return true;
    }
}
