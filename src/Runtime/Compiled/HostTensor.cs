using System.Globalization;

namespace ModelCompiler.Runtime;

/// <summary>
/// A dense row-major tensor passed to or returned by a compiled model: float dtypes (f32, and f16/bf16/f64
/// computed as float32) in <see cref="Floats"/>, integer and bool dtypes in <see cref="Ints"/>. Arrays are
/// taken as they are (not copied); a compiled model never writes into its inputs.
/// </summary>
public sealed class HostTensor
{
    private HostTensor(DType dtype, long[] shape, float[]? floats, long[]? ints)
    {
        long count = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension in shape [{FormatShape(shape)}]");
            count = checked(count * d);
        }
        long length = floats?.LongLength ?? ints!.LongLength;
        if (length != count)
            throw new ArgumentException($"shape [{FormatShape(shape)}] holds {count} elements but {length} were given");
        DType = dtype;
        Shape = shape;
        Floats = floats;
        Ints = ints;
    }

    public DType DType { get; }

    public long[] Shape { get; }

    public float[]? Floats { get; }

    public long[]? Ints { get; }

    public bool IsFloat => Floats is not null;

    public long ElementCount => Floats?.LongLength ?? Ints!.LongLength;

    public static HostTensor FromFloats(long[] shape, float[] data, DType dtype = DType.F32)
    {
        if (!dtype.IsFloat()) throw new ArgumentException($"FromFloats needs a float dtype, got {dtype.ShortName()}");
        return new HostTensor(dtype, shape.ToArray(), data, null);
    }

    public static HostTensor FromInts(long[] shape, long[] data, DType dtype = DType.I64)
    {
        if (dtype.IsFloat()) throw new ArgumentException($"FromInts needs an integer or bool dtype, got {dtype.ShortName()}");
        return new HostTensor(dtype, shape.ToArray(), null, data);
    }

    public override string ToString() => $"{DType.ShortName()}[{FormatShape(Shape)}]";

    internal static string FormatShape(long[] shape) => string.Join(",", shape.Select(d => d.ToString(CultureInfo.InvariantCulture)));
}
