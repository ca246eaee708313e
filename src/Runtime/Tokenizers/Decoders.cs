using System.Text;
using ModelCompiler.Runtime.Tokenizers.Unicode;

namespace ModelCompiler.Runtime.Tokenizers;

/// <summary>Turns token strings back into text pieces (Hugging Face's decode_chain); the text is their concatenation.</summary>
public interface IDecoder
{
    List<string> DecodeChain(List<string> tokens);
}

/// <summary>Maps byte-level characters back to bytes and the bytes to UTF-8 text (invalid sequences become U+FFFD).</summary>
public sealed class ByteLevelDecoder : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (var t in tokens)
            if (!ByteLevelAlphabet.TryDecode(t, bytes)) bytes.AddRange(Encoding.UTF8.GetBytes(t));
        return [Encoding.UTF8.GetString(bytes.ToArray())];
    }
}

/// <summary>Replacement characters become spaces; in the first token they are dropped unless the prepend scheme is "never".</summary>
public sealed class MetaspaceDecoder(char replacement, bool prepended) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
        {
            var sb = new StringBuilder(tokens[i].Length);
            foreach (char c in tokens[i])
            {
                if (c == replacement) { if (!(i == 0 && prepended)) sb.Append(' '); }
                else sb.Append(c);
            }
            result.Add(sb.ToString());
        }
        return result;
    }
}

/// <summary>WordPiece: continuation pieces lose their prefix, others get a leading space; optional cleanup
/// of spaces before punctuation and contractions.</summary>
public sealed class WordPieceDecoder(string prefix, bool cleanup) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
        {
            var t = tokens[i];
            if (i != 0) t = prefix.Length > 0 && t.StartsWith(prefix, StringComparison.Ordinal) ? t[prefix.Length..] : " " + t;
            if (cleanup) t = Cleanup(t);
            result.Add(t);
        }
        return result;
    }

    internal static string Cleanup(string s) => s.Replace(" .", ".").Replace(" ?", "?").Replace(" !", "!").Replace(" ,", ",")
        .Replace(" ' ", "'").Replace(" n't", "n't").Replace(" 'm", "'m").Replace(" do not", " don't").Replace(" 's", "'s")
        .Replace(" 've", "'ve").Replace(" 're", "'re");
}

/// <summary>The BPE decoder: the end-of-word suffix becomes a space (none after the last token).</summary>
public sealed class BpeSuffixDecoder(string suffix) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens) =>
        tokens.Select((t, i) => t.Replace(suffix, i == tokens.Count - 1 ? "" : " ")).ToList();
}

/// <summary>Runs of &lt;0xXX&gt; tokens become their UTF-8 text (each byte U+FFFD when invalid).</summary>
public sealed class ByteFallbackDecoder : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var pending = new List<byte>();
        void Flush()
        {
            if (pending.Count == 0) return;
            var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
            try { result.Add(strict.GetString(pending.ToArray())); }
            catch (DecoderFallbackException) { foreach (var _ in pending) result.Add("\uFFFD"); }
            pending.Clear();
        }
        foreach (var t in tokens)
        {
            if (TryByte(t, out byte b)) { pending.Add(b); continue; }
            Flush();
            result.Add(t);
        }
        Flush();
        return result;
    }

    internal static bool TryByte(string t, out byte b)
    {
        b = 0;
        return t.Length == 6 && t.StartsWith("<0x", StringComparison.Ordinal) && t[5] == '>'
            && byte.TryParse(t.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out b);
    }
}

/// <summary>Joins all tokens into one.</summary>
public sealed class FuseDecoder : IDecoder
{
    public List<string> DecodeChain(List<string> tokens) => [string.Concat(tokens)];
}

/// <summary>Removes up to <c>start</c> leading and <c>stop</c> trailing copies of a character from each token.</summary>
public sealed class StripDecoder(char content, int start, int stop) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens) => tokens.Select(t =>
    {
        int a = 0, b = t.Length;
        for (int i = 0; i < start && a < b && t[a] == content; i++) a++;
        for (int i = 0; i < stop && b > a && t[b - 1] == content; i++) b--;
        return t[a..b];
    }).ToList();
}

/// <summary>Replaces a literal or regex in each token.</summary>
public sealed class ReplaceDecoder(string? literal, CodePointRegex? regex, string content) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens) => tokens.Select(t => ReplaceNormalizer.Apply(t, literal, regex, content)).ToList();
}

/// <summary>CTC: collapse repeats, drop the pad token, replace the word delimiter by a space.</summary>
public sealed class CtcDecoder(string padToken, string wordDelimiter, bool cleanup) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>();
        string? prev = null;
        foreach (var t in tokens)
        {
            if (t == prev) continue;
            prev = t;
            if (t == padToken) continue;
            var s = t.Replace(wordDelimiter, " ");
            if (cleanup) s = WordPieceDecoder.Cleanup(s).Replace(wordDelimiter, " ");
            if (s.Length > 0) result.Add(s);
        }
        return result;
    }
}

public sealed class SequenceDecoder(IReadOnlyList<IDecoder> steps) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        foreach (var s in steps) tokens = s.DecodeChain(tokens);
        return tokens;
    }
}
