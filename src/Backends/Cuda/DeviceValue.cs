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
    public DeviceValue(DType dtype, long[] shape, MemoryBuffer1D<float, Stride1D.Dense> buffer, long offset = 0)
    {
        DType = dtype;
        Shape = shape;
        Buffer = buffer;
        Offset = offset;
    }

    public DeviceValue(DType dtype, long[] shape, long[] ints)
    {
        DType = dtype;
        Shape = shape;
        Ints = ints;
    }

    /// <summary>A linear's weight stored in 16 bits (<paramref name="packed"/>: pairs per uint), with an fp32 copy when other ops read it too.</summary>
    public DeviceValue(DType dtype, long[] shape, MemoryBuffer1D<uint, Stride1D.Dense> packed, int format, MemoryBuffer1D<float, Stride1D.Dense>? floats)
    {
        DType = dtype;
        Shape = shape;
        Packed = packed;
        Format = format;
        Buffer = floats;
    }

    public DType DType { get; }

    /// <summary>16-bit weight storage (fp16 or bf16, <see cref="Format"/>), or null.</summary>
    public MemoryBuffer1D<uint, Stride1D.Dense>? Packed { get; }

    /// <summary><see cref="Kernels.WeightFormat"/> of <see cref="Packed"/>.</summary>
    public int Format { get; }

    public long[] Shape { get; }

    public MemoryBuffer1D<float, Stride1D.Dense>? Buffer { get; }

    /// <summary>Where the elements start in <see cref="Buffer"/> (a slice that is contiguous is a view, not a copy).</summary>
    public long Offset { get; }

    public long[]? Ints { get; }

    public bool IsFloat => Buffer is not null || Packed is not null;

    public long Count => Shape.Aggregate(1L, (a, d) => a * d);

    /// <summary>The elements, as a dense view of the buffer from <see cref="Offset"/>.</summary>
    public ArrayView<float> View => Buffer!.View.SubView(Offset, Count);

    public DeviceValue Reshaped(DType dtype, long[] shape) =>
        Packed is not null ? new(dtype, shape, Packed, Format, Buffer) : Buffer is not null ? new(dtype, shape, Buffer, Offset) : new(dtype, shape, Ints!);
}
