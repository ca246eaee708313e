using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace ModelCompiler.Backends.Cuda.Kernels;

/// <summary>
/// fp16 GEMM on the tensor cores with fp32 accumulation: C[m, n] = Σ_k A[m, k]·W[n, k] (the Linear layout), operands
/// as packed half pairs along k (uint = two fp16). A 128-thread group (4 warps) owns a 64×64 tile; K advances in slices
/// of 32 staged through shared memory; each warp issues <c>mma.sync.m16n8k16</c> over its 16 rows × 64 columns
/// (8 accumulator fragments), fragments read from shared memory in the PTX ISA's m16n8k16 layouts. GPU only
/// (inline PTX): the CPU accelerator cannot run it, so CI checks its PTX and the GPU run checks its numbers.
/// M, N multiples of 64 and K of 32.
/// </summary>
public static class TensorCoreGemm
{
    public const int Tile = 64, Slice = 32, Threads = 128;
    private const int SliceWords = Slice / 2; // uints per row of a slice

    private struct Frag
    {
        public float C0, C1, C2, C3;
    }

    private static void Mma(ref Frag c, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
    {
        var d0 = new Output<float>(); var d1 = new Output<float>(); var d2 = new Output<float>(); var d3 = new Output<float>();
        Input<uint> ia0 = a0, ia1 = a1, ia2 = a2, ia3 = a3, ib0 = b0, ib1 = b1;
        Input<float> ic0 = c.C0, ic1 = c.C1, ic2 = c.C2, ic3 = c.C3;
        CudaAsm.EmitRef("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};",
            ref d0, ref d1, ref d2, ref d3, ref ia0, ref ia1, ref ia2, ref ia3, ref ib0, ref ib1, ref ic0, ref ic1, ref ic2, ref ic3);
        c.C0 = d0.Value; c.C1 = d1.Value; c.C2 = d2.Value; c.C3 = d3.Value;
    }

    /// <param name="a">A as uint[M·K/2]</param>
    /// <param name="w">W as uint[N·K/2]</param>
    public static void Gemm(ArrayView<uint> a, ArrayView<uint> w, ArrayView<float> c, int m, int n, int k)
    {
        var aTile = SharedMemory.Allocate<uint>(Tile * SliceWords);
        var wTile = SharedMemory.Allocate<uint>(Tile * SliceWords);
        int tid = Group.IdxX, warp = tid / 32, lane = tid % 32;
        int group = lane >> 2, quad = lane & 3;
        int rowBase = Grid.IdxY * Tile, colBase = Grid.IdxX * Tile;
        int kWords = k / 2;
        Frag f0 = default, f1 = default, f2 = default, f3 = default, f4 = default, f5 = default, f6 = default, f7 = default;
        for (int k0 = 0; k0 < kWords; k0 += SliceWords)
        {
            // 64 rows × 16 words per operand: 8 words per thread, row-contiguous so that loads coalesce.
            for (int q = 0; q < Tile * SliceWords / Threads; q++)
            {
                int e = tid + q * Threads;
                int row = e / SliceWords, word = e % SliceWords;
                aTile[e] = a[(long)(rowBase + row) * kWords + k0 + word];
                wTile[e] = w[(long)(colBase + row) * kWords + k0 + word];
            }
            Group.Barrier();
            for (int ks = 0; ks < SliceWords; ks += 8) // 16 halves = 8 words per mma k-step
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
        }
        int row0 = rowBase + warp * 16 + group;
        int col = colBase + quad * 2;
        Store(c, n, row0, col, f0); Store(c, n, row0, col + 8, f1); Store(c, n, row0, col + 16, f2); Store(c, n, row0, col + 24, f3);
        Store(c, n, row0, col + 32, f4); Store(c, n, row0, col + 40, f5); Store(c, n, row0, col + 48, f6); Store(c, n, row0, col + 56, f7);
    }

    private static void Store(ArrayView<float> c, int n, int row, int col, Frag f)
    {
        c[(long)row * n + col] = f.C0;
        c[(long)row * n + col + 1] = f.C1;
        c[(long)(row + 8) * n + col] = f.C2;
        c[(long)(row + 8) * n + col + 1] = f.C3;
    }
}
