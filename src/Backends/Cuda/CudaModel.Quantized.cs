using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Backends.Cuda.Kernels;
using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Cuda;

/// <summary>
/// Quantized linears on the device (int8, int4 and w8a8; sparse24 stays on the host fallback): the codes go to the
/// device once, four int8 or eight int4 codes a 32-bit word, and stay compressed there. Few rows (decode) run a GEMV
/// that converts codes in registers; at <see cref="PrefillRows"/> rows or more W is expanded into a pooled fp32
/// buffer for the call and multiplied by the fp32 GEMM, the expansion costing O(N·K) against the product's O(M·N·K);
/// W8A8 at prefill runs int8 × int8 on the tensor cores instead (<see cref="Int8TensorCoreGemm"/>, GPU only).
/// </summary>
public sealed partial class CudaModel
{
    /// <summary>Rows of x from which a quantized linear expands W for the GEMM instead of running the GEMV.</summary>
    public const int PrefillRows = 16;

    private readonly Dictionary<long[], MemoryBuffer1D<int, Stride1D.Dense>> _packedInts = new(ReferenceEqualityComparer.Instance);

    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, QuantizedShape>? _qGemv;
    private Action<AcceleratorStream, KernelConfig, ArrayView<int>, ArrayView<float>, ArrayView<int>, ArrayView<float>, QuantizedShape>? _qDequantize;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>? _qRows;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>? _qRowScale;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>? _qScaleColumns;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<uint>, int, int, int>? _qPack;
    private Action<AcceleratorStream, KernelConfig, ArrayView<uint>, ArrayView<uint>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Int8GemmShape>? _qMma;

