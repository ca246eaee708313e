using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis.CSharp;

namespace ModelCompiler.Backends.Cpu;

/// <summary>
/// The only ways text from outside the compiler (DSL names, checkpoint names, config values) may enter
/// generated C#: as an escaped string literal, inside a <c>//</c> comment with every character that could end
/// it escaped, or as a class name that passed <see cref="SafeModelName"/>. Identifiers are otherwise the
/// emitter's own (t17, w3, s0).
/// </summary>
public static partial class CSharpText
{
    /// <summary>
    /// A C# regular string literal denoting exactly <paramref name="s"/>: quotes and backslashes escaped, every
    /// character outside printable ASCII (newlines, control characters, non-ASCII, lone surrogates) as \uXXXX.
    /// </summary>
    public static string Literal(string s)
    {
        var sb = new StringBuilder(s.Length + 2).Append('"');
        foreach (var c in s)
        {
            if (c == '"' || c == '\\') sb.Append('\\').Append(c);
            else if (c < 0x20 || c > 0x7e) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
            else sb.Append(c);
        }
        return sb.Append('"').ToString();
    }

    /// <summary>
    /// Text for a <c>//</c> comment: printable ASCII kept, anything else (the line terminators \n, \r, \u0085,
    /// \u2028, \u2029 among them) escaped as \uXXXX, so the comment ends where the emitter ends the line.
    /// </summary>
    public static string Comment(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var c in s)
        {
            if (c < 0x20 || c > 0x7e) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
            else sb.Append(c);
        }
        return sb.ToString();
    }

    /// <summary>A float literal that round-trips (<c>0.5f</c>, <c>1E-05f</c>, <c>float.NaN</c>).</summary>
    public static string Float(float f) =>
        float.IsNaN(f) ? "float.NaN"
        : float.IsPositiveInfinity(f) ? "float.PositiveInfinity"
        : float.IsNegativeInfinity(f) ? "float.NegativeInfinity"
        : f.ToString("R", CultureInfo.InvariantCulture) + "f";

    /// <summary>A double literal that round-trips (<c>10000.0</c>, <c>1E-05</c>, <c>double.PositiveInfinity</c>).</summary>
    public static string Double(double d)
    {
        if (double.IsNaN(d)) return "double.NaN";
        if (double.IsPositiveInfinity(d)) return "double.PositiveInfinity";
        if (double.IsNegativeInfinity(d)) return "double.NegativeInfinity";
        var s = d.ToString("R", CultureInfo.InvariantCulture);
        return s.Contains('.') || s.Contains('E') ? s : s + ".0";
    }

    public static string Int(long v) => v.ToString(CultureInfo.InvariantCulture);

    public static string Bool(bool b) => b ? "true" : "false";

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex IdentifierPattern();

    /// <summary>
    /// The model's name when it can be part of a C# identifier as it is (ASCII letters, digits and '_', not
    /// starting with a digit, not a C# keyword or contextual keyword, at most 100 characters); else "Generated".
    /// </summary>
    public static string SafeModelName(string name) =>
        name.Length <= 100 && IdentifierPattern().IsMatch(name)
            && SyntaxFacts.GetKeywordKind(name) == SyntaxKind.None
            && SyntaxFacts.GetContextualKeywordKind(name) == SyntaxKind.None
            && !name.StartsWith("__", StringComparison.Ordinal)
            ? name
            : "Generated";
}
