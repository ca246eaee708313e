using System.Numerics.Tensors;

namespace ModelCompiler.Runtime.Kernels;

/// <summary>
/// Linear (PyTorch's nn.Linear layout) and batched MatMul, accumulating in float32 with SIMD dot products.
/// <see cref="Linear"/> is the one entry point every linear layer of a compiled model goes through, so a
/// blocked GEMM can replace its body without touching the code generator.
/// </summary>
public static class LinearAlgebra
{
    /// <summary>Below this many multiply-adds a kernel runs on the calling thread.</summary>
    private const long ParallelWork = 1 << 16;

    private const int RowBlock = 64, ColumnBlock = 16;

    /// <summary>y[r, j] = Σ_k x[r, k]·w[j, k] (+ bias[j]) for r &lt; rows, j &lt; n; x is [rows, k], w is [n, k], y is [rows, n].</summary>
    public static void Linear(float[] x, int rows, int k, float[] w, int n, float[]? bias, float[] y)
    {
        if ((long)rows * k > x.Length || (long)n * k > w.Length || (long)rows * n > y.Length || (bias is not null && bias.Length < n))
            throw new ArgumentException($"linear: buffers too small for [{rows},{k}] x [{n},{k}]");
        int rowBlocks = (rows + RowBlock - 1) / RowBlock;
        int columnBlocks = (n + ColumnBlock - 1) / ColumnBlock;
        // Tasks walk a block of weight rows (kept in cache) across a block of input rows.
        void Task(int t)
        {
            int rb = t % rowBlocks, cb = t / rowBlocks;
            int r0 = rb * RowBlock, r1 = Math.Min(rows, r0 + RowBlock);
            int j0 = cb * ColumnBlock, j1 = Math.Min(n, j0 + ColumnBlock);
            for (int r = r0; r < r1; r++)
            {
                var xr = new ReadOnlySpan<float>(x, r * k, k);
                int yo = r * n;
                for (int j = j0; j < j1; j++)
                {
                    float acc = TensorPrimitives.Dot(xr, new ReadOnlySpan<float>(w, j * k, k));
                    y[yo + j] = bias is null ? acc : acc + bias[j];
                }
            }
        }
        int tasks = rowBlocks * columnBlocks;
        if ((long)rows * n * k < ParallelWork || tasks == 1)
            for (int t = 0; t < tasks; t++) Task(t);
        else
            KernelThreading.For(tasks, Task);
    }

    /// <summary>
    /// c[..., m, n] = Σ_k a[..., m, k]·b[..., k, n]. The batch axes of c have <paramref name="batchShape"/>; a's and
    /// b's matrix for a batch index is Σ index[d]·stride[d] over their batch strides (in matrices; 0 where broadcast).
    /// </summary>
    public static void MatMul(float[] a, float[] b, float[] c, int m, int k, int n,
        ReadOnlySpan<int> batchShape, ReadOnlySpan<int> aBatchStrides, ReadOnlySpan<int> bBatchStrides)
    {
        int batches = 1;
        foreach (var d in batchShape) batches = checked(batches * d);
        var aMat = new int[batches];
        var bMat = new int[batches];
        Span<int> index = stackalloc int[batchShape.Length];
        int ia = 0, ib = 0;
        for (int e = 0; e < batches; e++)
        {
            aMat[e] = ia;
            bMat[e] = ib;
            for (int d = batchShape.Length - 1; d >= 0; d--)
            {
                index[d]++;
                ia += aBatchStrides[d];
                ib += bBatchStrides[d];
                if (index[d] < batchShape[d]) break;
                ia -= aBatchStrides[d] * index[d];
                ib -= bBatchStrides[d] * index[d];
                index[d] = 0;
            }
        }
        void Row(int row)
        {
            int bi = row / m, mi = row % m;
            int ao = aMat[bi] * m * k + mi * k, bo = bMat[bi] * k * n;
            var cr = new Span<float>(c, row * n, n);
            cr.Clear();
            for (int kk = 0; kk < k; kk++)
                TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(b, bo + kk * n, n), a[ao + kk], cr, cr);
        }
        int rowsTotal = batches * m;
        if ((long)rowsTotal * n * k < ParallelWork)
            for (int r = 0; r < rowsTotal; r++) Row(r);
        else
            KernelThreading.For(rowsTotal, Row);
    }
}
