using System.Runtime.InteropServices;

namespace ModelCompiler.Runtime.Kernels;

/// <summary>How a packed weight stores its elements. The micro-kernels convert 16-bit ones to fp32 in registers.</summary>
public enum WeightFormat
{
    F32,
    /// <summary>bfloat16 (the high half of an fp32).</summary>
    BF16,
    /// <summary>IEEE binary16.</summary>
    F16,
}

/// <summary>
/// A linear layer's weight W [N, K] (row-major, PyTorch's nn.Linear layout), packed once at load for
/// <see cref="Gemm"/>: ceil(N/32) panels of 32 output columns; each panel is K-major
/// (K rows of 32 consecutive elements, 128 bytes in fp32), so the micro-kernel streams it front to back.
/// Columns past N are zero. 16-bit formats put columns j and j+16 of a panel row in one 32-bit lane
/// (j in the low half), so one 64-byte load becomes two fp32 vectors with a shift and a mask.
/// Memory is pinned and 64-byte aligned; it lives as long as this object.
/// </summary>
public sealed unsafe class PackedWeight
{
    public const int PanelWidth = GemmMicroKernels.NR;

    /// <summary>Output features (rows of W).</summary>
    public int N { get; }
    /// <summary>Input features (columns of W).</summary>
    public int K { get; }
    public WeightFormat Format { get; }
    public int Panels { get; }
    /// <summary>Bytes of packed weight data (what one M=1 product streams).</summary>
    public long ByteSize => (long)Panels * PanelWidth * K * ElementSize;
    public int ElementSize => Format == WeightFormat.F32 ? 4 : 2;

    // Native memory, 64-byte aligned; 2 MiB aligned and advised for transparent huge pages where that can pay (Linux,
    // large weights): decode streams every weight once per token, and 2 MiB pages cut its TLB misses (a 400 MB read on
    // the 2-vCPU EPYC: ~77 GB/s with huge pages against ~65 with 4 KiB ones). Freed by the finalizer.
    readonly void* _memory;
    readonly long _bytes;
    internal readonly float* F32;
    internal readonly ushort* U16;

    /// <summary>Whether this weight's memory was advised for transparent huge pages.</summary>
    public bool HugePages { get; }

    const long HugePage = 2L << 20;

    PackedWeight(int n, int k, WeightFormat format)
    {
        if (n <= 0 || k <= 0) throw new ArgumentOutOfRangeException(nameof(n), $"weight shape [{n}, {k}] must be positive");
        N = n;
        K = k;
        Format = format;
        Panels = (n + PanelWidth - 1) / PanelWidth;
        long count = (long)Panels * PanelWidth * k;
        if (count > int.MaxValue - 64) throw new ArgumentOutOfRangeException(nameof(n), "weight too large for one packed array");
        _bytes = count * ElementSize;
        bool huge = OperatingSystem.IsLinux() && _bytes >= HugePage;
        long size = huge ? (_bytes + HugePage - 1) / HugePage * HugePage : _bytes;
        _memory = NativeMemory.AlignedAlloc((nuint)size, huge ? (nuint)HugePage : 64);
        GC.AddMemoryPressure(size);
        _bytes = size;
        // Advice before the first touch, so the pages are faulted in huge; then zeroed (padding columns stay zero).
        HugePages = huge && Madvise((nint)_memory, (nuint)size, MadvHugePage) == 0;
        NativeMemory.Clear(_memory, (nuint)size);
        if (format == WeightFormat.F32) F32 = (float*)_memory;
        else U16 = (ushort*)_memory;
    }

    ~PackedWeight()
    {
        NativeMemory.AlignedFree(_memory);
        GC.RemoveMemoryPressure(_bytes);
    }

    const int MadvHugePage = 14;

    [DllImport("libc", EntryPoint = "madvise")]
    static extern int Madvise(nint address, nuint length, int advice);

