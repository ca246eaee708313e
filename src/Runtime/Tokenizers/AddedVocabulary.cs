using ModelCompiler.Runtime.Tokenizers.Unicode;

namespace ModelCompiler.Runtime.Tokenizers;

/// <summary>A token matched in the text before the model runs (tokenizer.json's "added_tokens").</summary>
public sealed record AddedToken(int Id, string Content, bool SingleWord, bool LStrip, bool RStrip, bool Normalized, bool Special);

/// <summary>
/// Finds added tokens in text as Hugging Face's AddedVocabulary does: leftmost-longest matches, skipped
/// when single_word and not at word boundaries, widened over whitespace by lstrip/rstrip. Tokens with
/// normalized=false are matched in the raw text, the others in the normalized text.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly Dictionary<char, List<(string Pattern, AddedToken Token)>> _byFirst = new();

    public AddedTokenMatcher(IEnumerable<(string Pattern, AddedToken Token)> patterns)
    {
        foreach (var (p, t) in patterns)
        {
            if (p.Length == 0) continue;
            if (!_byFirst.TryGetValue(p[0], out var list)) _byFirst[p[0]] = list = [];
            if (list.Any(x => x.Pattern == p)) continue; // the first token with a content wins
            list.Add((p, t));
        }
        foreach (var list in _byFirst.Values) list.Sort((a, b) => b.Pattern.Length.CompareTo(a.Pattern.Length));
    }

    public bool IsEmpty => _byFirst.Count == 0;

    /// <summary>Splits <paramref name="text"/> into (text, null) and (content, token) segments.</summary>
    public List<(string Text, AddedToken? Token, int Offset)> Split(string text)
    {
        var result = new List<(string, AddedToken?, int)>();
        if (IsEmpty) { result.Add((text, null, 0)); return result; }
        int startOffset = 0;
        int i = 0;
        while (i < text.Length)
        {
            if (!_byFirst.TryGetValue(text[i], out var candidates)) { i++; continue; }
            (string Pattern, AddedToken Token)? match = null;
            foreach (var c in candidates)
                if (string.CompareOrdinal(text, i, c.Pattern, 0, c.Pattern.Length) == 0) { match = c; break; }
            if (match is null) { i++; continue; }
            var (pattern, token) = match.Value;
            int start = i, stop = i + pattern.Length;
            i = stop;
            if (token.SingleWord)
            {
                bool startOk = start == 0 || !CharInfo.IsWordChar(PrevCodePoint(text, start));
                bool stopOk = stop == text.Length || !CharInfo.IsWordChar(CharInfo.At(text, stop).Cp);
                if (!startOk || !stopOk) continue;
            }
            if (token.LStrip)
            {
                int s = start;
                while (s > startOffset && CharInfo.IsWhitespace(PrevCodePoint(text, s))) s -= char.IsLowSurrogate(text[s - 1]) && s >= 2 ? 2 : 1;
                start = Math.Max(s, startOffset);
            }
            if (token.RStrip)
            {
                while (stop < text.Length) { var (cp, len) = CharInfo.At(text, stop); if (!CharInfo.IsWhitespace(cp)) break; stop += len; }
                i = stop;
            }
            if (start > startOffset) result.Add((text[startOffset..start], null, startOffset));
            result.Add((token.Content, token, start));
            startOffset = stop;
        }
        if (startOffset < text.Length) result.Add((text[startOffset..], null, startOffset));
        return result;
    }

    private static int PrevCodePoint(string s, int index)
    {
        if (index >= 2 && char.IsLowSurrogate(s[index - 1]) && char.IsHighSurrogate(s[index - 2])) return char.ConvertToUtf32(s[index - 2], s[index - 1]);
        return s[index - 1];
    }
}
