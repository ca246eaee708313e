using System.Collections.Immutable;
using System.Globalization;

namespace ModelCompiler.IR;

/// <summary>
/// The attributes of a node: a sorted map from name to a long, double, bool, string or long[].
/// Sorted so that printing and hashing are deterministic.
/// </summary>
public sealed class Attrs : IEquatable<Attrs>
{
    public static readonly Attrs Empty = new(ImmutableSortedDictionary<string, object>.Empty.WithComparers(StringComparer.Ordinal));

    private readonly ImmutableSortedDictionary<string, object> _values;

    private Attrs(ImmutableSortedDictionary<string, object> values) => _values = values;

    public IEnumerable<KeyValuePair<string, object>> All => _values;

    public int Count => _values.Count;

    public Attrs With(string name, object value)
    {
        object normalized = value switch
        {
            int i => (long)i,
            float f => (double)f,
            long or double or bool or string => value,
            long[] a => a.ToArray(),
            int[] a => a.Select(x => (long)x).ToArray(),
            _ => throw new ArgumentException($"unsupported attribute type {value.GetType().Name} for '{name}'"),
        };
        return new Attrs(_values.SetItem(name, normalized));
    }

    public bool Has(string name) => _values.ContainsKey(name);

    public long Int(string name, long? fallback = null) =>
        _values.TryGetValue(name, out var v) ? v switch { long l => l, bool b => b ? 1 : 0, _ => throw Wrong(name, "an integer") }
        : fallback ?? throw Missing(name);

    public double Float(string name, double? fallback = null) =>
        _values.TryGetValue(name, out var v) ? v switch { double d => d, long l => l, _ => throw Wrong(name, "a number") }
        : fallback ?? throw Missing(name);

    public bool Bool(string name, bool? fallback = null) =>
        _values.TryGetValue(name, out var v) ? v switch { bool b => b, long l => l != 0, _ => throw Wrong(name, "a bool") }
        : fallback ?? throw Missing(name);

    public string Str(string name, string? fallback = null) =>
        _values.TryGetValue(name, out var v) ? v as string ?? throw Wrong(name, "a string")
        : fallback ?? throw Missing(name);

    public long[] Ints(string name) =>
        _values.TryGetValue(name, out var v) ? (v as long[] ?? throw Wrong(name, "a list of integers")).ToArray() : throw Missing(name);

    private static InvalidOperationException Missing(string name) => new($"missing attribute '{name}'");
    private static InvalidOperationException Wrong(string name, string what) => new($"attribute '{name}' is not {what}");

    public static string Format(object value) => value switch
    {
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FormatDouble(d),
        bool b => b ? "true" : "false",
        string s => Quote(s),
        long[] a => "[" + string.Join(",", a.Select(x => x.ToString(CultureInfo.InvariantCulture))) + "]",
        double[] a => "[" + string.Join(",", a.Select(FormatDouble)) + "]",
        _ => value.ToString() ?? "",
    };

    /// <summary>Shortest round-trip form, always with a '.' or exponent so it reads as a float.</summary>
    public static string FormatDouble(double d)
    {
        if (double.IsPositiveInfinity(d)) return "inf";
        if (double.IsNegativeInfinity(d)) return "-inf";
        if (double.IsNaN(d)) return "nan";
        var s = d.ToString("R", CultureInfo.InvariantCulture).Replace("E", "e", StringComparison.Ordinal);
        return s.Contains('.') || s.Contains('E') || s.Contains('e') ? s : s + ".0";
    }

    /// <summary>A double-quoted string with every non-printable or non-ASCII character escaped.</summary>
    public static string Quote(string s)
    {
        var sb = new System.Text.StringBuilder("\"");
        foreach (var c in s)
        {
            if (c == '"' || c == '\\') sb.Append('\\').Append(c);
            else if (c < 0x20 || c > 0x7e) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
            else sb.Append(c);
        }
        return sb.Append('"').ToString();
    }

    public override string ToString() =>
        _values.Count == 0 ? "" : "{" + string.Join(", ", _values.Select(kv => $"{kv.Key}={Format(kv.Value)}")) + "}";

    public bool Equals(Attrs? other) =>
        other is not null && _values.Count == other._values.Count &&
        _values.All(kv => other._values.TryGetValue(kv.Key, out var o) && ValueEquals(kv.Value, o));

    private static bool ValueEquals(object a, object b) =>
        a is long[] x && b is long[] y ? x.SequenceEqual(y) : a.Equals(b);

    public override bool Equals(object? obj) => Equals(obj as Attrs);

    public override int GetHashCode() => ToString().GetHashCode(StringComparison.Ordinal);
}
