using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace ModelCompiler.Backends.Cuda.Kernels;

/// <summary>The shape of a W8A8 product on the tensor cores.</summary>
public struct Int8GemmShape
{
    /// <summary>Rows of x (y's rows; A holds ceil(M/64)·64 rows, the padding zero), weight rows N, depth K, weights per scale.</summary>
    public int M, N, K, Group;
    public int HasBias;
}

/// <summary>
/// W8A8 on the tensor cores: y[m, n] = rowScale[m]·Σ_g scale[n, g]·Σ_{k∈g} qx[m, k]·qw[n, k] (+ bias[n]), int8 codes four
/// a 32-bit word along k, int32 accumulation through <c>mma.sync.m16n8k32.s32.s8.s8.s32</c>. The tiling is
/// <see cref="TensorCoreGemm"/>'s (a 128-thread group owns 64×64, K in slices of 64 codes = 16 words staged in shared
/// memory): the m16n8k32 int8 fragments put four codes in each register where m16n8k16 fp16 puts two halves, at the
/// same positions. At every group boundary (a multiple of 64 codes) the int32 sums are scaled into fp32 accumulators
/// and cleared. GPU only (inline PTX); CI checks its PTX, the GPU run its numbers. N and K multiples of 64, the group a
/// multiple of 64.
/// </summary>
public static class Int8TensorCoreGemm
{
    public const int Tile = 64, SliceCodes = 64, Threads = 128;
    private const int SliceWords = SliceCodes / 4;

    private struct Acc
    {
        public int C0, C1, C2, C3;
    }

    private struct Sum
    {
        public float C0, C1, C2, C3;
    }

