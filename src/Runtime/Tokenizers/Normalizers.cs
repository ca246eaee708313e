using System.Globalization;
using System.Text;
using ModelCompiler.Runtime.Tokenizers.SentencePiece;
using ModelCompiler.Runtime.Tokenizers.Unicode;

namespace ModelCompiler.Runtime.Tokenizers;

/// <summary>A text-to-text step applied before pre-tokenization (Hugging Face's normalizers).</summary>
public interface INormalizer
{
    string Normalize(string text);
}

public sealed class UnicodeFormNormalizer(NormalizationKind kind) : INormalizer
{
    public NormalizationKind Kind { get; } = kind;
    public string Normalize(string text) => UnicodeNormalizer.Normalize(text, Kind);
}

public sealed class LowercaseNormalizer : INormalizer
{
    public string Normalize(string text) => CharInfo.ToLower(text);
}

/// <summary>Removes combining marks (use after NFD/NFKD to strip accents).</summary>
public sealed class StripAccentsNormalizer : INormalizer
{
    public string Normalize(string text) => StripMarks(text);

    internal static string StripMarks(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (var r in text.EnumerateRunes()) if (!CharInfo.IsMark(r.Value)) sb.AppendRune(r);
        return sb.ToString();
    }
}

/// <summary>Removes leading and/or trailing whitespace.</summary>
public sealed class StripNormalizer(bool left, bool right) : INormalizer
{
    public string Normalize(string text)
    {
        int start = 0, end = text.Length;
        if (left) while (start < end) { var (cp, len) = CharInfo.At(text, start); if (!CharInfo.IsWhitespace(cp)) break; start += len; }
        if (right) while (end > start) { int i = char.IsLowSurrogate(text[end - 1]) && end - 2 >= start ? end - 2 : end - 1; var (cp, _) = CharInfo.At(text, i); if (!CharInfo.IsWhitespace(cp)) break; end = i; }
        return text[start..end];
    }
}

/// <summary>Replaces a literal string or every match of a regex.</summary>
public sealed class ReplaceNormalizer : INormalizer
{
    private readonly string? _literal;
    private readonly CodePointRegex? _regex;
    private readonly string _content;

    public ReplaceNormalizer(string? literal, CodePointRegex? regex, string content) { _literal = literal; _regex = regex; _content = content; }

    public string Normalize(string text) => Apply(text, _literal, _regex, _content);

    internal static string Apply(string text, string? literal, CodePointRegex? regex, string content)
    {
        if (literal is not null) return literal.Length == 0 ? text : text.Replace(literal, content, StringComparison.Ordinal);
        var matches = regex!.Matches(text);
        if (matches.Count == 0) return text;
        var sb = new StringBuilder(text.Length);
        int prev = 0;
        foreach (var (start, length) in matches)
        {
            sb.Append(text, prev, start - prev).Append(content);
            prev = start + length;
        }
        return sb.Append(text, prev, text.Length - prev).ToString();
    }
}

/// <summary>Prepends a string to non-empty text (SentencePiece-style "▁").</summary>
public sealed class PrependNormalizer(string prefix) : INormalizer
{
    public string Normalize(string text) => text.Length == 0 ? text : prefix + text;
}

public sealed class SequenceNormalizer(IReadOnlyList<INormalizer> steps) : INormalizer
{
    public IReadOnlyList<INormalizer> Steps { get; } = steps;
    public string Normalize(string text)
    {
        foreach (var s in Steps) text = s.Normalize(text);
        return text;
    }
}

/// <summary>BERT's normalizer: clean control characters and whitespace, space out CJK ideographs, strip
/// accents (by default when lower-casing) and lower-case.</summary>
public sealed class BertNormalizer(bool cleanText, bool handleChineseChars, bool? stripAccents, bool lowercase) : INormalizer
{
    public string Normalize(string text)
    {
        if (cleanText || handleChineseChars)
        {
            var sb = new StringBuilder(text.Length + 8);
            foreach (var r in text.EnumerateRunes())
            {
                int cp = r.Value;
                if (cleanText)
                {
                    if (cp == 0 || cp == 0xFFFD || CharInfo.IsBertControl(cp)) continue;
                    if (CharInfo.IsWhitespace(cp)) { sb.Append(' '); continue; }
                }
                if (handleChineseChars && CharInfo.IsChineseChar(cp)) sb.Append(' ').Append(r.ToString()).Append(' ');
                else sb.AppendRune(r);
            }
            text = sb.ToString();
        }
        if (stripAccents ?? lowercase) text = StripAccentsNormalizer.StripMarks(UnicodeNormalizer.Normalize(text, NormalizationKind.Nfd));
        if (lowercase) text = CharInfo.ToLower(text);
        return text;
    }
}

/// <summary>NMT cleanup: drops ASCII control characters and maps some spaces to ' '.</summary>
public sealed class NmtNormalizer : INormalizer
{
    public string Normalize(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (var r in text.EnumerateRunes())
        {
            int c = r.Value;
            if (c is >= 0x1 and <= 0x8 or 0xB or >= 0xE and <= 0x1F or 0x7F or 0x8F or 0x9F) continue;
            if (c is 0x9 or 0xA or 0xC or 0xD or 0x1680 or >= 0x200B and <= 0x200F or 0x2028 or 0x2029 or 0x2581 or 0xFEFF or 0xFFFD) sb.Append(' ');
            else sb.AppendRune(r);
        }
        return sb.ToString();
    }
}

/// <summary>Maps text to the byte-level alphabet (the ByteLevel normalizer).</summary>
public sealed class ByteLevelNormalizer : INormalizer
{
    public string Normalize(string text) => ByteLevelAlphabet.Encode(text);
}

/// <summary>A SentencePiece precompiled character map used as a Hugging Face normalizer ("Precompiled"):
/// applied per grapheme cluster as the spm_precompiled crate does.</summary>
public sealed class PrecompiledNormalizer(PrecompiledCharsMap map) : INormalizer
{
    public string Normalize(string text)
    {
        if (map.IsEmpty || text.Length == 0) return text;
        var sb = new StringBuilder(text.Length);
        int i = 0;
        while (i < text.Length)
        {
            int glen = StringInfo.GetNextTextElementLength(text.AsSpan(i));
            if (glen <= 0) glen = 1;
            var grapheme = text.AsSpan(i, glen);
            if (Encoding.UTF8.GetByteCount(grapheme) < 6 && map.Transform(grapheme) is { } whole) sb.Append(whole);
            else
            {
                for (int j = 0; j < glen;)
                {
                    var (_, len) = CharInfo.At(text, i + j);
                    var part = text.AsSpan(i + j, len);
                    if (map.Transform(part) is { } t) sb.Append(t); else sb.Append(part);
                    j += len;
                }
            }
            i += glen;
        }
        return sb.ToString();
    }
}
