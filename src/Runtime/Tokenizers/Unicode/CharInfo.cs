using System.Globalization;
using System.Text;

namespace ModelCompiler.Runtime.Tokenizers.Unicode;

/// <summary>Code-point predicates with the meanings Hugging Face <c>tokenizers</c> (Rust) gives them.</summary>
public static class CharInfo
{
    public static UnicodeCategory Category(int cp) => CharUnicodeInfo.GetUnicodeCategory(cp);

    /// <summary>Rust's <c>char::is_whitespace</c>: the Unicode White_Space property.</summary>
    public static bool IsWhitespace(int cp) => cp switch
    {
        >= 0x9 and <= 0xD => true,
        0x20 or 0x85 or 0xA0 or 0x1680 or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000 => true,
        >= 0x2000 and <= 0x200A => true,
        _ => false,
    };

    /// <summary>Rust's <c>char::is_numeric</c>: the categories Nd, Nl and No.</summary>
    public static bool IsNumeric(int cp) => Category(cp) is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    /// <summary>BERT's control characters: the C* categories except tab, newline and carriage return.</summary>
    public static bool IsBertControl(int cp)
    {
        if (cp is '\t' or '\n' or '\r') return false;
        return Category(cp) is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.OtherNotAssigned
            or UnicodeCategory.PrivateUse or UnicodeCategory.Surrogate;
    }

    /// <summary>Unicode punctuation (P* categories).</summary>
    public static bool IsPunctuation(int cp) => Category(cp) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
        or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
        or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation;

    /// <summary>BERT's punctuation: every ASCII non-alphanumeric printable character, or a P* character.</summary>
    public static bool IsBertPunctuation(int cp) =>
        cp is >= 33 and <= 47 or >= 58 and <= 64 or >= 91 and <= 96 or >= 123 and <= 126 || IsPunctuation(cp);

    /// <summary>The CJK ideograph blocks that BERT surrounds with spaces.</summary>
    public static bool IsChineseChar(int cp) => cp is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF
        or >= 0x20000 and <= 0x2A6DF or >= 0x2A700 and <= 0x2B73F or >= 0x2B740 and <= 0x2B81F
        or >= 0x2B820 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;

    /// <summary>A combining mark (Mn, Mc, Me), what accent stripping removes after NFD.</summary>
    public static bool IsMark(int cp) => Category(cp) is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark;

    /// <summary>A "word" character for added tokens' single_word flag: alphanumeric or underscore.</summary>
    public static bool IsWordChar(int cp)
    {
        if (cp == '_') return true;
        var c = Category(cp);
        return c <= UnicodeCategory.OtherLetter || c is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;
    }

    /// <summary>Lower-cases as Rust's <c>char::to_lowercase</c> does, code point by code point (İ becomes i + U+0307).</summary>
    public static string ToLower(string s)
    {
        bool ascii = true;
        foreach (char c in s) if (c >= 0x80) { ascii = false; break; }
        if (ascii) return s.ToLowerInvariant();
        var sb = new StringBuilder(s.Length);
        foreach (var r in s.EnumerateRunes())
        {
            if (r.Value == 0x130) sb.Append("i\u0307");
            else sb.AppendRune(Rune.ToLowerInvariant(r));
        }
        return sb.ToString();
    }

    /// <summary>Appends one code point without allocating a string.</summary>
    public static StringBuilder AppendRune(this StringBuilder sb, Rune r)
    {
        if (r.IsBmp) return sb.Append((char)r.Value);
        Span<char> pair = stackalloc char[2];
        r.EncodeToUtf16(pair);
        return sb.Append(pair);
    }

    /// <summary>The code point at <paramref name="i"/> (a surrogate pair counts as one) and its length in chars.</summary>
    public static (int Cp, int Len) At(string s, int i)
    {
        char c = s[i];
        if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) return (char.ConvertToUtf32(c, s[i + 1]), 2);
        return (c, 1);
    }
}
