namespace ModelCompiler.Runtime;

/// <summary>
/// One tensor of a safetensors file, as its header describes it. <see cref="DataOffset"/> is absolute
/// in the file (data region start + the header's relative begin), so it can be used without the header.
/// </summary>
public sealed record TensorInfo(string Name, DType DType, long[] Shape, long DataOffset, long ByteLength)
{
    /// <summary>Product of <see cref="Shape"/>; 1 for a scalar (shape []).</summary>
    public long ElementCount => SafetensorsDTypes.ElementCount(Shape);

    public override string ToString() =>
        $"{Name}: {SafetensorsDTypes.Name(DType)}[{string.Join(", ", Shape)}] at {DataOffset} ({ByteLength} bytes)";
}