    private DeviceValue QuantizedLinear(Node node, DeviceValue[] ins)
    {
        var a = node.Attrs;
        string scheme = a.Str("scheme");
        int schemeCode = scheme switch { "int8" => 0, "int4" => 1, "w8a8" => 2, _ => throw new McException($"{Interpreter.Describe(node)}: scheme '{scheme}' has no cuda kernel") };
        int group = (int)a.Int("group_size"), at = 3;
        var x = ins[0];
        var codes = ins[1];
        var scales = ins[2];
        var zeros = a.Bool("zeros", false) ? ins[at++] : null;
        var inputScale = a.Bool("input_scale", false) ? ins[at++] : null;
        var bias = a.Bool("bias", false) ? ins[at] : null;
        if (codes.IsFloat || !scales.IsFloat || zeros is { IsFloat: true })
            throw new McException($"{Interpreter.Describe(node)}: expected integer codes and zero points and float scales");
        int n = (int)codes.Shape[0], k = (int)x.Shape[^1];
        if (k % group != 0) throw new McException($"{Interpreter.Describe(node)}: group size {group} does not divide {k}");
        int rows = (int)(x.Count / Math.Max(1, k));
        var shape = x.Shape.ToArray();
        shape[^1] = n;
        var y = Allocate(DType.F32, shape);
        if ((long)rows * n == 0) return y;

        bool int4 = schemeCode == 1;
        int wordsPerRow = int4 ? k / 8 : (k + 3) / 4;
        var packed = Packed(codes.Ints!, n, int4 ? k / 2 : k, wordsPerRow);
        var zeroView = zeros is null ? _dummyInts.View : Packed(zeros.Ints!, 1, zeros.Ints!.Length, zeros.Ints!.Length, wordWise: true).View;
        var s = new QuantizedShape { M = rows, N = n, K = k, Group = group, Scheme = schemeCode, WordsPerRow = wordsPerRow, HasBias = bias is null ? 0 : 1 };
        var stream = _device.Accelerator.DefaultStream;

        var input = x;
        if (inputScale is not null)
        {
            input = Allocate(DType.F32, x.Shape);
            _launch.Count++;
            (_qScaleColumns ??= _device.Launcher<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>>(QuantizedKernels.ScaleColumns))
                (stream, Elements(input.Count), x.View, inputScale.View, input.View, rows, k);
        }
        var rowScale = _dummy.View;
        if (schemeCode == 2)
        {
            var quantized = Allocate(DType.F32, x.Shape);
            var scalesOfRows = Allocate(DType.F32, [rows]);
            _launch.Count++;
            (_qRows ??= _device.Launcher<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>>(QuantizedKernels.QuantizeRows))
                (stream, Group(rows, _device.ReductionGroup), input.View, quantized.View, scalesOfRows.View, k);
            input = quantized;
            rowScale = scalesOfRows.View;
        }

        if (rows < PrefillRows)
        {
            _launch.Count++;
            (_qGemv ??= _device.Launcher<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, QuantizedShape>>(QuantizedKernels.Gemv))
                (stream, Group(n, _device.ReductionGroup), input.View, rowScale, packed.View, scales.View, zeroView, bias?.View ?? _dummy.View, y.View, s);
            return y;
        }
        if (schemeCode == 2 && !_device.IsSimulated && n % Int8TensorCoreGemm.Tile == 0 && k % Int8TensorCoreGemm.SliceCodes == 0 && group % Int8TensorCoreGemm.SliceCodes == 0)
        {
            // W8A8 prefill on the tensor cores: x's codes packed into words (rows padded to the tile), int8 mma.sync.
            int padded = (rows + Int8TensorCoreGemm.Tile - 1) / Int8TensorCoreGemm.Tile * Int8TensorCoreGemm.Tile;
            var words = _device.Accelerator.Allocate1D<int>((long)padded * k / 4);
            _intTemps.Add(words);
            _launch.Count += 2;
            (_qPack ??= _device.Launcher<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<uint>, int, int, int>>(Int8TensorCoreGemm.PackCodes))
                (stream, Elements((long)padded * k / 4), input.View, Words(words), rows, padded, k);
            var shape8 = new Int8GemmShape { M = rows, N = n, K = k, Group = group, HasBias = bias is null ? 0 : 1 };
            (_qMma ??= _device.Launcher<Action<AcceleratorStream, KernelConfig, ArrayView<uint>, ArrayView<uint>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Int8GemmShape>>(Int8TensorCoreGemm.Gemm))
                (stream, new KernelConfig(new Index3D(n / Int8TensorCoreGemm.Tile, padded / Int8TensorCoreGemm.Tile, 1), new Index3D(Int8TensorCoreGemm.Threads, 1, 1)),
                 Words(words), Words(packed), scales.View, rowScale, bias?.View ?? _dummy.View, y.View, shape8);
            return y;
        }
        var dense = Allocate(DType.F32, [n, k]);
        _launch.Count++;
        (_qDequantize ??= _device.Launcher<Action<AcceleratorStream, KernelConfig, ArrayView<int>, ArrayView<float>, ArrayView<int>, ArrayView<float>, QuantizedShape>>(QuantizedKernels.Dequantize))
            (stream, Elements(dense.Count), packed.View, scales.View, zeroView, dense.View, s);
        bool w8a8 = schemeCode == 2;
        var g = new GemmShape { M = rows, N = n, K = k, Lda = k, Sbk = 1, Sbn = k, HasBias = bias is not null && !w8a8 ? 1 : 0, Activation = ActivationCode.None, HasResidual = 0 };
        Gemm(input.View, dense.View, y.View, w8a8 ? null : bias, null, [0], [0], g);
        if (w8a8)
        {
            _launch.Count++;
            (_qRowScale ??= _device.Launcher<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>>(QuantizedKernels.RowScaleBias))
                (stream, Elements(y.Count), y.View, rowScale, bias?.View ?? _dummy.View, rows, n, bias is null ? 0 : 1);
        }
        return y;
    }

    private static ArrayView<uint> Words(MemoryBuffer1D<int, Stride1D.Dense> buffer) => ((ArrayView<int>)buffer.View).Cast<uint>();

    /// <summary>
    /// Integer codes on the device, once per weight: each of <paramref name="rows"/> rows of <paramref name="bytesPerRow"/>
    /// byte codes packed four a word (low byte first) into <paramref name="wordsPerRow"/> words; with
    /// <paramref name="wordWise"/> every value is one word (zero points).
    /// </summary>
    private MemoryBuffer1D<int, Stride1D.Dense> Packed(long[] values, int rows, int bytesPerRow, int wordsPerRow, bool wordWise = false)
    {
        if (_packedInts.TryGetValue(values, out var buffer)) return buffer;
        var words = new int[Math.Max(1, (long)rows * wordsPerRow)];
        if (wordWise)
            for (int i = 0; i < values.Length; i++) words[i] = checked((int)values[i]);
        else
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < bytesPerRow; c++)
                {
                    long v = values[(long)r * bytesPerRow + c];
                    if (v is < -128 or > 255) throw new McException($"a quantized code {v} does not fit a byte");
                    words[(long)r * wordsPerRow + c / 4] |= (int)((v & 0xFF) << (8 * (c % 4)));
                }
        buffer = _device.Accelerator.Allocate1D<int>(words.Length);
        buffer.View.CopyFromCPU(words);
        _packedInts[values] = buffer;
        return buffer;
    }
}
