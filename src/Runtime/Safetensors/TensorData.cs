using System.Buffers.Binary;

namespace ModelCompiler.Runtime;

/// <summary>A tensor to write: its raw little-endian bytes, checked against dtype and shape by the writer.</summary>
public sealed record TensorData(string Name, DType DType, long[] Shape, byte[] Data)
{
    public static TensorData FromFloat32(string name, long[] shape, ReadOnlySpan<float> values)
    {
        var data = new byte[checked(values.Length * sizeof(float))];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * sizeof(float)), values[i]);
        return Checked(new TensorData(name, DType.F32, shape, data));
    }

    public static TensorData FromFloat64(string name, long[] shape, ReadOnlySpan<double> values)
    {
        var data = new byte[checked(values.Length * sizeof(double))];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteDoubleLittleEndian(data.AsSpan(i * sizeof(double)), values[i]);
        return Checked(new TensorData(name, DType.F64, shape, data));
    }

    public static TensorData FromInt64(string name, long[] shape, ReadOnlySpan<long> values)
    {
        var data = new byte[checked(values.Length * sizeof(long))];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(i * sizeof(long)), values[i]);
        return Checked(new TensorData(name, DType.I64, shape, data));
    }

    /// <summary>Throws <see cref="McException"/> unless Data holds exactly product(Shape) elements of DType.</summary>
    internal void Validate()
    {
        if (string.IsNullOrEmpty(Name)) throw new McException("tensor name is empty");
        string tensor = $"tensor {SafetensorsErrors.Quote(Name)}";
        if (Name == SafetensorsHeader.MetadataKey)
            throw new McException($"{tensor}: the name is reserved for metadata");
        if (Shape is null) throw new McException($"{tensor}: shape is null");
        if (Data is null) throw new McException($"{tensor}: data is null");
        if (Shape.Any(d => d < 0)) throw new McException($"{tensor}: negative dimension in shape [{string.Join(", ", Shape)}]");
        long expected;
        try
        {
            expected = checked(SafetensorsDTypes.ElementCount(Shape) * DType.SizeInBytes());
        }
        catch (OverflowException)
        {
            throw new McException($"{tensor}: shape [{string.Join(", ", Shape)}] is too large");
        }
        if (Data.Length != expected)
            throw new McException(
                $"{tensor}: {Data.Length} bytes of data, but {SafetensorsDTypes.Name(DType)}[{string.Join(", ", Shape)}] needs {expected}");
    }

    private static TensorData Checked(TensorData tensor)
    {
        tensor.Validate();
        return tensor;
    }
}
