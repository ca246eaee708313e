using ILGPU;
using ILGPU.Runtime.Cuda;
using static ModelCompiler.Backends.Cuda.Kernels.TensorCorePtx;

namespace ModelCompiler.Backends.Cuda.Kernels;

/// <summary>
/// The tensor cores' <c>mma.sync.m16n8k16</c> issue rate with no memory traffic: every warp runs eight independent
/// accumulator chains for <c>iterations</c> rounds, with fp32 accumulators or (halfAccumulate ≠ 0) fp16 ones. The
/// ceiling the mma.sync GEMM and attention kernels can approach (Hopper's faster path is wgmma). GPU only.
/// </summary>
public static class MmaPeak
{
    public const int Threads = 256, FlopsPerMma = 2 * 16 * 8 * 16, ChainsPerWarp = 8;

    public static void Probe(ArrayView<float> sink, int iterations, int halfAccumulate)
    {
        if (!CudaAsm.IsSupported) return;
        uint seed = (uint)(Grid.GlobalIndex.X * 2654435761L);
        var a = new Reg4 { X0 = seed & 0x3C003C00u, X1 = 0x3C003C00u, X2 = 0x38003800u, X3 = 0x3C003C00u };
        uint b0 = 0x3C003C00u, b1 = 0x38003800u;
        float total = 0;
        if (halfAccumulate == 0)
        {
            Acc c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
            for (int i = 0; i < iterations; i++)
            {
                Mma(ref c0, a, b0, b1); Mma(ref c1, a, b0, b1); Mma(ref c2, a, b0, b1); Mma(ref c3, a, b0, b1);
                Mma(ref c4, a, b0, b1); Mma(ref c5, a, b0, b1); Mma(ref c6, a, b0, b1); Mma(ref c7, a, b0, b1);
            }
            total = c0.C0 + c1.C1 + c2.C2 + c3.C3 + c4.C0 + c5.C1 + c6.C2 + c7.C3;
        }
        else
        {
            uint h0 = 0, h1 = 0, h2 = 0, h3 = 0, h4 = 0, h5 = 0, h6 = 0, h7 = 0, h8 = 0, h9 = 0, h10 = 0, h11 = 0, h12 = 0, h13 = 0, h14 = 0, h15 = 0;
            for (int i = 0; i < iterations; i++)
            {
                MmaHalfAccumulate(ref h0, ref h1, a, b0, b1); MmaHalfAccumulate(ref h2, ref h3, a, b0, b1);
                MmaHalfAccumulate(ref h4, ref h5, a, b0, b1); MmaHalfAccumulate(ref h6, ref h7, a, b0, b1);
                MmaHalfAccumulate(ref h8, ref h9, a, b0, b1); MmaHalfAccumulate(ref h10, ref h11, a, b0, b1);
                MmaHalfAccumulate(ref h12, ref h13, a, b0, b1); MmaHalfAccumulate(ref h14, ref h15, a, b0, b1);
            }
            total = HalfBits.Low(h0 ^ h3 ^ h5 ^ h6 ^ h9 ^ h10 ^ h12 ^ h15) + HalfBits.High(h1 ^ h2 ^ h4 ^ h7 ^ h8 ^ h11 ^ h13 ^ h14);
        }
        sink[Grid.GlobalIndex.X] = total;
    }
}
