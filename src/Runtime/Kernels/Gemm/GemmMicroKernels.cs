using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ModelCompiler.Runtime.Kernels;

/// <summary>
/// The micro-kernels' shared constants, the in-register 16-bit → fp32 conversions, and the scalar
/// kernels. The unrolled SIMD kernels are generated (GemmMicroKernels.g.cs, tools/gen_gemm_kernels.py).
/// </summary>
internal static unsafe partial class GemmMicroKernels
{
    /// <summary>Panel width: every packed weight is NR-column panels, whatever the ISA.</summary>
    internal const int NR = 32;
    /// <summary>Rows per micro-tile (register blocking) of each ISA.</summary>
    internal const int MR512 = 14, MR256 = 6, MRScalar = 4;
    /// <summary>Flag: accumulate into C (a later K block) instead of starting from residual + bias.</summary>
    internal const int LoadC = 1;

    // ---- bf16: the high 16 bits of an fp32. A 32-bit lane holds two columns (low and high half).

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Bf16ToSingleLo(Vector512<uint> w) => Vector512.ShiftLeft(w, 16).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Bf16ToSingleHi(Vector512<uint> w) => (w & Vector512.Create(0xFFFF0000u)).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Bf16ToSingleLo(Vector256<uint> w) => Vector256.ShiftLeft(w, 16).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Bf16ToSingleHi(Vector256<uint> w) => (w & Vector256.Create(0xFFFF0000u)).AsSingle();

    // ---- fp16 (IEEE binary16), exact: exponent/mantissa shifted into place and rebiased by a multiply
    // by 2^112 (bits 0x77800000, which also normalises subnormals); Inf/NaN get the all-ones fp32 exponent.

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> F16ToSingleLo(Vector512<uint> w) => HalfBitsToSingle(w & Vector512.Create(0xFFFFu));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> F16ToSingleHi(Vector512<uint> w) => HalfBitsToSingle(Vector512.ShiftRightLogical(w, 16));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> F16ToSingleLo(Vector256<uint> w) => HalfBitsToSingle(w & Vector256.Create(0xFFFFu));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> F16ToSingleHi(Vector256<uint> w) => HalfBitsToSingle(Vector256.ShiftRightLogical(w, 16));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> HalfBitsToSingle(Vector512<uint> h)
    {
        var em = h & Vector512.Create(0x7FFFu);
        var shifted = Vector512.ShiftLeft(em, 13);
        var finite = shifted.AsSingle() * Vector512.Create(0x77800000u).AsSingle();
        var special = (shifted | Vector512.Create(0x7F800000u)).AsSingle();
        var mag = Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(em, Vector512.Create(0x7C00u)).AsSingle(), special, finite);
        return (mag.AsUInt32() | Vector512.ShiftLeft(h & Vector512.Create(0x8000u), 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> HalfBitsToSingle(Vector256<uint> h)
    {
        var em = h & Vector256.Create(0x7FFFu);
        var shifted = Vector256.ShiftLeft(em, 13);
        var finite = shifted.AsSingle() * Vector256.Create(0x77800000u).AsSingle();
        var special = (shifted | Vector256.Create(0x7F800000u)).AsSingle();
        var mag = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(em, Vector256.Create(0x7C00u)).AsSingle(), special, finite);
        return (mag.AsUInt32() | Vector256.ShiftLeft(h & Vector256.Create(0x8000u), 16)).AsSingle();
    }

    /// <summary>bf16 bits → fp32 (scalar).</summary>
    internal static float Bf16ToSingle(ushort h) => BitConverter.UInt32BitsToSingle((uint)h << 16);

    /// <summary>fp32 → bf16 bits, round to nearest even (NaN stays NaN).</summary>
    public static ushort SingleToBf16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7FFFFFFF) > 0x7F800000) return (ushort)((u >> 16) | 0x40);
        return (ushort)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
    }

    // ---- scalar kernels (any mr; the portable fallback and the reference for the SIMD paths' layout)

    /// <summary>Column j of a 16-bit panel row sits at this index: columns j and j+16 share a 32-bit lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int U16Slot(int j) => j < 16 ? 2 * j : 2 * (j - 16) + 1;

    internal static void ScalarF32(int mr, int kc, float* a, float* b, float* c, nint ldc, float* bias, float* r, nint ldr, int flags)
    {
        float* acc = stackalloc float[NR];
        for (int i = 0; i < mr; i++)
        {
            InitRow(acc, i, c, ldc, bias, r, ldr, flags);
            float* ap = a + i;
            float* bp = b;
            for (int k = 0; k < kc; k++, ap += mr, bp += NR)
            {
                float av = *ap;
                for (int j = 0; j < NR; j++) acc[j] = MathF.FusedMultiplyAdd(av, bp[j], acc[j]);
            }
            for (int j = 0; j < NR; j++) c[i * ldc + j] = acc[j];
        }
    }

    internal static void ScalarU16(bool fp16, int mr, int kc, float* a, ushort* b, float* c, nint ldc, float* bias, float* r, nint ldr, int flags)
    {
        float* acc = stackalloc float[NR];
        float* wrow = stackalloc float[NR];
        for (int i = 0; i < mr; i++)
        {
            InitRow(acc, i, c, ldc, bias, r, ldr, flags);
            float* ap = a + i;
            ushort* bp = b;
            for (int k = 0; k < kc; k++, ap += mr, bp += NR)
            {
                for (int j = 0; j < NR; j++)
                {
                    ushort h = bp[U16Slot(j)];
                    wrow[j] = fp16 ? (float)BitConverter.UInt16BitsToHalf(h) : Bf16ToSingle(h);
                }
                float av = *ap;
                for (int j = 0; j < NR; j++) acc[j] = MathF.FusedMultiplyAdd(av, wrow[j], acc[j]);
            }
            for (int j = 0; j < NR; j++) c[i * ldc + j] = acc[j];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void InitRow(float* acc, int i, float* c, nint ldc, float* bias, float* r, nint ldr, int flags)
    {
        for (int j = 0; j < NR; j++)
        {
            float v;
            if ((flags & LoadC) != 0) v = c[i * ldc + j];
            else
            {
                v = r != null ? r[i * ldr + j] : 0f;
                if (bias != null) v += bias[j];
            }
            acc[j] = v;
        }
    }
}
