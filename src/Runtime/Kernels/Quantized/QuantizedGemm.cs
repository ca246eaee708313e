using System.Buffers;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ModelCompiler.Runtime.Kernels;

/// <summary>Which instructions the quantized kernels use; Auto picks the best the machine has, at run time.</summary>
public enum QuantIsa { Auto, Scalar, Vector256, Vector512, Vnni }

/// <summary>
/// Y[M, N] = X[M, K]·Wᵀ (+ bias) with W compressed (<see cref="QuantizedWeight"/>), never expanded to fp32 as a
/// whole. Decode (M &lt; 4) streams each weight row once and converts its codes in registers: int8 → int32 → fp32
/// (vpmovsxbd), int4 nibbles split with a mask and a shift, minus the zero point, → fp32, then FMA with x; the
/// group's scale multiplies the group's vector partial sum. Larger M expands one weight row at a time into a
/// per-thread scratch row and reuses it for every row of X. W8A8 rounds each row of X to int8 with its own scale
/// and takes int8×int8→int32 dot products: VPDPBUSD (AVX-VNNI) multiplies unsigned by signed bytes, so X's codes
/// are shifted by +128 and 128·Σq of the group is subtracted; without VNNI, bytes widen to int16 and VPMADDWD sums pairs.
/// Rows of W are split over the GEMM's worker pool.
/// </summary>
public static unsafe class QuantizedGemm
{
    public static QuantIsa BestIsa { get; } =
        Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Avx512BW.IsSupported ? QuantIsa.Vector512
        : Avx2.IsSupported && Fma.IsSupported ? QuantIsa.Vector256
        : QuantIsa.Scalar;

    /// <summary>The integer dot product W8A8 uses on this machine.</summary>
    public static QuantIsa BestIntegerIsa { get; } = AvxVnni.IsSupported ? QuantIsa.Vnni : Avx2.IsSupported ? QuantIsa.Vector256 : QuantIsa.Scalar;

    public static bool IsSupported(QuantIsa isa) => isa switch
    {
        QuantIsa.Auto or QuantIsa.Scalar => true,
        QuantIsa.Vector256 => Avx2.IsSupported && Fma.IsSupported,
        QuantIsa.Vector512 => Avx512F.IsSupported && Avx512BW.IsSupported,
        QuantIsa.Vnni => AvxVnni.IsSupported,
        _ => false,
    };

    private const long ParallelThreshold = 1 << 16;

    /// <summary>y [m, w.N] = x [m, w.K]·Wᵀ + bias [w.N] (bias may be null).</summary>
    public static void Linear(float[] x, int m, QuantizedWeight w, float[]? bias, float[] y, QuantIsa isa = QuantIsa.Auto)
    {
        int n = w.N, k = w.K;
        if (x.Length < (long)m * k || y.Length < (long)m * n || (bias is not null && bias.Length != n))
            throw new ArgumentException($"quantized linear: x [{m}, {k}] / y [{m}, {n}] / bias do not fit the buffers");
        if (isa == QuantIsa.Auto) isa = w.Scheme == QuantScheme.W8A8 ? BestIntegerIsa : BestIsa;
        if (!IsSupported(isa)) throw new PlatformNotSupportedException($"{isa} is not supported on this machine");

        float[]? scaled = null;
        if (w.InputScale is { } inScale)
        {
            scaled = ArrayPool<float>.Shared.Rent(m * k);
            for (int r = 0; r < m; r++)
                for (int i = 0; i < k; i++) scaled[r * k + i] = x[r * k + i] * inScale[i];
            x = scaled;
        }
        sbyte[]? xq = null;
        float[]? xs = null;
        if (w.Scheme == QuantScheme.W8A8)
        {
            xq = ArrayPool<sbyte>.Shared.Rent(m * k);
            xs = ArrayPool<float>.Shared.Rent(m);
            for (int r = 0; r < m; r++) xs[r] = QuantizeRow(x.AsSpan(r * k, k), xq.AsSpan(r * k, k), isa == QuantIsa.Vnni);
        }
        try
        {
            int threads = MaxThreads();
            if (m >= PrefillRows && isa != QuantIsa.Scalar && w.Scheme is QuantScheme.Int8 or QuantScheme.Int4)
            {
                RowsPrefill(x, m, w, bias, y, threads);
                return;
            }
            bool parallel = threads > 1 && (long)m * n * k >= ParallelThreshold;
            int tasks = parallel ? Math.Min(n / 8 + 1, threads * 4) : 1;
            int chunk = (n + tasks - 1) / tasks;
            tasks = (n + chunk - 1) / chunk;
            var input = x;
            void Body(int t)
            {
                int n0 = t * chunk, n1 = Math.Min(n, n0 + chunk);
                if (w.Scheme == QuantScheme.W8A8) RowsW8A8(xq!, xs!, m, w, bias, y, n0, n1, isa);
                else if (w.Scheme == QuantScheme.Sparse24) SparseGemm.Rows(input, m, w, bias, y, n0, n1, isa);
                else if (m < 4) RowsDecode(input, m, w, bias, y, n0, n1, isa);
                else RowsExpanded(input, m, w, bias, y, n0, n1, isa);
            }
            if (tasks == 1) Body(0);
            else GemmWorkerPool.Shared.Run(tasks, Body);
        }
        finally
        {
            if (scaled is not null) ArrayPool<float>.Shared.Return(scaled);
            if (xq is not null) ArrayPool<sbyte>.Shared.Return(xq);
            if (xs is not null) ArrayPool<float>.Shared.Return(xs);
        }
    }

