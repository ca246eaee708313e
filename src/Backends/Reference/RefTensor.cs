using System.Globalization;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Reference;

/// <summary>How the reference interpreter rounds float results.</summary>
public enum Precision
{
    /// <summary>Every float result is rounded to float32 after each node (ops accumulate in double inside).</summary>
    F32,

    /// <summary>No rounding: everything stays in double.</summary>
    F64,
}

/// <summary>
/// A dense row-major tensor on the host. Floats are stored as double (rounded to float after every
/// op in F32 mode), integers and bools as long. The data arrays are treated as immutable once a
/// tensor exists: the interpreter shares them between views (reshape) instead of copying.
/// </summary>
public sealed class RefTensor
{
    internal RefTensor(DType dtype, long[] shape, double[]? f, long[]? i)
    {
        long count = CountOf(shape);
        if (dtype.IsFloat() ? f is null || i is not null : i is null || f is not null)
            throw new ArgumentException($"a {dtype.ShortName()} tensor needs {(dtype.IsFloat() ? "float" : "integer")} data");
        long length = f?.LongLength ?? i!.LongLength;
        if (length != count)
            throw new ArgumentException($"shape [{FormatShape(shape)}] holds {count} elements but {length} were given");
        DType = dtype;
        Shape = shape;
        F = f;
        I = i;
        ElementCount = count;
    }

    /// <summary>A float dtype (F32/F64/F16/BF16, all stored in <see cref="F"/>) or an integer/bool dtype (stored in <see cref="I"/>).</summary>
    public DType DType { get; }

    public long[] Shape { get; }

    /// <summary>Float data (null for integer tensors).</summary>
    public double[]? F { get; }

    /// <summary>Integer data (null for float tensors).</summary>
    public long[]? I { get; }

    public long ElementCount { get; }

    public int Rank => Shape.Length;

    public bool IsFloat => F is not null;

    /// <summary>A float tensor. The array is taken as is (not copied), so callers must not change it afterwards.</summary>
    public static RefTensor FromFloats(long[] shape, double[] data, DType dtype = DType.F32)
    {
        if (!dtype.IsFloat()) throw new ArgumentException($"FromFloats needs a float dtype, got {dtype.ShortName()}");
        return new RefTensor(dtype, shape.ToArray(), data, null);
    }

    public static RefTensor FromFloats(long[] shape, float[] data) =>
        new(DType.F32, shape.ToArray(), Array.ConvertAll(data, x => (double)x), null);

    /// <summary>An integer (or bool) tensor. The array is taken as is (not copied).</summary>
    public static RefTensor FromInts(long[] shape, long[] data, DType dtype = DType.I64)
    {
        if (dtype.IsFloat()) throw new ArgumentException($"FromInts needs an integer or bool dtype, got {dtype.ShortName()}");
        return new RefTensor(dtype, shape.ToArray(), null, data);
    }

    /// <summary>An f32 scalar (shape []).</summary>
    public static RefTensor Scalar(double v) => new(DType.F32, [], [v], null);

    /// <summary>A copy of the data as float32 (integers converted).</summary>
    public float[] ToFloat32() =>
        F is not null ? Array.ConvertAll(F, x => (float)x) : Array.ConvertAll(I!, x => (float)x);

    /// <summary>One element by its full index, as a double (integers converted).</summary>
    public double this[params long[] index]
    {
        get
        {
            if (index.Length != Shape.Length)
                throw new ArgumentException($"index has {index.Length} components but the tensor has rank {Shape.Length}");
            long flat = 0;
            for (int d = 0; d < index.Length; d++)
            {
                if (index[d] < 0 || index[d] >= Shape[d])
                    throw new IndexOutOfRangeException($"index {index[d]} out of range for axis {d} of size {Shape[d]}");
                flat = flat * Shape[d] + index[d];
            }
            return F is not null ? F[flat] : I![flat];
        }
    }

    public override string ToString() => $"{DType.ShortName()}[{FormatShape(Shape)}]";

    internal static string FormatShape(long[] shape) =>
        string.Join(",", shape.Select(d => d.ToString(CultureInfo.InvariantCulture)));

    internal static long CountOf(long[] shape)
    {
        long n = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension in shape [{FormatShape(shape)}]");
            n = checked(n * d);
        }
        return n;
    }
}
