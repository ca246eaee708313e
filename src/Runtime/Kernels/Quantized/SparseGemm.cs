using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ModelCompiler.Runtime.Kernels;

/// <summary>
/// Rows of Y = X·Wᵀ for a 2:4-sparse W kept compressed (<see cref="QuantScheme.Sparse24"/>): per row, the 2 kept
/// values of every 4 weights (K/2 floats) and their positions (2 bits each, a nibble a group). Decode (M &lt; 4)
/// multiplies straight from that form: the positions of 4 groups (AVX2) or 8 groups (AVX-512) become a permutation
/// that pulls the matching x's out of 16 or 32 loaded ones (vpermps + blend, vpermt2ps), then FMA with the kept
/// values, so half the weight bytes are streamed. Larger M expands one row at a time into a scratch row and reuses it
/// for every row of X. Called by <see cref="QuantizedGemm.Linear"/>, which splits the rows over its workers.
/// </summary>
internal static unsafe class SparseGemm
{
    /// <summary>For each position byte (two groups): the x offsets of its 4 kept values within the 8 x's of the two groups.</summary>
    private static readonly int[] Offsets = BuildOffsets();

    private static int[] BuildOffsets()
    {
        var table = new int[256 * 4];
        for (int b = 0; b < 256; b++)
        {
            int lo = b & 0xF, hi = b >> 4;
            table[4 * b] = lo & 3;
            table[4 * b + 1] = lo >> 2;
            table[4 * b + 2] = 4 + (hi & 3);
            table[4 * b + 3] = 4 + (hi >> 2);
        }
        return table;
    }

    /// <summary>Weight [row, col] (0 where it was pruned).</summary>
    public static float Weight(QuantizedWeight w, int row, int col)
    {
        int g = col / 4;
        int nibble = (w.SparsePositions![row * (w.K / 8) + g / 2] >> (g % 2 * 4)) & 0xF;
        float value = 0;
        if ((nibble & 3) == col % 4) value += w.SparseValues![row * (w.K / 2) + 2 * g];
        if ((nibble >> 2) == col % 4) value += w.SparseValues![row * (w.K / 2) + 2 * g + 1];
        return value;
    }

    public static void Rows(float[] x, int m, QuantizedWeight w, float[]? bias, float[] y, int n0, int n1, QuantIsa isa)
    {
        int k = w.K, n = w.N;
        if (m < 4)
        {
            fixed (float* xp = x, vp = w.SparseValues)
            fixed (byte* pp = w.SparsePositions)
            fixed (int* table = Offsets)
                for (int row = n0; row < n1; row++)
                    for (int r = 0; r < m; r++)
                    {
                        float acc = Dot(xp + (long)r * k, vp + (long)row * (k / 2), pp + (long)row * (k / 8), table, k, isa);
                        y[r * n + row] = bias is null ? acc : acc + bias[row];
                    }
            return;
        }
        var dense = new float[k];
        for (int row = n0; row < n1; row++)
        {
            Expand(w, row, dense);
            for (int r = 0; r < m; r++)
            {
                float acc = TensorPrimitives.Dot(x.AsSpan(r * k, k), dense);
                y[r * n + row] = bias is null ? acc : acc + bias[row];
            }
        }
    }

    /// <summary>Row <paramref name="row"/> of W written out dense.</summary>
    private static void Expand(QuantizedWeight w, int row, Span<float> dense)
    {
        int k = w.K;
        dense.Clear();
        var values = w.SparseValues.AsSpan(row * (k / 2), k / 2);
        var positions = w.SparsePositions.AsSpan(row * (k / 8), k / 8);
        for (int b = 0; b < positions.Length; b++)
            for (int half = 0; half < 2; half++)
            {
                int g = 2 * b + half, nibble = (positions[b] >> (4 * half)) & 0xF;
                dense[4 * g + (nibble & 3)] += values[2 * g];
                dense[4 * g + (nibble >> 2)] += values[2 * g + 1];
            }
    }

    /// <summary>Σ over the groups of x's row at the kept positions times the kept values.</summary>
    internal static float Dot(float* x, float* values, byte* positions, int* table, int k, QuantIsa isa)
    {
        int i = 0;
        float total = 0;
        if (isa == QuantIsa.Vector512)
        {
            var acc = Vector512<float>.Zero;
            var pairOffsets = Vector512.Create(0, 0, 0, 0, 8, 8, 8, 8, 16, 16, 16, 16, 24, 24, 24, 24);
            for (; i + 32 <= k; i += 32)
            {
                byte* p = positions + i / 8;
                var index = Vector512.Create(
                    Vector256.Create(Vector128.Load(table + 4 * p[0]), Vector128.Load(table + 4 * p[1])),
                    Vector256.Create(Vector128.Load(table + 4 * p[2]), Vector128.Load(table + 4 * p[3]))) + pairOffsets;
                var picked = Avx512F.PermuteVar16x32x2(Vector512.Load(x + i), index, Vector512.Load(x + i + 16));
                acc = Avx512F.FusedMultiplyAdd(Vector512.Load(values + i / 2), picked, acc);
            }
            total = Vector512.Sum(acc);
        }
        if (isa is QuantIsa.Vector256 or QuantIsa.Vector512)
        {
            var acc = Vector256<float>.Zero;
            for (; i + 16 <= k; i += 16)
            {
                byte* p = positions + i / 8;
                // Both halves index within their own 8 x's: lanes 0–3 from x[i..i+8), lanes 4–7 from x[i+8..i+16).
                var index = Vector256.Create(Vector128.Load(table + 4 * p[0]), Vector128.Load(table + 4 * p[1]));
                var low = Avx2.PermuteVar8x32(Vector256.Load(x + i), index);
                var high = Avx2.PermuteVar8x32(Vector256.Load(x + i + 8), index);
                acc = Fma.MultiplyAdd(Vector256.Load(values + i / 2), Avx.Blend(low, high, 0xF0), acc);
            }
            total += Vector256.Sum(acc);
        }
        for (; i < k; i += 8)
        {
            byte b = positions[i / 8];
            float* v = values + i / 2;
            int* o = table + 4 * b;
            total += v[0] * x[i + o[0]] + v[1] * x[i + o[1]] + v[2] * x[i + o[2]] + v[3] * x[i + o[3]];
        }
        return total;
    }
}
