using System.Globalization;

namespace ModelCompiler.IR;

/// <summary>
/// One dimension of a tensor shape: a known size, or a symbol (<c>batch</c>, <c>seq</c>) bound only
/// when the model runs.
/// </summary>
public readonly record struct Dim
{
    private Dim(long size, string? symbol) { Size = size; Symbol = symbol; }

    /// <summary>The size when known; -1 for a symbolic dimension.</summary>
    public long Size { get; }

    /// <summary>The symbol's name, or null for a known size.</summary>
    public string? Symbol { get; }

    public bool IsKnown => Symbol is null;

    public static Dim Of(long size)
    {
        if (size < 0) throw new ArgumentOutOfRangeException(nameof(size), "dimension sizes are non-negative");
        return new Dim(size, null);
    }

    public static Dim Sym(string symbol) => new(-1, symbol);

    public static implicit operator Dim(long size) => Of(size);

    public override string ToString() => Symbol ?? Size.ToString(CultureInfo.InvariantCulture);
}
