using ILGPU;
using ILGPU.Runtime;

namespace ModelCompiler.Backends.Cuda.Kernels;

/// <summary>How a linear's weight is stored on the device.</summary>
public static class WeightFormat
{
    /// <summary>fp32 in a float buffer; fp16 or bf16 as pairs of 16-bit values packed in a uint buffer (low half first).</summary>
    public const int F32 = 0, F16 = 1, Bf16 = 2;
}

/// <summary>One linear y[m, n] = epilogue(Σ_k prologue(x)[m, k] · w[n, k]) run as matrix-vector products.</summary>
public struct GemvShape
{
    public int M, N, K;

    /// <summary>Weight storage (<see cref="WeightFormat"/>).</summary>
    public int Format;

    /// <summary>Prologue on each x row: 0 none, 1 RMSNorm, 2 LayerNorm, with the norm's weight (HasNormW) and bias (HasNormB).</summary>
    public int Prologue, HasNormW, HasNormB;
    public float Eps, Offset;

    /// <summary>Epilogue: + bias[n], activation, gate (out[:, c] = act(y[:, c]) · y[:, c + N] over a weight of 2N rows), + residual[m, n].</summary>
    public int HasBias, Activation, Gate, HasResidual;
}

/// <summary>
/// Bandwidth-bound linears (decode: one row of x; any row count when the weight is 16-bit): each group stages the x row
/// in shared memory (normalised there when the linear has a norm prologue, so the norm costs no launch of its own),
/// then each warp owns output columns and reads their weight rows with coalesced loads (fp32: 32 floats per warp load;
/// fp16/bf16: 32 uint pairs, converted in registers), accumulates in fp32 and reduces with warp shuffles. The epilogue
/// (bias, activation, gate, residual) is applied by lane 0 before the single store.
/// </summary>
public static class GemvKernels
{
    /// <summary>The longest x row staged in shared memory (32 KB of the 48 KB static limit).</summary>
    public const int MaxK = 8192;

    public const int Lanes = 32;

    public static void Gemv(ArrayView<float> x, ArrayView<float> w, ArrayView<uint> packed, ArrayView<float> normW, ArrayView<float> normB,
        ArrayView<float> bias, ArrayView<float> residual, ArrayView<float> y, GemvShape s)
    {
        var xs = SharedMemory.Allocate<float>(MaxK);
        var scratch = SharedMemory.Allocate<float>(Lanes);
        int tid = Group.IdxX, lane = tid % Lanes, warps = Group.DimX / Lanes, warp = tid / Lanes;
        for (int m = Grid.IdxY; m < s.M; m += Grid.DimY)
        {
            long xo = (long)m * s.K;
            float mean = 0, inv = 1;
            if (s.Prologue == 2)
            {
                float sum = 0;
                for (int i = tid; i < s.K; i += Group.DimX) sum += x[xo + i];
                mean = BlockSum(scratch, sum) / s.K;
            }
            if (s.Prologue != 0)
            {
                float sq = 0;
                for (int i = tid; i < s.K; i += Group.DimX)
                {
                    float c = x[xo + i] - mean;
                    sq += c * c;
                }
                inv = 1f / DeviceMath.Sqrt(BlockSum(scratch, sq) / s.K + s.Eps);
            }
            for (int i = tid; i < s.K; i += Group.DimX)
            {
                float v = x[xo + i];
                if (s.Prologue != 0)
                {
                    v = (v - mean) * inv;
                    if (s.HasNormW != 0) v *= s.Offset + normW[i];
                    if (s.HasNormB != 0) v += normB[i];
                }
                xs[i] = v;
            }
            Group.Barrier();
            for (int n = Grid.IdxX * warps + warp; n < s.N; n += Grid.DimX * warps)
            {
                float a = Dot(w, packed, xs, n, lane, s);
                float g = s.Gate != 0 ? Dot(w, packed, xs, n + s.N, lane, s) : 0f;
                if (lane == 0)
                {
                    if (s.HasBias != 0)
                    {
                        a += bias[n];
                        if (s.Gate != 0) g += bias[n + s.N];
                    }
                    a = DeviceMath.Activate(a, s.Activation);
                    if (s.Gate != 0) a *= g;
                    long at = (long)m * s.N + n;
                    if (s.HasResidual != 0) a = residual[at] + a;
                    y[at] = a;
                }
            }
            Group.Barrier();
        }
    }

    /// <summary>Σ_k xs[k] · w[row, k] over the warp (every lane gets it).</summary>
    private static float Dot(ArrayView<float> w, ArrayView<uint> packed, ArrayView<float> xs, int row, int lane, GemvShape s)
    {
        float acc0 = 0, acc1 = 0;
        if (s.Format == WeightFormat.F32)
        {
            long wo = (long)row * s.K;
            int k = lane;
            // Two independent loads in flight per lane per iteration.
            for (; k + Lanes < s.K; k += 2 * Lanes)
            {
                acc0 += w[wo + k] * xs[k];
                acc1 += w[wo + k + Lanes] * xs[k + Lanes];
            }
            if (k < s.K) acc0 += w[wo + k] * xs[k];
        }
        else
        {
            int pairs = s.K / 2;
            long wo = (long)row * pairs;
            for (int p = lane; p < pairs; p += Lanes)
            {
                uint bits = packed[wo + p];
                acc0 += ToFloat(bits & 0xffffu, s.Format) * xs[2 * p];
                acc1 += ToFloat(bits >> 16, s.Format) * xs[2 * p + 1];
            }
        }
        float acc = acc0 + acc1;
        for (int offset = Lanes / 2; offset > 0; offset /= 2) acc += Warp.ShuffleXor(acc, offset);
        return acc;
    }

    /// <summary>16-bit weights (pairs per uint) to fp32, for the GEMM of many rows (prefill), which reads fp32.</summary>
    public static void Unpack(ArrayView<uint> packed, ArrayView<float> y, int pairs, int format)
    {
        for (int e = Grid.GlobalIndex.X; e < pairs; e += Grid.DimX * Group.DimX)
        {
            uint bits = packed[e];
            y[2L * e] = ToFloat(bits & 0xffffu, format);
            y[2L * e + 1] = ToFloat(bits >> 16, format);
        }
    }

    /// <summary>A 16-bit value (fp16 or bf16 bits in the low half) as fp32, exactly.</summary>
    public static float ToFloat(uint h, int format)
    {
        if (format == WeightFormat.Bf16) return Interop.IntAsFloat(h << 16);
        uint sign = (h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
        if (exponent == 0)
        {
            // Subnormal (or zero): mantissa · 2^-24, exact in fp32.
            float v = mantissa * 5.9604645e-8f;
            return sign != 0 ? -v : v;
        }
        if (exponent == 31) return Interop.IntAsFloat(sign | 0x7f800000u | (mantissa << 13));
        return Interop.IntAsFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
    }

    /// <summary>Sum of v over the group (every thread gets it): warp shuffles, then one value per warp through shared memory.</summary>
    private static float BlockSum(ArrayView<float> scratch, float v)
    {
        for (int offset = Lanes / 2; offset > 0; offset /= 2) v += Warp.ShuffleXor(v, offset);
        int lane = Group.IdxX % Lanes, warp = Group.IdxX / Lanes;
        if (lane == 0) scratch[warp] = v;
        Group.Barrier();
        float total = 0;
        for (int i = 0; i < Group.DimX / Lanes; i++) total += scratch[i];
        Group.Barrier();
        return total;
    }
}
