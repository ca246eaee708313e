using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Cuda;

/// <summary>
/// A value of the graph during a cuda run: float tensors live on the device (a view of a pooled buffer; reshapes
/// share it); integer tensors (token ids, positions: a few hundred numbers that only index) stay on the host.
/// </summary>
public sealed class DeviceValue
{
    public DeviceValue(DType dtype, long[] shape, MemoryBuffer1D<float, Stride1D.Dense> buffer)
    {
        DType = dtype;
        Shape = shape;
        Buffer = buffer;
    }

    public DeviceValue(DType dtype, long[] shape, long[] ints)
    {
        DType = dtype;
        Shape = shape;
        Ints = ints;
    }

    public DType DType { get; }

    public long[] Shape { get; }

    public MemoryBuffer1D<float, Stride1D.Dense>? Buffer { get; }

    public long[]? Ints { get; }

    public bool IsFloat => Buffer is not null;

    public long Count => Shape.Aggregate(1L, (a, d) => a * d);

    /// <summary>The elements, as a dense view of the buffer's start.</summary>
    public ArrayView<float> View => Buffer!.View.SubView(0, Count);

    public DeviceValue Reshaped(DType dtype, long[] shape) => Buffer is not null ? new(dtype, shape, Buffer) : new(dtype, shape, Ints!);
}
