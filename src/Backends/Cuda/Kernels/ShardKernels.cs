using ILGPU;
using ILGPU.Runtime;

namespace ModelCompiler.Backends.Cuda.Kernels;

/// <summary>Kernels only a tensor-parallel rank needs.</summary>
public static class ShardKernels
{
    /// <summary>
    /// A vocab-parallel embedding: output[t, :] = table[rows[t], :], or zeros where rows[t] is -1 (the token's row lives on
    /// another rank; the all-reduce after it adds that rank's row).
    /// </summary>
    public static void EmbeddingShard(ArrayView<int> rows, ArrayView<float> table, ArrayView<float> output, int n, int d)
    {
        for (int e = Grid.GlobalIndex.X; e < n; e += Grid.DimX * Group.DimX)
        {
            int row = rows[e / d];
            output[e] = row < 0 ? 0f : table[row * d + e % d];
        }
    }
}
