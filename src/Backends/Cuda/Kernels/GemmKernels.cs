using ILGPU;
using ILGPU.Runtime;

namespace ModelCompiler.Backends.Cuda.Kernels;

/// <summary>The shapes and strides of one (batched) GEMM with its epilogue.</summary>
public struct GemmShape
{
    /// <summary>C[batch][m, n] = Σ_k A[aOff + m·Lda + k] · B[bOff + k·Sbk + n·Sbn].</summary>
    public int M, N, K, Lda, Sbk, Sbn;

    /// <summary>Epilogue: + bias[n] (HasBias), activation (ActivationCode), + residual[batch][m, n] (HasResidual).</summary>
    public int HasBias, Activation, HasResidual;
}

/// <summary>
/// fp32 SIMT GEMM: 64×64 output tiles per 256-thread group, K in slices of 16 staged through shared memory, each
/// thread accumulating a 4×4 register block (rows ty+16i, columns tx+16j so that stores coalesce); the linear's
/// epilogue (bias, activation, residual) is applied before the single store.
/// </summary>
public static class GemmKernels
{
    public const int Tile = 64, Slice = 16, Threads = 256;

    private struct Row4
    {
        public float C0, C1, C2, C3;

        public void Fma(float a, float b0, float b1, float b2, float b3)
        {
            C0 += a * b0; C1 += a * b1; C2 += a * b2; C3 += a * b3;
        }
    }

    public static void Gemm(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias, ArrayView<float> residual,
        ArrayView<int> aOffsets, ArrayView<int> bOffsets, GemmShape s)
    {
        var aTile = SharedMemory.Allocate<float>(Slice * Tile);
        var bTile = SharedMemory.Allocate<float>(Slice * Tile);
        int tid = Group.IdxX, tx = tid % 16, ty = tid / 16;
        int rowBase = Grid.IdxY * Tile, colBase = Grid.IdxX * Tile, batch = Grid.IdxZ;
        long aOff = aOffsets[batch], bOff = bOffsets[batch];
        Row4 r0 = default, r1 = default, r2 = default, r3 = default;

        for (int k0 = 0; k0 < s.K; k0 += Slice)
        {
            for (int q = 0; q < Slice * Tile / Threads; q++)
            {
                int e = tid + q * Threads;
                int kk = e % Slice, mn = e / Slice;
                int row = rowBase + mn, kIndex = k0 + kk, col = colBase + mn;
                aTile[kk * Tile + mn] = row < s.M && kIndex < s.K ? a[aOff + (long)row * s.Lda + kIndex] : 0f;
                bTile[kk * Tile + mn] = col < s.N && kIndex < s.K ? b[bOff + (long)kIndex * s.Sbk + (long)col * s.Sbn] : 0f;
            }
            Group.Barrier();
            for (int kk = 0; kk < Slice; kk++)
            {
                int at = kk * Tile;
                float b0 = bTile[at + tx], b1 = bTile[at + tx + 16], b2 = bTile[at + tx + 32], b3 = bTile[at + tx + 48];
                r0.Fma(aTile[at + ty], b0, b1, b2, b3);
                r1.Fma(aTile[at + ty + 16], b0, b1, b2, b3);
                r2.Fma(aTile[at + ty + 32], b0, b1, b2, b3);
                r3.Fma(aTile[at + ty + 48], b0, b1, b2, b3);
            }
            Group.Barrier();
        }
        StoreRow(c, bias, residual, s, batch, rowBase + ty, colBase + tx, r0);
        StoreRow(c, bias, residual, s, batch, rowBase + ty + 16, colBase + tx, r1);
        StoreRow(c, bias, residual, s, batch, rowBase + ty + 32, colBase + tx, r2);
        StoreRow(c, bias, residual, s, batch, rowBase + ty + 48, colBase + tx, r3);
    }

    private static void StoreRow(ArrayView<float> c, ArrayView<float> bias, ArrayView<float> residual, GemmShape s, int batch, int row, int col, Row4 r)
    {
        if (row >= s.M) return;
        Store(c, bias, residual, s, batch, row, col, r.C0);
        Store(c, bias, residual, s, batch, row, col + 16, r.C1);
        Store(c, bias, residual, s, batch, row, col + 32, r.C2);
        Store(c, bias, residual, s, batch, row, col + 48, r.C3);
    }

    private static void Store(ArrayView<float> c, ArrayView<float> bias, ArrayView<float> residual, GemmShape s, int batch, int row, int col, float v)
    {
        if (col >= s.N) return;
        if (s.HasBias != 0) v += bias[col];
        v = DeviceMath.Activate(v, s.Activation);
        long at = ((long)batch * s.M + row) * s.N + col;
        if (s.HasResidual != 0) v = residual[at] + v;
        c[at] = v;
    }
}