    /// <summary>Packs an fp32 W [n, k] (row-major), stored as <paramref name="format"/> (16-bit formats round to nearest even).</summary>
    public static PackedWeight Pack(ReadOnlySpan<float> w, int n, int k, WeightFormat format = WeightFormat.F32)
    {
        if (w.Length < (long)n * k) throw new ArgumentException($"weight has {w.Length} elements, [{n}, {k}] needs {(long)n * k}", nameof(w));
        var pw = new PackedWeight(n, k, format);
        fixed (float* src = w)
        {
            if (format == WeightFormat.F32) pw.PackPanels(src, static v => v);
            else if (format == WeightFormat.BF16) pw.PackPanelsU16(src, GemmMicroKernels.SingleToBf16);
            else pw.PackPanelsU16(src, static v => BitConverter.HalfToUInt16Bits((Half)v));
        }
        return pw;
    }

    /// <summary>Packs a W [n, k] given as raw 16-bit patterns (bf16 or fp16, as in a checkpoint), kept as such.</summary>
    public static PackedWeight Pack16(ReadOnlySpan<ushort> w, int n, int k, WeightFormat format)
    {
        if (format == WeightFormat.F32) throw new ArgumentException("Pack16 takes BF16 or F16 bits", nameof(format));
        if (w.Length < (long)n * k) throw new ArgumentException($"weight has {w.Length} elements, [{n}, {k}] needs {(long)n * k}", nameof(w));
        var pw = new PackedWeight(n, k, format);
        fixed (ushort* src = w) pw.PackPanelsU16(src, static v => v);
        return pw;
    }

    /// <summary>An fp32 weight [n, k] of zeros whose panels a caller fills in place (a thread's scratch for quantized prefill).</summary>
    internal static PackedWeight Scratch(int n, int k) => new(n, k, WeightFormat.F32);

    void PackPanels(float* src, Func<float, float> conv)
    {
        int n = N, k = K;
        Parallel.For(0, Panels, p =>
        {
            float* dst = F32 + (long)p * PanelWidth * k;
            int j0 = p * PanelWidth, cols = Math.Min(PanelWidth, n - j0);
            for (int kk = 0; kk < k; kk++, dst += PanelWidth)
            {
                int j = 0;
                for (; j < cols; j++) dst[j] = conv(src[(long)(j0 + j) * k + kk]);
                for (; j < PanelWidth; j++) dst[j] = 0f;
            }
        });
    }

    void PackPanelsU16<T>(T* src, Func<T, ushort> conv) where T : unmanaged
    {
        int n = N, k = K;
        Parallel.For(0, Panels, p =>
        {
            ushort* dst = U16 + (long)p * PanelWidth * k;
            int j0 = p * PanelWidth, cols = Math.Min(PanelWidth, n - j0);
            for (int kk = 0; kk < k; kk++, dst += PanelWidth)
            {
                for (int j = 0; j < PanelWidth; j++)
                    dst[GemmMicroKernels.U16Slot(j)] = j < cols ? conv(src[(long)(j0 + j) * k + kk]) : (ushort)0;
            }
        });
    }

    /// <summary>fp32 → bf16 bits, rounded to nearest even (NaN stays NaN).</summary>
    public static ushort ToBf16Bits(float value) => GemmMicroKernels.SingleToBf16(value);

    /// <summary>Element W[row, col] as the kernels see it (after any 16-bit rounding), for tests and debugging.</summary>
    public float this[int row, int col]
    {
        get
        {
            if ((uint)row >= (uint)N || (uint)col >= (uint)K) throw new IndexOutOfRangeException();
            int p = row / PanelWidth, j = row % PanelWidth;
            long baseIdx = (long)p * PanelWidth * K + (long)col * PanelWidth;
            return Format switch
            {
                WeightFormat.F32 => F32[baseIdx + j],
                WeightFormat.BF16 => GemmMicroKernels.Bf16ToSingle(U16[baseIdx + GemmMicroKernels.U16Slot(j)]),
                _ => (float)BitConverter.UInt16BitsToHalf(U16[baseIdx + GemmMicroKernels.U16Slot(j)]),
            };
        }
    }
}