    private static void Mma(ref Acc c, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
    {
        var d0 = new Output<int>(); var d1 = new Output<int>(); var d2 = new Output<int>(); var d3 = new Output<int>();
        Input<uint> ia0 = a0, ia1 = a1, ia2 = a2, ia3 = a3, ib0 = b0, ib1 = b1;
        Input<int> ic0 = c.C0, ic1 = c.C1, ic2 = c.C2, ic3 = c.C3;
        CudaAsm.EmitRef("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};",
            ref d0, ref d1, ref d2, ref d3, ref ia0, ref ia1, ref ia2, ref ia3, ref ib0, ref ib1, ref ic0, ref ic1, ref ic2, ref ic3);
        c.C0 = d0.Value; c.C1 = d1.Value; c.C2 = d2.Value; c.C3 = d3.Value;
    }

    /// <summary>s += scale(col)·a (rows group, group+8; columns col, col+1), then a cleared.</summary>
    private static void Fold(ref Sum s, ref Acc a, ArrayView<float> scales, int groups, int col, int g)
    {
        float s0 = scales[(long)col * groups + g], s1 = scales[(long)(col + 1) * groups + g];
        s.C0 += s0 * a.C0; s.C1 += s1 * a.C1; s.C2 += s0 * a.C2; s.C3 += s1 * a.C3;
        a = default;
    }

    /// <param name="a">x's codes as uint[ceil(M/64)·64 · K/4]</param>
    /// <param name="w">W's codes as uint[N · K/4]</param>
    public static void Gemm(ArrayView<uint> a, ArrayView<uint> w, ArrayView<float> scales, ArrayView<float> rowScale,
        ArrayView<float> bias, ArrayView<float> y, Int8GemmShape s)
    {
        var aTile = SharedMemory.Allocate<uint>(Tile * SliceWords);
        var wTile = SharedMemory.Allocate<uint>(Tile * SliceWords);
        int tid = Group.IdxX, warp = tid / 32, lane = tid % 32;
        int group = lane >> 2, quad = lane & 3;
        int rowBase = Grid.IdxY * Tile, colBase = Grid.IdxX * Tile;
        int kWords = s.K / 4, groupWords = s.Group / 4, groups = s.K / s.Group;
        int col = colBase + quad * 2;
        Acc f0 = default, f1 = default, f2 = default, f3 = default, f4 = default, f5 = default, f6 = default, f7 = default;
        Sum t0 = default, t1 = default, t2 = default, t3 = default, t4 = default, t5 = default, t6 = default, t7 = default;
        for (int k0 = 0; k0 < kWords; k0 += SliceWords)
        {
            for (int q = 0; q < Tile * SliceWords / Threads; q++)
            {
                int e = tid + q * Threads;
                int row = e / SliceWords, word = e % SliceWords;
                aTile[e] = a[(long)(rowBase + row) * kWords + k0 + word];
                wTile[e] = w[(long)(colBase + row) * kWords + k0 + word];
            }
            Group.Barrier();
            for (int ks = 0; ks < SliceWords; ks += 8) // 32 codes = 8 words per mma k-step
            {
                int r0 = (warp * 16 + group) * SliceWords + ks + quad;
                int r8 = r0 + 8 * SliceWords;
                uint a0 = aTile[r0], a1 = aTile[r8], a2 = aTile[r0 + 4], a3 = aTile[r8 + 4];
                int b = group * SliceWords + ks + quad;
                Mma(ref f0, a0, a1, a2, a3, wTile[b], wTile[b + 4]);
                Mma(ref f1, a0, a1, a2, a3, wTile[b + 8 * SliceWords], wTile[b + 8 * SliceWords + 4]);
                Mma(ref f2, a0, a1, a2, a3, wTile[b + 16 * SliceWords], wTile[b + 16 * SliceWords + 4]);
                Mma(ref f3, a0, a1, a2, a3, wTile[b + 24 * SliceWords], wTile[b + 24 * SliceWords + 4]);
                Mma(ref f4, a0, a1, a2, a3, wTile[b + 32 * SliceWords], wTile[b + 32 * SliceWords + 4]);
                Mma(ref f5, a0, a1, a2, a3, wTile[b + 40 * SliceWords], wTile[b + 40 * SliceWords + 4]);
                Mma(ref f6, a0, a1, a2, a3, wTile[b + 48 * SliceWords], wTile[b + 48 * SliceWords + 4]);
                Mma(ref f7, a0, a1, a2, a3, wTile[b + 56 * SliceWords], wTile[b + 56 * SliceWords + 4]);
            }
            Group.Barrier();
            if ((k0 + SliceWords) % groupWords == 0)
            {
                int g = (k0 + SliceWords) / groupWords - 1;
                Fold(ref t0, ref f0, scales, groups, col, g); Fold(ref t1, ref f1, scales, groups, col + 8, g);
                Fold(ref t2, ref f2, scales, groups, col + 16, g); Fold(ref t3, ref f3, scales, groups, col + 24, g);
                Fold(ref t4, ref f4, scales, groups, col + 32, g); Fold(ref t5, ref f5, scales, groups, col + 40, g);
                Fold(ref t6, ref f6, scales, groups, col + 48, g); Fold(ref t7, ref f7, scales, groups, col + 56, g);
            }
        }
        int row0 = rowBase + warp * 16 + group;
        Store(y, rowScale, bias, s, row0, col, t0); Store(y, rowScale, bias, s, row0, col + 8, t1);
        Store(y, rowScale, bias, s, row0, col + 16, t2); Store(y, rowScale, bias, s, row0, col + 24, t3);
        Store(y, rowScale, bias, s, row0, col + 32, t4); Store(y, rowScale, bias, s, row0, col + 40, t5);
        Store(y, rowScale, bias, s, row0, col + 48, t6); Store(y, rowScale, bias, s, row0, col + 56, t7);
    }

    private static void Store(ArrayView<float> y, ArrayView<float> rowScale, ArrayView<float> bias, Int8GemmShape s, int row, int col, Sum t)
    {
        float b0 = s.HasBias != 0 ? bias[col] : 0f, b1 = s.HasBias != 0 ? bias[col + 1] : 0f;
        if (row < s.M)
        {
            y[(long)row * s.N + col] = t.C0 * rowScale[row] + b0;
            y[(long)row * s.N + col + 1] = t.C1 * rowScale[row] + b1;
        }
        if (row + 8 < s.M)
        {
            y[(long)(row + 8) * s.N + col] = t.C2 * rowScale[row + 8] + b0;
            y[(long)(row + 8) * s.N + col + 1] = t.C3 * rowScale[row + 8] + b1;
        }
    }

    /// <summary>
    /// x's rounded codes (floats, as <see cref="QuantizedKernels.QuantizeRows"/> writes them) packed four a word along k,
    /// low byte first, into rows × K/4 words; rows past <paramref name="rows"/> (the tile padding) are zero.
    /// </summary>
    public static void PackCodes(ArrayView<float> codes, ArrayView<uint> words, int rows, int paddedRows, int k)
    {
        long count = (long)paddedRows * (k / 4);
        for (long i = Grid.GlobalIndex.X; i < count; i += Grid.DimX * Group.DimX)
        {
            long row = i / (k / 4);
            uint word = 0;
            if (row < rows)
                for (int b = 0; b < 4; b++)
                    word |= ((uint)(int)codes[i * 4 + b] & 0xFFu) << (8 * b);
            words[i] = word;
        }
    }
}