    private static int MaxThreads()
    {
        int cap = GemmOptions.Default.MaxThreads;
        int cores = GemmWorkerPool.Shared.Workers + 1;
        return cap > 0 ? Math.Min(cap, cores) : cores;
    }

    /// <summary>
    /// One row of activations to int8 with scale max|x|/127 (fp32 arithmetic, round half to even, as the reference
    /// interpreter does); returns the scale. With <paramref name="unsignedShift"/> the codes are stored +128 as bytes
    /// (the unsigned operand of VPDPBUSD).
    /// </summary>
    public static float QuantizeRow(ReadOnlySpan<float> x, Span<sbyte> codes, bool unsignedShift = false)
    {
        float max = 0;
        foreach (var v in x) max = MathF.Max(max, MathF.Abs(v));
        float scale = max > 0 ? max / 127f : 1f;
        for (int i = 0; i < x.Length; i++)
        {
            int q = (int)MathF.Round(x[i] / scale, MidpointRounding.ToEven);
            q = Math.Clamp(q, -127, 127);
            codes[i] = unsignedShift ? unchecked((sbyte)(byte)(q + 128)) : (sbyte)q;
        }
        return scale;
    }

    // ---- weight-only, decode: codes converted in registers ----

    /// <summary>
    /// Decode rows: four weight rows at a time share each load of x and keep four independent accumulator chains
    /// (one row at a time is bound by the latency of its single chain, not by memory); leftover rows one by one.
    /// For int4 the zero point leaves the inner loop: Σ x·(q − z) = Σ x·q − z·Σ x per group, where Σ x comes from a
    /// per-group vector of x's pair sums made once per call (<see cref="GroupPairSums"/>).
    /// </summary>
    private static void RowsDecode(float[] x, int m, QuantizedWeight w, float[]? bias, float[] y, int n0, int n1, QuantIsa isa)
    {
        int k = w.K, groups = w.Groups;
        bool int4 = w.Scheme == QuantScheme.Int4;
        bool wide = isa is QuantIsa.Vector512 or QuantIsa.Vector256 && w.GroupSize % 32 == 0;
        int lanes = isa == QuantIsa.Vector512 ? 16 : 8;
        float[]? pairSums = int4 && wide ? ArrayPool<float>.Shared.Rent(m * (k / 32) * lanes) : null;
        try
        {
            fixed (float* xp = x, sp = w.Scales)
            fixed (float* ps = pairSums)
            {
                if (ps is not null)
                    for (int r = 0; r < m; r++) GroupPairSums(xp + r * k, k, lanes, ps + r * (k / 32) * lanes);
                int row = n0;
                float* out4 = stackalloc float[4];
                if (wide)
                    for (; row + 4 <= n1; row += 4)
                        for (int r = 0; r < m; r++)
                        {
                            if (int4)
                                fixed (byte* qp = &w.Int4Codes![row * (k / 2)], zp = &w.Zeros![row * groups])
                                    Dot4Int4(xp + r * k, ps + r * (k / 32) * lanes, qp, k / 2, sp + row * groups, zp, groups, w.GroupSize, isa, out4);
                            else
                                fixed (sbyte* qp = &w.Int8Codes![row * k])
                                    Dot4Int8(xp + r * k, qp, k, sp + row * groups, groups, w.GroupSize, isa, out4);
                            for (int j = 0; j < 4; j++)
                                y[r * w.N + row + j] = bias is null ? out4[j] : out4[j] + bias[row + j];
                        }
                for (; row < n1; row++)
                    for (int r = 0; r < m; r++)
                    {
                        float acc;
                        if (!int4)
                            fixed (sbyte* qp = &w.Int8Codes![row * k])
                                acc = DotInt8(xp + r * k, qp, sp + row * groups, k, w.GroupSize, isa);
                        else
                            fixed (byte* qp = &w.Int4Codes![row * (k / 2)], zp = &w.Zeros![row * groups])
                                acc = DotInt4(xp + r * k, qp, sp + row * groups, zp, k, w.GroupSize, isa);
                        y[r * w.N + row] = bias is null ? acc : acc + bias[row];
                    }
            }
        }
        finally
        {
            if (pairSums is not null) ArrayPool<float>.Shared.Return(pairSums);
        }
    }

