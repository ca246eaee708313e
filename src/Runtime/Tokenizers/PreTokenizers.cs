using System.Text;
using ModelCompiler.Runtime.Tokenizers.Unicode;

namespace ModelCompiler.Runtime.Tokenizers;

/// <summary>A piece of text between pre-tokenization steps; <see cref="AtStart"/> is true when it begins
/// at the start of the input (Metaspace's prepend_scheme "first" needs it).</summary>
public readonly record struct PreSplit(string Text, bool AtStart);

/// <summary>Splits text into words before the model (Hugging Face's pre-tokenizers).</summary>
public interface IPreTokenizer
{
    /// <summary>Replaces each split by its sub-splits, in order.</summary>
    void PreTokenize(List<PreSplit> splits);
}

/// <summary>What happens to the delimiters of a split (Hugging Face's SplitDelimiterBehavior).</summary>
public enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

internal static class SplitHelper
{
    public static void Each(List<PreSplit> splits, Action<PreSplit, List<PreSplit>> f)
    {
        var result = new List<PreSplit>(splits.Count * 2);
        foreach (var s in splits) f(s, result);
        splits.Clear();
        splits.AddRange(result);
    }

    /// <summary>Segments covering <paramref name="s"/> from match ranges (each match one segment).</summary>
    public static List<(int Start, int End, bool Match)> FromMatches(string s, List<(int Start, int Length)> matches, bool invert)
    {
        var segs = new List<(int, int, bool)>(matches.Count * 2 + 1);
        int prev = 0;
        foreach (var (start, length) in matches)
        {
            if (start > prev) segs.Add((prev, start, invert));
            segs.Add((start, start + length, !invert));
            prev = start + length;
        }
        if (prev < s.Length) segs.Add((prev, s.Length, invert));
        return segs;
    }

    /// <summary>Segments where every code point satisfying <paramref name="pred"/> is a match of its own.</summary>
    public static List<(int Start, int End, bool Match)> FromPredicate(string s, Func<int, bool> pred)
    {
        var segs = new List<(int, int, bool)>();
        int prev = 0;
        for (int i = 0; i < s.Length;)
        {
            var (cp, len) = CharInfo.At(s, i);
            if (pred(cp))
            {
                if (i > prev) segs.Add((prev, i, false));
                segs.Add((i, i + len, true));
                prev = i + len;
            }
            i += len;
        }
        if (prev < s.Length) segs.Add((prev, s.Length, false));
        return segs;
    }

    /// <summary>Applies a delimiter behaviour (a port of NormalizedString::split) and adds the non-empty pieces.</summary>
    public static void Apply(PreSplit parent, List<(int Start, int End, bool Match)> segs, SplitBehavior behavior, List<PreSplit> into)
    {
        var pieces = new List<(int Start, int End)>(segs.Count);
        switch (behavior)
        {
            case SplitBehavior.Removed:
                foreach (var (s, e, m) in segs) if (!m) pieces.Add((s, e));
                break;
            case SplitBehavior.Isolated:
                foreach (var (s, e, _) in segs) pieces.Add((s, e));
                break;
            case SplitBehavior.MergedWithPrevious:
            {
                bool previousMatch = false;
                foreach (var (s, e, m) in segs)
                {
                    if (m && !previousMatch && pieces.Count > 0) pieces[^1] = (pieces[^1].Start, e);
                    else pieces.Add((s, e));
                    previousMatch = m;
                }
                break;
            }
            case SplitBehavior.MergedWithNext:
            {
                bool previousMatch = false;
                for (int k = segs.Count - 1; k >= 0; k--)
                {
                    var (s, e, m) = segs[k];
                    if (m && !previousMatch && pieces.Count > 0) pieces[^1] = (s, pieces[^1].End);
                    else pieces.Add((s, e));
                    previousMatch = m;
                }
                pieces.Reverse();
                break;
            }
            case SplitBehavior.Contiguous:
            {
                bool previousMatch = false;
                foreach (var (s, e, m) in segs)
                {
                    if (m == previousMatch && pieces.Count > 0) pieces[^1] = (pieces[^1].Start, e);
                    else pieces.Add((s, e));
                    previousMatch = m;
                }
                break;
            }
        }
        foreach (var (s, e) in pieces)
            if (e > s) into.Add(new PreSplit(parent.Text[s..e], parent.AtStart && s == 0));
    }
}

/// <summary>GPT-2's byte-level pre-tokenizer: optional prefix space, the GPT-2 regex, then bytes → alphabet.</summary>
public sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : IPreTokenizer
{
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    private static readonly CodePointRegex Gpt2 = new(BuiltinRegexes.Gpt2());

    public void PreTokenize(List<PreSplit> splits) => SplitHelper.Each(splits, (split, into) =>
    {
        var text = split.Text;
        if (addPrefixSpace && !text.StartsWith(' ')) text = " " + text;
        if (!useRegex)
        {
            if (text.Length > 0) into.Add(new PreSplit(ByteLevelAlphabet.Encode(text), split.AtStart));
            return;
        }
        // Isolated: every match and every gap between matches is a word.
        int prev = 0;
        foreach (var (start, length) in Gpt2.Matches(text))
        {
            if (start > prev) into.Add(new PreSplit(ByteLevelAlphabet.Encode(text.AsSpan(prev, start - prev)), split.AtStart && prev == 0));
            if (length > 0) into.Add(new PreSplit(ByteLevelAlphabet.Encode(text.AsSpan(start, length)), split.AtStart && start == 0));
            prev = start + length;
        }
        if (prev < text.Length) into.Add(new PreSplit(ByteLevelAlphabet.Encode(text.AsSpan(prev)), split.AtStart && prev == 0));
    });
}

