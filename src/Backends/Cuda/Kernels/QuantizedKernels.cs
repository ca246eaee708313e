using ILGPU;
using ILGPU.Runtime;

namespace ModelCompiler.Backends.Cuda.Kernels;

/// <summary>The shape of a quantized linear on the device: y [M, N] = x [M, K]·Wᵀ with W's codes packed in 32-bit words.</summary>
public struct QuantizedShape
{
    public int M, N, K, Group;
    /// <summary>0: int8 codes (four a word, low byte first); 1: int4 (GGUF Q4_0 blocks of 32: byte j holds codes j and j+16); 2: w8a8.</summary>
    public int Scheme;
    /// <summary>32-bit words of one weight row.</summary>
    public int WordsPerRow;
    public int HasBias;
}

/// <summary>
/// Weight-only and W8A8 quantized linears with the codes converted in registers: a GEMV with one thread group per
/// weight row (decode), a dequantization of W into a pooled fp32 buffer for the blocked GEMM (prefill), and W8A8's
/// per-row activation rounding. Arithmetic as the reference interpreter defines it (QuantizedLinear).
/// </summary>
public static class QuantizedKernels
{
    private const int Int4 = 1, W8A8 = 2;

    /// <summary>
    /// y[r, j] = Σ_k x[r, k]·w[j, k] (+ bias[j]); for w8a8 x holds the rounded codes and the sum is multiplied by
    /// rowScale[r]. One group per weight row j, its threads striding over the row's words.
    /// </summary>
    public static void Gemv(ArrayView<float> x, ArrayView<float> rowScale, ArrayView<int> codes, ArrayView<float> scales,
        ArrayView<int> zeros, ArrayView<float> bias, ArrayView<float> y, QuantizedShape s)
    {
        var scratch = SharedMemory.Allocate<float>(ReductionKernels.MaxGroup);
        int j = Grid.IdxX;
        int groups = s.K / s.Group;
        long rowWords = (long)j * s.WordsPerRow;
        for (int r = 0; r < s.M; r++)
        {
            long xo = (long)r * s.K;
            float acc = 0;
            for (int w = Group.IdxX; w < s.WordsPerRow; w += Group.DimX)
            {
                int word = codes[rowWords + w];
                if (s.Scheme == Int4)
                {
                    int k0 = w / 4 * 32 + w % 4 * 4;   // this word's bytes are bytes (w%4)*4.. of block w/4
                    int g = j * groups + k0 / s.Group;
                    float z = zeros[g];
                    float part = 0;
                    for (int b = 0; b < 4; b++)
                    {
                        int bits = (word >> (8 * b)) & 0xFF;
                        part += x[xo + k0 + b] * ((bits & 0xF) - z) + x[xo + k0 + 16 + b] * ((bits >> 4) - z);
                    }
                    acc += scales[g] * part;
                }
                else
                    for (int b = 0; b < 4; b++)
                    {
                        int k = 4 * w + b;
                        if (k < s.K) acc += x[xo + k] * ((word << (24 - 8 * b)) >> 24) * scales[j * groups + k / s.Group];
                    }
            }
            float total = ReductionKernels.GroupSum(scratch, acc);
            if (Group.IdxX == 0)
                y[(long)r * s.N + j] = total * (s.Scheme == W8A8 ? rowScale[r] : 1f) + (s.HasBias != 0 ? bias[j] : 0f);
        }
    }

    /// <summary>w[j, k] = s·q (int8, w8a8) or s·(q − z) (int4), one thread per element, grid-stride.</summary>
    public static void Dequantize(ArrayView<int> codes, ArrayView<float> scales, ArrayView<int> zeros, ArrayView<float> w, QuantizedShape s)
    {
        long count = (long)s.N * s.K;
        int groups = s.K / s.Group;
        for (long i = Grid.GlobalIndex.X; i < count; i += Grid.DimX * Group.DimX)
        {
            int j = (int)(i / s.K), k = (int)(i % s.K);
            int g = j * groups + k / s.Group;
            if (s.Scheme == Int4)
            {
                int block = k / 32, within = k % 32;
                int byteIndex = block * 16 + within % 16;
                int word = codes[(long)j * s.WordsPerRow + byteIndex / 4];
                int bits = (word >> (8 * (byteIndex % 4))) & 0xFF;
                int q = within < 16 ? bits & 0xF : bits >> 4;
                w[i] = scales[g] * (q - zeros[g]);
            }
            else
            {
                int word = codes[(long)j * s.WordsPerRow + k / 4];
                w[i] = scales[g] * ((word << (24 - 8 * (k % 4))) >> 24);
            }
        }
    }

    /// <summary>
    /// W8A8's activations: per row, scale = max|x|/127 (1 for a zero row) and codes round(x/scale) half to even,
    /// clamped to ±127, written as floats. One group per row.
    /// </summary>
    public static void QuantizeRows(ArrayView<float> x, ArrayView<float> codes, ArrayView<float> rowScale, int k)
    {
        var scratch = SharedMemory.Allocate<float>(ReductionKernels.MaxGroup);
        int r = Grid.IdxX;
        long o = (long)r * k;
        float max = 0;
        for (int i = Group.IdxX; i < k; i += Group.DimX) max = Math.Max(max, Math.Abs(x[o + i]));
        max = ReductionKernels.GroupMax(scratch, max);
        float scale = max > 0 ? max / 127f : 1f;
        for (int i = Group.IdxX; i < k; i += Group.DimX)
        {
            float v = x[o + i] / scale;   // |v| <= 127: the int casts below are exact floors
            int f = (int)v;
            if (f > v) f--;
            float d = v - f;
            int q = d > 0.5f ? f + 1 : d < 0.5f ? f : (f & 1) == 0 ? f : f + 1;
            codes[o + i] = Math.Max(-127, Math.Min(127, q));
        }
        if (Group.IdxX == 0) rowScale[r] = scale;
    }

    /// <summary>y[r, j] = y[r, j]·rowScale[r] (+ bias[j]), grid-stride (W8A8 after the fp32 GEMM of codes).</summary>
    public static void RowScaleBias(ArrayView<float> y, ArrayView<float> rowScale, ArrayView<float> bias, int rows, int n, int hasBias)
    {
        long count = (long)rows * n;
        for (long i = Grid.GlobalIndex.X; i < count; i += Grid.DimX * Group.DimX)
            y[i] = y[i] * rowScale[(int)(i / n)] + (hasBias != 0 ? bias[(int)(i % n)] : 0f);
    }

    /// <summary>y[r, k] = x[r, k]·scale[k] (AWQ's per-input-channel multiplier), grid-stride.</summary>
    public static void ScaleColumns(ArrayView<float> x, ArrayView<float> scale, ArrayView<float> y, int rows, int k)
    {
        long count = (long)rows * k;
        for (long i = Grid.GlobalIndex.X; i < count; i += Grid.DimX * Group.DimX)
            y[i] = x[i] * scale[(int)(i % k)];
    }
}