    /// <summary>
    /// Per block of 32 inputs, a vector of <paramref name="lanes"/> floats whose lanes sum to the block's Σ x
    /// (x[i..i+L] + x[i+L..i+2L] + …), so a group's Σ x·z is one FMA of such vectors with −s·z.
    /// </summary>
    private static void GroupPairSums(float* x, int k, int lanes, float* sums)
    {
        for (int b = 0; b < k / 32; b++)
            for (int l = 0; l < lanes; l++)
            {
                float t = 0;
                for (int i = l; i < 32; i += lanes) t += x[b * 32 + i];
                sums[b * lanes + l] = t;
            }
    }

    /// <summary>Four rows' Σ_k x[k]·s[k/G]·q[k] with int8 codes (rows <paramref name="k"/> apart, scales <paramref name="groups"/> apart).</summary>
    private static void Dot4Int8(float* x, sbyte* q, int k, float* s, int groups, int group, QuantIsa isa, float* result)
    {
        sbyte* q0 = q, q1 = q + k, q2 = q1 + k, q3 = q2 + k;
        if (isa == QuantIsa.Vector512)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int g0 = 0, gi = 0; g0 < k; g0 += group, gi++)
            {
                Vector512<float> p0 = default, p1 = default, p2 = default, p3 = default;
                for (int i = g0; i < g0 + group; i += 16)
                {
                    var xv = Vector512.Load(x + i);
                    p0 = Avx512F.FusedMultiplyAdd(xv, Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(q0 + i))), p0);
                    p1 = Avx512F.FusedMultiplyAdd(xv, Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(q1 + i))), p1);
                    p2 = Avx512F.FusedMultiplyAdd(xv, Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(q2 + i))), p2);
                    p3 = Avx512F.FusedMultiplyAdd(xv, Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(q3 + i))), p3);
                }
                a0 = Avx512F.FusedMultiplyAdd(p0, Vector512.Create(s[gi]), a0);
                a1 = Avx512F.FusedMultiplyAdd(p1, Vector512.Create(s[groups + gi]), a1);
                a2 = Avx512F.FusedMultiplyAdd(p2, Vector512.Create(s[2 * groups + gi]), a2);
                a3 = Avx512F.FusedMultiplyAdd(p3, Vector512.Create(s[3 * groups + gi]), a3);
            }
            result[0] = Vector512.Sum(a0); result[1] = Vector512.Sum(a1); result[2] = Vector512.Sum(a2); result[3] = Vector512.Sum(a3);
            return;
        }
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int g0 = 0, gi = 0; g0 < k; g0 += group, gi++)
            {
                Vector256<float> p0 = default, p1 = default, p2 = default, p3 = default;
                for (int i = g0; i < g0 + group; i += 8)
                {
                    var xv = Vector256.Load(x + i);
                    p0 = Fma.MultiplyAdd(xv, Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q0 + i)), p0);
                    p1 = Fma.MultiplyAdd(xv, Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q1 + i)), p1);
                    p2 = Fma.MultiplyAdd(xv, Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q2 + i)), p2);
                    p3 = Fma.MultiplyAdd(xv, Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q3 + i)), p3);
                }
                a0 = Fma.MultiplyAdd(p0, Vector256.Create(s[gi]), a0);
                a1 = Fma.MultiplyAdd(p1, Vector256.Create(s[groups + gi]), a1);
                a2 = Fma.MultiplyAdd(p2, Vector256.Create(s[2 * groups + gi]), a2);
                a3 = Fma.MultiplyAdd(p3, Vector256.Create(s[3 * groups + gi]), a3);
            }
            result[0] = Vector256.Sum(a0); result[1] = Vector256.Sum(a1); result[2] = Vector256.Sum(a2); result[3] = Vector256.Sum(a3);
        }
    }

    /// <summary>
    /// Four rows' Σ_k x[k]·s[k/G]·(q[k] − z[k/G]) with packed 4-bit codes (rows <paramref name="rowBytes"/> apart):
    /// each byte widens once to a 32-bit lane, and its low and high nibbles become the block's first and second 16
    /// weights; the zero point enters once per block through <paramref name="pairSums"/>.
    /// </summary>
    private static void Dot4Int4(float* x, float* pairSums, byte* q, int rowBytes, float* s, byte* z, int groups, int group, QuantIsa isa, float* result)
    {
        int k = rowBytes * 2;
        byte* q0 = q, q1 = q + rowBytes, q2 = q1 + rowBytes, q3 = q2 + rowBytes;
        if (isa == QuantIsa.Vector512)
        {
            var mask = Vector512.Create(0x0F);
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int g0 = 0, gi = 0; g0 < k; g0 += group, gi++)
            {
                Vector512<float> p0 = default, p1 = default, p2 = default, p3 = default, xs = default;
                for (int i = g0; i < g0 + group; i += 32)
                {
                    var xl = Vector512.Load(x + i);
                    var xh = Vector512.Load(x + i + 16);
                    xs += Vector512.Load(pairSums + i / 2);
                    var b0 = Avx512F.ConvertToVector512Int32(Vector128.Load(q0 + i / 2));
                    var b1 = Avx512F.ConvertToVector512Int32(Vector128.Load(q1 + i / 2));
                    var b2 = Avx512F.ConvertToVector512Int32(Vector128.Load(q2 + i / 2));
                    var b3 = Avx512F.ConvertToVector512Int32(Vector128.Load(q3 + i / 2));
                    p0 = Avx512F.FusedMultiplyAdd(xl, Avx512F.ConvertToVector512Single(b0 & mask), p0);
                    p1 = Avx512F.FusedMultiplyAdd(xl, Avx512F.ConvertToVector512Single(b1 & mask), p1);
                    p2 = Avx512F.FusedMultiplyAdd(xl, Avx512F.ConvertToVector512Single(b2 & mask), p2);
                    p3 = Avx512F.FusedMultiplyAdd(xl, Avx512F.ConvertToVector512Single(b3 & mask), p3);
                    p0 = Avx512F.FusedMultiplyAdd(xh, Avx512F.ConvertToVector512Single(Vector512.ShiftRightLogical(b0, 4)), p0);
                    p1 = Avx512F.FusedMultiplyAdd(xh, Avx512F.ConvertToVector512Single(Vector512.ShiftRightLogical(b1, 4)), p1);
                    p2 = Avx512F.FusedMultiplyAdd(xh, Avx512F.ConvertToVector512Single(Vector512.ShiftRightLogical(b2, 4)), p2);
                    p3 = Avx512F.FusedMultiplyAdd(xh, Avx512F.ConvertToVector512Single(Vector512.ShiftRightLogical(b3, 4)), p3);
                }
                a0 = Avx512F.FusedMultiplyAdd(Avx512F.FusedMultiplyAdd(xs, Vector512.Create(-(float)z[gi]), p0), Vector512.Create(s[gi]), a0);
                a1 = Avx512F.FusedMultiplyAdd(Avx512F.FusedMultiplyAdd(xs, Vector512.Create(-(float)z[groups + gi]), p1), Vector512.Create(s[groups + gi]), a1);
                a2 = Avx512F.FusedMultiplyAdd(Avx512F.FusedMultiplyAdd(xs, Vector512.Create(-(float)z[2 * groups + gi]), p2), Vector512.Create(s[2 * groups + gi]), a2);
                a3 = Avx512F.FusedMultiplyAdd(Avx512F.FusedMultiplyAdd(xs, Vector512.Create(-(float)z[3 * groups + gi]), p3), Vector512.Create(s[3 * groups + gi]), a3);
            }
            result[0] = Vector512.Sum(a0); result[1] = Vector512.Sum(a1); result[2] = Vector512.Sum(a2); result[3] = Vector512.Sum(a3);
            return;
        }
        {
            var mask = Vector256.Create(0x0F);
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int g0 = 0, gi = 0; g0 < k; g0 += group, gi++)
            {
                Vector256<float> p0 = default, p1 = default, p2 = default, p3 = default, xs = default;
                for (int i = g0; i < g0 + group; i += 32)
                {
                    xs += Vector256.Load(pairSums + i / 4);
                    for (int h = 0; h < 16; h += 8)   // bytes h..h+8 of the block: weights i+h.. (low) and i+16+h.. (high)
                    {
                        var xl = Vector256.Load(x + i + h);
                        var xh = Vector256.Load(x + i + 16 + h);
                        var b0 = Avx2.ConvertToVector256Int32(q0 + i / 2 + h);
                        var b1 = Avx2.ConvertToVector256Int32(q1 + i / 2 + h);
                        var b2 = Avx2.ConvertToVector256Int32(q2 + i / 2 + h);
                        var b3 = Avx2.ConvertToVector256Int32(q3 + i / 2 + h);
                        p0 = Fma.MultiplyAdd(xl, Avx.ConvertToVector256Single(b0 & mask), p0);
                        p1 = Fma.MultiplyAdd(xl, Avx.ConvertToVector256Single(b1 & mask), p1);
                        p2 = Fma.MultiplyAdd(xl, Avx.ConvertToVector256Single(b2 & mask), p2);
                        p3 = Fma.MultiplyAdd(xl, Avx.ConvertToVector256Single(b3 & mask), p3);
                        p0 = Fma.MultiplyAdd(xh, Avx.ConvertToVector256Single(Vector256.ShiftRightLogical(b0, 4)), p0);
                        p1 = Fma.MultiplyAdd(xh, Avx.ConvertToVector256Single(Vector256.ShiftRightLogical(b1, 4)), p1);
                        p2 = Fma.MultiplyAdd(xh, Avx.ConvertToVector256Single(Vector256.ShiftRightLogical(b2, 4)), p2);
                        p3 = Fma.MultiplyAdd(xh, Avx.ConvertToVector256Single(Vector256.ShiftRightLogical(b3, 4)), p3);
                    }
                }
                a0 = Fma.MultiplyAdd(Fma.MultiplyAdd(xs, Vector256.Create(-(float)z[gi]), p0), Vector256.Create(s[gi]), a0);
                a1 = Fma.MultiplyAdd(Fma.MultiplyAdd(xs, Vector256.Create(-(float)z[groups + gi]), p1), Vector256.Create(s[groups + gi]), a1);
                a2 = Fma.MultiplyAdd(Fma.MultiplyAdd(xs, Vector256.Create(-(float)z[2 * groups + gi]), p2), Vector256.Create(s[2 * groups + gi]), a2);
                a3 = Fma.MultiplyAdd(Fma.MultiplyAdd(xs, Vector256.Create(-(float)z[3 * groups + gi]), p3), Vector256.Create(s[3 * groups + gi]), a3);
            }
            result[0] = Vector256.Sum(a0); result[1] = Vector256.Sum(a1); result[2] = Vector256.Sum(a2); result[3] = Vector256.Sum(a3);
        }
    }

    /// <summary>Σ_k x[k]·s[k/G]·q[k] with int8 codes.</summary>
    internal static float DotInt8(float* x, sbyte* q, float* scales, int k, int group, QuantIsa isa)
    {
        if (isa == QuantIsa.Vector512 && group % 32 == 0)
        {
            var acc = Vector512<float>.Zero;
            for (int g0 = 0, gi = 0; g0 < k; g0 += group, gi++)
            {
                Vector512<float> p0 = Vector512<float>.Zero, p1 = Vector512<float>.Zero;
                for (int i = g0; i < g0 + group; i += 32)
                {
                    var q0 = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(q + i)));
                    var q1 = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(q + i + 16)));
                    p0 = Avx512F.FusedMultiplyAdd(Vector512.Load(x + i), q0, p0);
                    p1 = Avx512F.FusedMultiplyAdd(Vector512.Load(x + i + 16), q1, p1);
                }
                acc = Avx512F.FusedMultiplyAdd(p0 + p1, Vector512.Create(scales[gi]), acc);
            }
            return Vector512.Sum(acc);
        }
        if (isa is QuantIsa.Vector256 or QuantIsa.Vector512 && group % 16 == 0)
        {
            var acc = Vector256<float>.Zero;
            for (int g0 = 0, gi = 0; g0 < k; g0 += group, gi++)
            {
                Vector256<float> p0 = Vector256<float>.Zero, p1 = Vector256<float>.Zero;
                for (int i = g0; i < g0 + group; i += 16)
                {
                    var q0 = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q + i));
                    var q1 = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q + i + 8));
                    p0 = Fma.MultiplyAdd(Vector256.Load(x + i), q0, p0);
                    p1 = Fma.MultiplyAdd(Vector256.Load(x + i + 8), q1, p1);
                }
                acc = Fma.MultiplyAdd(p0 + p1, Vector256.Create(scales[gi]), acc);
            }
            return Vector256.Sum(acc);
        }
        float total = 0;
        for (int g0 = 0, gi = 0; g0 < k; g0 += group, gi++)
        {
            float part = 0;
            for (int i = g0; i < g0 + group; i++) part += x[i] * q[i];
            total += part * scales[gi];
        }
        return total;
    }

    /// <summary>Σ_k x[k]·s[k/G]·(q[k] − z[k/G]) with 4-bit codes packed as in <see cref="QuantizedWeight.Int4Code"/>.</summary>
    internal static float DotInt4(float* x, byte* q, float* scales, byte* zeros, int k, int group, QuantIsa isa)
    {
        var mask = Vector128.Create((byte)0x0F);
        if (isa == QuantIsa.Vector512)
        {
            var acc = Vector512<float>.Zero;
            for (int g0 = 0, gi = 0; g0 < k; g0 += group, gi++)
            {
                var z = Vector512.Create((int)zeros[gi]);
                Vector512<float> p0 = Vector512<float>.Zero, p1 = Vector512<float>.Zero;
                for (int i = g0; i < g0 + group; i += 32)
                {
                    var b = Vector128.Load(q + i / 2);
                    var lo = b & mask;
                    var hi = Vector128.ShiftRightLogical(b.AsUInt16(), 4).AsByte() & mask;
                    var wl = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(lo) - z);
                    var wh = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(hi) - z);
                    p0 = Avx512F.FusedMultiplyAdd(Vector512.Load(x + i), wl, p0);
                    p1 = Avx512F.FusedMultiplyAdd(Vector512.Load(x + i + 16), wh, p1);
                }
                acc = Avx512F.FusedMultiplyAdd(p0 + p1, Vector512.Create(scales[gi]), acc);
            }
            return Vector512.Sum(acc);
        }
        if (isa == QuantIsa.Vector256)
        {
            var acc = Vector256<float>.Zero;
            for (int g0 = 0, gi = 0; g0 < k; g0 += group, gi++)
            {
                var z = Vector256.Create((int)zeros[gi]);
                Vector256<float> p0 = Vector256<float>.Zero, p1 = Vector256<float>.Zero;
                for (int i = g0; i < g0 + group; i += 32)
                {
                    var b = Vector128.Load(q + i / 2);
                    var lo = b & mask;
                    var hi = Vector128.ShiftRightLogical(b.AsUInt16(), 4).AsByte() & mask;
                    var l0 = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(lo) - z);
                    var l1 = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(lo, 8)) - z);
                    var h0 = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(hi) - z);
                    var h1 = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(hi, 8)) - z);
                    p0 = Fma.MultiplyAdd(Vector256.Load(x + i), l0, p0);
                    p1 = Fma.MultiplyAdd(Vector256.Load(x + i + 8), l1, p1);
                    p0 = Fma.MultiplyAdd(Vector256.Load(x + i + 16), h0, p0);
                    p1 = Fma.MultiplyAdd(Vector256.Load(x + i + 24), h1, p1);
                }
                acc = Fma.MultiplyAdd(p0 + p1, Vector256.Create(scales[gi]), acc);
            }
            return Vector256.Sum(acc);
        }
        float total = 0;
        for (int g0 = 0, gi = 0; g0 < k; g0 += group, gi++)
        {
            float part = 0;
            int z = zeros[gi];
            for (int i = g0; i < g0 + group; i++)
            {
                int j = i % 32;
                byte b = q[(i - j) / 2 + (j & 15)];
                part += x[i] * ((j < 16 ? b & 0x0F : b >> 4) - z);
            }
            total += part * scales[gi];
        }
        return total;
    }

    // ---- weight-only, prefill: chunks of weight rows expanded and packed, multiplied by the fp32 GEMM ----

    /// <summary>Rows of X from which a weight-only product expands chunks of W for the blocked GEMM (below: a row at a time).</summary>
    public const int PrefillRows = 16;

    [ThreadStatic] private static Dictionary<(int, int), PackedWeight>? _scratchPanels;

    /// <summary>
    /// Prefill: W's rows in chunks (a few per thread, multiples of the GEMM's panel width), each expanded to fp32 into
    /// a thread's scratch, packed into a reused panel buffer and multiplied by the register-blocked GEMM on that thread.
    /// The expansion is O(N·K) against the product's O(M·N·K), and at no time does more than a chunk exist in fp32.
    /// </summary>
    private static void RowsPrefill(float[] x, int m, QuantizedWeight w, float[]? bias, float[] y, int threads)
    {
        int n = w.N, k = w.K, panel = PackedWeight.PanelWidth;
        int chunk = Math.Clamp((n + 2 * threads - 1) / (2 * threads), panel, 512);
        chunk = (chunk + panel - 1) / panel * panel;
        int tasks = (n + chunk - 1) / chunk;
        var single = new GemmOptions { Threading = GemmThreading.Single };
        void Body(int t)
        {
            int n0 = t * chunk, rows = Math.Min(chunk, n - n0);
            var dense = ArrayPool<float>.Shared.Rent(rows * k);
            try
            {
                for (int j = 0; j < rows; j++) Expand(w, n0 + j, dense.AsSpan(j * k, k));
                _scratchPanels ??= new();
                if (!_scratchPanels.TryGetValue((rows, k), out var packed))
                    _scratchPanels[(rows, k)] = packed = PackedWeight.Scratch(rows, k);
                fixed (float* dp = dense, xp = x, yp = y, bp = bias)
                {
                    packed.Refill(dp);
                    Gemm.Linear(xp, k, m, packed, yp + n0, n, bp is null ? null : bp + n0, null, 0, single);
                }
            }
            finally { ArrayPool<float>.Shared.Return(dense); }
        }
        if (tasks == 1 || threads == 1) for (int t = 0; t < tasks; t++) Body(t);
        else GemmWorkerPool.Shared.Run(tasks, Body);
    }

    // ---- weight-only, small M: expanded weight rows reused for every row of X ----

    private const int ExpandedRows = 4;

    private static void RowsExpanded(float[] x, int m, QuantizedWeight w, float[]? bias, float[] y, int n0, int n1, QuantIsa isa)
    {
        int k = w.K;
        var rows = ArrayPool<float>.Shared.Rent(ExpandedRows * k);
        try
        {
            fixed (float* xp = x, wp = rows)
                for (int row = n0; row < n1; row += ExpandedRows)
                {
                    int count = Math.Min(ExpandedRows, n1 - row);
                    for (int j = 0; j < count; j++) Expand(w, row + j, rows.AsSpan(j * k, k));
                    for (int r = 0; r < m; r++)
                    {
                        float* xr = xp + r * k;
                        if (count == ExpandedRows)
                        {
                            Dot4(xr, wp, k, isa, out var d0, out var d1, out var d2, out var d3);
                            y[r * w.N + row] = d0 + (bias?[row] ?? 0);
                            y[r * w.N + row + 1] = d1 + (bias?[row + 1] ?? 0);
                            y[r * w.N + row + 2] = d2 + (bias?[row + 2] ?? 0);
                            y[r * w.N + row + 3] = d3 + (bias?[row + 3] ?? 0);
                        }
                        else
                            for (int j = 0; j < count; j++) y[r * w.N + row + j] = DotF32(xr, wp + j * k, k, isa) + (bias?[row + j] ?? 0);
                    }
                }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(rows);
        }
    }

    /// <summary>One weight row dequantized into <paramref name="dst"/>.</summary>
    private static void Expand(QuantizedWeight w, int row, Span<float> dst)
    {
        int k = w.K, g = w.GroupSize, groups = w.Groups;
        if (w.Scheme != QuantScheme.Int4)
        {
            var q = w.Int8Codes.AsSpan(row * k, k);
            for (int i = 0; i < k; i++) dst[i] = w.Scales[row * groups + i / g] * q[i];
            return;
        }
        var packed = w.Int4Codes.AsSpan(row * (k / 2), k / 2);
        for (int block = 0; block < k / 32; block++)
        {
            int gi = row * groups + block * 32 / g;
            float s = w.Scales[gi];
            int z = w.Zeros![gi];
            for (int j = 0; j < 16; j++)
            {
                byte b = packed[block * 16 + j];
                dst[block * 32 + j] = s * ((b & 0x0F) - z);
                dst[block * 32 + 16 + j] = s * ((b >> 4) - z);
            }
        }
    }

    /// <summary>Four dot products of one x row with four consecutive expanded weight rows (x loaded once).</summary>
    private static void Dot4(float* x, float* w, int k, QuantIsa isa, out float d0, out float d1, out float d2, out float d3)
    {
        int i = 0;
        d0 = d1 = d2 = d3 = 0;
        if (isa == QuantIsa.Vector512)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + 16 <= k; i += 16)
            {
                var xv = Vector512.Load(x + i);
                a0 = Avx512F.FusedMultiplyAdd(xv, Vector512.Load(w + i), a0);
                a1 = Avx512F.FusedMultiplyAdd(xv, Vector512.Load(w + k + i), a1);
                a2 = Avx512F.FusedMultiplyAdd(xv, Vector512.Load(w + 2 * k + i), a2);
                a3 = Avx512F.FusedMultiplyAdd(xv, Vector512.Load(w + 3 * k + i), a3);
            }
            d0 = Vector512.Sum(a0); d1 = Vector512.Sum(a1); d2 = Vector512.Sum(a2); d3 = Vector512.Sum(a3);
        }
        else if (isa != QuantIsa.Scalar && Fma.IsSupported)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + 8 <= k; i += 8)
            {
                var xv = Vector256.Load(x + i);
                a0 = Fma.MultiplyAdd(xv, Vector256.Load(w + i), a0);
                a1 = Fma.MultiplyAdd(xv, Vector256.Load(w + k + i), a1);
                a2 = Fma.MultiplyAdd(xv, Vector256.Load(w + 2 * k + i), a2);
                a3 = Fma.MultiplyAdd(xv, Vector256.Load(w + 3 * k + i), a3);
            }
            d0 = Vector256.Sum(a0); d1 = Vector256.Sum(a1); d2 = Vector256.Sum(a2); d3 = Vector256.Sum(a3);
        }
        for (; i < k; i++)
        {
            d0 += x[i] * w[i]; d1 += x[i] * w[k + i]; d2 += x[i] * w[2 * k + i]; d3 += x[i] * w[3 * k + i];
        }
    }

    private static float DotF32(float* a, float* b, int k, QuantIsa isa)
    {
        int i = 0;
        float total = 0;
        if (isa == QuantIsa.Vector512)
        {
            Vector512<float> p0 = Vector512<float>.Zero, p1 = Vector512<float>.Zero;
            for (; i + 32 <= k; i += 32)
            {
                p0 = Avx512F.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), p0);
                p1 = Avx512F.FusedMultiplyAdd(Vector512.Load(a + i + 16), Vector512.Load(b + i + 16), p1);
            }
            total = Vector512.Sum(p0 + p1);
        }
        else if (isa != QuantIsa.Scalar && Fma.IsSupported)
        {
            Vector256<float> p0 = Vector256<float>.Zero, p1 = Vector256<float>.Zero;
            for (; i + 16 <= k; i += 16)
            {
                p0 = Fma.MultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), p0);
                p1 = Fma.MultiplyAdd(Vector256.Load(a + i + 8), Vector256.Load(b + i + 8), p1);
            }
            total = Vector256.Sum(p0 + p1);
        }
        for (; i < k; i++) total += a[i] * b[i];
        return total;
    }

    // ---- W8A8: int8 × int8 → int32 ----

    private static void RowsW8A8(sbyte[] xq, float[] xs, int m, QuantizedWeight w, float[]? bias, float[] y, int n0, int n1, QuantIsa isa)
    {
        int k = w.K, groups = w.Groups, g = w.GroupSize;
        fixed (sbyte* xp = xq, qp = w.Int8Codes)
        fixed (float* sp = w.Scales)
        fixed (int* cs = w.GroupCodeSums)
            for (int row = n0; row < n1; row++)
                for (int r = 0; r < m; r++)
                {
                    float acc = 0;
                    for (int gi = 0; gi < groups; gi++)
                    {
                        int dot = DotI8(xp + r * k + gi * g, qp + (long)row * k + gi * g, g, isa);
                        if (isa == QuantIsa.Vnni) dot -= 128 * cs[row * groups + gi];
                        acc += dot * sp[row * groups + gi];
                    }
                    acc *= xs[r];
                    y[r * w.N + row] = bias is null ? acc : acc + bias[row];
                }
    }

    /// <summary>Σ a[i]·b[i] (for <see cref="QuantIsa.Vnni"/>: a holds the codes +128 as unsigned bytes; see the pointer overload).</summary>
    public static int DotI8(ReadOnlySpan<sbyte> a, ReadOnlySpan<sbyte> b, QuantIsa isa)
    {
        if (a.Length != b.Length) throw new ArgumentException("operands differ in length");
        if (!IsSupported(isa)) throw new PlatformNotSupportedException($"{isa} is not supported on this machine");
        fixed (sbyte* pa = a, pb = b) return DotI8(pa, pb, a.Length, isa == QuantIsa.Auto ? BestIntegerIsa : isa);
    }

    /// <summary>
    /// Σ a[i]·b[i] over <paramref name="length"/> int8s. For <see cref="QuantIsa.Vnni"/> <paramref name="a"/> holds
    /// the codes +128 as unsigned bytes, so the result is Σ a·b + 128·Σ b (the caller subtracts 128·Σ b).
    /// </summary>
    internal static int DotI8(sbyte* a, sbyte* b, int length, QuantIsa isa)
    {
        int i = 0, total = 0;
        if (isa == QuantIsa.Vnni)
        {
            Vector256<int> acc0 = Vector256<int>.Zero, acc1 = Vector256<int>.Zero;
            for (; i + 64 <= length; i += 64)
            {
                acc0 = AvxVnni.MultiplyWideningAndAdd(acc0, Vector256.Load((byte*)a + i), Vector256.Load(b + i));
                acc1 = AvxVnni.MultiplyWideningAndAdd(acc1, Vector256.Load((byte*)a + i + 32), Vector256.Load(b + i + 32));
            }
            for (; i + 32 <= length; i += 32)
                acc0 = AvxVnni.MultiplyWideningAndAdd(acc0, Vector256.Load((byte*)a + i), Vector256.Load(b + i));
            total = Vector256.Sum(acc0 + acc1);
            for (; i < length; i++) total += ((byte*)a)[i] * b[i];
            return total;
        }
        if (isa != QuantIsa.Scalar)
        {
            var acc = Vector256<int>.Zero;
            for (; i + 16 <= length; i += 16)
            {
                var wa = Avx2.ConvertToVector256Int16(Vector128.Load(a + i));
                var wb = Avx2.ConvertToVector256Int16(Vector128.Load(b + i));
                acc = Avx2.Add(acc, Avx2.MultiplyAddAdjacent(wa, wb));
            }
            total = Vector256.Sum(acc);
        }
        for (; i < length; i++) total += a[i] * b[i];
        return total;
    }
}