/// <summary>SentencePiece-style: spaces become the replacement character ("▁"), which is prepended per the
/// scheme; with split, words start at each replacement character.</summary>
public sealed class MetaspacePreTokenizer(char replacement, string prependScheme, bool split) : IPreTokenizer
{
    public void PreTokenize(List<PreSplit> splits) => SplitHelper.Each(splits, (s, into) =>
    {
        var text = s.Text.Replace(' ', replacement);
        bool prepend = prependScheme switch
        {
            "always" => !text.StartsWith(replacement),
            "first" => !text.StartsWith(replacement) && s.AtStart,
            _ => false,
        };
        if (prepend) text = replacement + text;
        var n = new PreSplit(text, s.AtStart);
        if (split) SplitHelper.Apply(n, SplitHelper.FromPredicate(text, c => c == replacement), SplitBehavior.MergedWithNext, into);
        else if (text.Length > 0) into.Add(n);
    });
}

/// <summary>BERT: split on whitespace (removed) and isolate each punctuation character.</summary>
public sealed class BertPreTokenizer : IPreTokenizer
{
    public void PreTokenize(List<PreSplit> splits)
    {
        SplitHelper.Each(splits, (s, into) => SplitHelper.Apply(s, SplitHelper.FromPredicate(s.Text, CharInfo.IsWhitespace), SplitBehavior.Removed, into));
        SplitHelper.Each(splits, (s, into) => SplitHelper.Apply(s, SplitHelper.FromPredicate(s.Text, CharInfo.IsBertPunctuation), SplitBehavior.Isolated, into));
    }
}

/// <summary>Isolates punctuation characters with the given behaviour.</summary>
public sealed class PunctuationPreTokenizer(SplitBehavior behavior) : IPreTokenizer
{
    public void PreTokenize(List<PreSplit> splits) =>
        SplitHelper.Each(splits, (s, into) => SplitHelper.Apply(s, SplitHelper.FromPredicate(s.Text, CharInfo.IsBertPunctuation), behavior, into));
}

/// <summary>The Whitespace pre-tokenizer: the regex <c>\w+|[^\w\s]+</c>.</summary>
public sealed class WhitespacePreTokenizer : IPreTokenizer
{
    private static readonly CodePointRegex Pattern = new(BuiltinRegexes.Whitespace());
    public void PreTokenize(List<PreSplit> splits) =>
        SplitHelper.Each(splits, (s, into) => SplitHelper.Apply(s, SplitHelper.FromMatches(s.Text, Pattern.Matches(s.Text), invert: true), SplitBehavior.Removed, into));
}

/// <summary>Splits on whitespace, which is removed.</summary>
public sealed class WhitespaceSplitPreTokenizer : IPreTokenizer
{
    public void PreTokenize(List<PreSplit> splits) =>
        SplitHelper.Each(splits, (s, into) => SplitHelper.Apply(s, SplitHelper.FromPredicate(s.Text, CharInfo.IsWhitespace), SplitBehavior.Removed, into));
}

/// <summary>Splits on one delimiter character, which is removed.</summary>
public sealed class CharDelimiterPreTokenizer(int delimiter) : IPreTokenizer
{
    public void PreTokenize(List<PreSplit> splits) =>
        SplitHelper.Each(splits, (s, into) => SplitHelper.Apply(s, SplitHelper.FromPredicate(s.Text, c => c == delimiter), SplitBehavior.Removed, into));
}

/// <summary>Splits numeric characters (Rust's char::is_numeric: Nd, Nl, No) off: each alone (individual_digits) or in runs.</summary>
public sealed class DigitsPreTokenizer(bool individual) : IPreTokenizer
{
    public void PreTokenize(List<PreSplit> splits) =>
        SplitHelper.Each(splits, (s, into) => SplitHelper.Apply(s, SplitHelper.FromPredicate(s.Text, CharInfo.IsNumeric),
            individual ? SplitBehavior.Isolated : SplitBehavior.Contiguous, into));
}

/// <summary>Splits on a literal string or a regex, with a delimiter behaviour; invert splits on the non-matches.</summary>
public sealed class SplitPreTokenizer(string? literal, CodePointRegex? regex, SplitBehavior behavior, bool invert) : IPreTokenizer
{
    public void PreTokenize(List<PreSplit> splits) => SplitHelper.Each(splits, (s, into) =>
    {
        List<(int, int)> matches;
        if (literal is not null)
        {
            matches = [];
            if (literal.Length > 0)
                for (int i = s.Text.IndexOf(literal, StringComparison.Ordinal); i >= 0; i = s.Text.IndexOf(literal, i + literal.Length, StringComparison.Ordinal))
                    matches.Add((i, literal.Length));
        }
        else matches = regex!.Matches(s.Text);
        SplitHelper.Apply(s, SplitHelper.FromMatches(s.Text, matches, invert), behavior, into);
    });
}

public sealed class SequencePreTokenizer(IReadOnlyList<IPreTokenizer> steps) : IPreTokenizer
{
    public void PreTokenize(List<PreSplit> splits)
    {
        foreach (var step in steps) step.PreTokenize(splits);
    }
}
