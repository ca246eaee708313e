using System.Collections.Immutable;
using ModelCompiler.Runtime;

namespace ModelCompiler.IR;

/// <summary>The type of an IR value: an element type and a shape whose dimensions may be symbolic.</summary>
public sealed record TensorType(DType DType, ImmutableArray<Dim> Shape)
{
    public TensorType(DType dtype, params Dim[] shape) : this(dtype, ImmutableArray.Create(shape)) { }

    public int Rank => Shape.Length;

    public Dim this[int axis] => Shape[axis < 0 ? Shape.Length + axis : axis];

    public bool IsFullyKnown => Shape.All(d => d.IsKnown);

    public TensorType WithShape(IEnumerable<Dim> shape) => this with { Shape = shape.ToImmutableArray() };

    public TensorType WithDType(DType dtype) => this with { DType = dtype };

    public bool Equals(TensorType? other) =>
        other is not null && DType == other.DType && Shape.SequenceEqual(other.Shape);

    public override int GetHashCode()
    {
        var h = new HashCode();
        h.Add(DType);
        foreach (var d in Shape) h.Add(d);
        return h.ToHashCode();
    }

    public override string ToString() => $"{DType.ShortName()}[{string.Join(",", Shape)}]";
}
