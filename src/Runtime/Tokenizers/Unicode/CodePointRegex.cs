using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace ModelCompiler.Runtime.Tokenizers.Unicode;

/// <summary>
/// A .NET <see cref="Regex"/> that sees code points rather than UTF-16 units, as the Oniguruma and Rust
/// regexes of Hugging Face <c>tokenizers</c> do: <c>\p{L}</c> must match 𠀀 (U+20000, a letter) although
/// .NET sees two surrogates. Text with surrogate pairs is matched on a copy in which each pair is replaced by
/// one BMP character of the same general category; match positions are mapped back.
/// </summary>
public sealed class CodePointRegex
{
    private readonly Regex _regex;

    public CodePointRegex(string pattern)
    {
        _regex = new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled, TimeSpan.FromSeconds(10));
    }

    /// <summary>Wraps a ready regex (e.g. a source-generated one, which needs no start-up compilation).</summary>
    public CodePointRegex(Regex regex) { _regex = regex; }

    public string Pattern => _regex.ToString();

    /// <summary>The matches as (start, length) in <paramref name="s"/>'s UTF-16 units.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public List<(int Start, int Length)> Matches(string s)
    {
        var result = new List<(int, int)>();
        if (s.Length == 0) return result;
        int surrogate = s.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF');
        if (surrogate < 0)
        {
            foreach (var m in _regex.EnumerateMatches(s)) result.Add((m.Index, m.Length));
            return result;
        }
        // Substitute each supplementary code point by a representative of its category; map[i] is the
        // original index of substitute index i (map[len] = s.Length).
        var sb = new StringBuilder(s.Length);
        var map = new List<int>(s.Length + 1);
        for (int i = 0; i < s.Length;)
        {
            var (cp, len) = CharInfo.At(s, i);
            map.Add(i);
            sb.Append(len == 2 ? Representative(CharInfo.Category(cp)) : s[i]);
            i += len;
        }
        map.Add(s.Length);
        var sub = sb.ToString();
        foreach (var m in _regex.EnumerateMatches(sub))
        {
            int start = map[m.Index], end = map[m.Index + m.Length];
            result.Add((start, end - start));
        }
        return result;
    }

    private static char Representative(UnicodeCategory c) => c switch
    {
        UnicodeCategory.UppercaseLetter => '\u0391',
        UnicodeCategory.LowercaseLetter => '\u03B1',
        UnicodeCategory.TitlecaseLetter => '\u01C5',
        UnicodeCategory.ModifierLetter => '\u02B0',
        UnicodeCategory.OtherLetter => '\u05D0',
        UnicodeCategory.NonSpacingMark => '\u0300',
        UnicodeCategory.SpacingCombiningMark => '\u0903',
        UnicodeCategory.EnclosingMark => '\u20DD',
        UnicodeCategory.DecimalDigitNumber => '\u0660',
        UnicodeCategory.LetterNumber => '\u2160',
        UnicodeCategory.OtherNumber => '\u00B2',
        UnicodeCategory.Format => '\u00AD',
        UnicodeCategory.PrivateUse => '\uE000',
        UnicodeCategory.ConnectorPunctuation => '\u203F',
        UnicodeCategory.DashPunctuation => '\u2010',
        UnicodeCategory.OpenPunctuation => '\u2045',
        UnicodeCategory.ClosePunctuation => '\u2046',
        UnicodeCategory.InitialQuotePunctuation => '\u00AB',
        UnicodeCategory.FinalQuotePunctuation => '\u00BB',
        UnicodeCategory.OtherPunctuation => '\u00B6',
        UnicodeCategory.MathSymbol => '\u00AC',
        UnicodeCategory.CurrencySymbol => '\u00A2',
        UnicodeCategory.ModifierSymbol => '\u00B4',
        UnicodeCategory.OtherSymbol => '\u00A6',
        _ => '\u0378', // unassigned
    };
}

/// <summary>The built-in patterns, source-generated (no Reflection.Emit at start-up, fast matching).</summary>
internal static partial class BuiltinRegexes
{
    [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", RegexOptions.CultureInvariant, 10000)]
    public static partial Regex Gpt2();

    [GeneratedRegex(@"\w+|[^\w\s]+", RegexOptions.CultureInvariant, 10000)]
    public static partial Regex Whitespace();
}
