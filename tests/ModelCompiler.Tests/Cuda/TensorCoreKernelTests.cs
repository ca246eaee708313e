using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ModelCompiler.Backends.Cuda;
using ModelCompiler.Backends.Cuda.Kernels;

namespace ModelCompiler.Tests.Cuda;

/// <summary>
/// The tensor-core kernels (pipelined fp16 GEMM, FlashAttention): their PTX as the GPU loads it (generated offline, no
/// GPU: mma.sync, ldmatrix, cp.async present, no local-memory traffic after the post-pass), and their portable paths on
/// the CPU accelerator at tiny shapes against float64 sums (fragment ownership, rasterisation, GQA, causal limits and
/// the shared epilogue). The tensor-core arithmetic itself runs on the GPU: `mc kernels` / bench/gpu/kernels.py.
/// </summary>
public sealed class TensorCoreKernelTests
{
    private static string Ptx(Type type, string method) =>
        PtxPostPass.Run(GpuDevice.GeneratePtx(type.GetMethod(method)!, CudaArchitecture.SM_80, CudaInstructionSet.ISA_80)).Ptx;

    [Theory]
    [InlineData(typeof(TensorCoreGemmPipelined), nameof(TensorCoreGemmPipelined.Gemm))]
    [InlineData(typeof(FlashAttention), nameof(FlashAttention.Attention))]
    public void PtxUsesTensorCoresAsyncCopiesAndRegistersOnly(Type type, string method)
    {
        var ptx = Ptx(type, method);
        Assert.Contains("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32", ptx);
        Assert.Contains("ldmatrix.sync.aligned.m8n8.x4.shared.b16", ptx);
        Assert.Contains("cp.async.cg.shared.global", ptx);
        Assert.Contains("cp.async.wait_group", ptx);
        Assert.Equal(0, PtxPostPass.LocalAccesses(ptx));
        // DynamicSharedBase names ILGPU's dynamic shared-memory symbol: it must be the one the module declares.
        Assert.Contains($".extern .shared .align 4 .b8 {TensorCorePtx.DynamicSharedSymbol}[];", ptx);
    }

    [Fact]
    public void AttentionReadsValuesThroughTransposedLdmatrix() =>
        Assert.Contains("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16", Ptx(typeof(FlashAttention), nameof(FlashAttention.Attention)));

    private static ushort[] Halves(Random random, int count) =>
        Enumerable.Range(0, count).Select(_ => BitConverter.HalfToUInt16Bits((System.Half)(random.NextDouble() * 2 - 1))).ToArray();

    private static uint[] Pack(ushort[] h) => Enumerable.Range(0, h.Length / 2).Select(i => h[2 * i] | ((uint)h[2 * i + 1] << 16)).ToArray();

    private static double H(ushort bits) => (double)BitConverter.UInt16BitsToHalf(bits);

    [Theory]
    [InlineData(128, 256, 64, 128)]
    [InlineData(256, 256, 128, 256)]
    public void PortableGemmMatchesFloat64(int m, int n, int k, int tileN)
    {
        var random = new Random(m + n + k + tileN);
        var a = Halves(random, m * k);
        var w = Halves(random, n * k);
        using var device = GpuDevice.Open(simulate: true);
        var acc = device.Accelerator;
        using var da = acc.Allocate1D(Pack(a));
        using var dw = acc.Allocate1D(Pack(w));
        using var dc = acc.Allocate1D(Enumerable.Repeat(float.NaN, m * n).ToArray());
        var run = device.Launcher<Action<AcceleratorStream, KernelConfig, ArrayView<uint>, ArrayView<uint>, ArrayView<float>, long, long, int, int, int, int, int>>(TensorCoreGemmPipelined.Gemm);
        run(acc.DefaultStream, TensorCoreGemmPipelined.Config(m, n, 3, tileN), da.View, dw.View, dc.View, 0, 0, m, n, k, 3, tileN);
        acc.Synchronize();
        var c = dc.GetAsArray1D();
        double max = 0, err = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double r = 0;
                for (int x = 0; x < k; x++) r += H(a[i * k + x]) * H(w[j * k + x]);
                max = Math.Max(max, Math.Abs(r));
                err = Math.Max(err, Math.Abs(r - c[i * n + j])); // NaN (an unwritten output) fails below
            }
        Assert.True(err / max <= 1e-4 && !c.Any(float.IsNaN), $"relative error {err / max:E3}");
    }

    [Theory]
    [InlineData(128, 128, 2, 2, false)]
    [InlineData(128, 128, 4, 2, true)]
    [InlineData(128, 192, 2, 1, true)] // cached prefix: queries sit at the end of the keys
    public void PortableAttentionMatchesFloat64(int s, int t, int hq, int hkv, bool causal)
    {
        const int D = FlashAttention.HeadDim;
        Assert.Null(FlashAttention.Unsupported(s, t, hq, hkv, D));
        var random = new Random(s + t + hq * 7 + hkv + (causal ? 1 : 0));
        var q = Halves(random, s * hq * D);
        var k = Halves(random, t * hkv * D);
        var v = Halves(random, t * hkv * D);
        using var device = GpuDevice.Open(simulate: true);
        var acc = device.Accelerator;
        using var dq = acc.Allocate1D(Pack(q));
        using var dk = acc.Allocate1D(Pack(k));
        using var dv = acc.Allocate1D(Pack(v));
        using var o = acc.Allocate1D(Enumerable.Repeat(float.NaN, s * hq * D).ToArray());
        var shape = new FlashShape { B = 1, S = s, T = t, Hq = hq, Hkv = hkv, Causal = causal ? 1 : 0, ScaleLog2 = 1f / MathF.Sqrt(D) * 1.4426950408889634f };
        var run = device.Launcher<Action<AcceleratorStream, KernelConfig, ArrayView<uint>, ArrayView<uint>, ArrayView<uint>, ArrayView<float>, long, long, long, FlashShape>>(FlashAttention.Attention);
        run(acc.DefaultStream, FlashAttention.Config(shape), dq.View, dk.View, dv.View, o.View, 0, 0, 0, shape);
        acc.Synchronize();
        var got = o.GetAsArray1D();
        double max = 0, err = 0;
        for (int i = 0; i < s; i++)
            for (int h = 0; h < hq; h++)
            {
                int kvh = h / (hq / hkv), end = causal ? i + (t - s) + 1 : t;
                var p = new double[end];
                for (int j = 0; j < end; j++)
                {
                    double dot = 0;
                    for (int d = 0; d < D; d++) dot += H(q[(i * hq + h) * D + d]) * H(k[(j * hkv + kvh) * D + d]);
                    p[j] = dot / Math.Sqrt(D);
                }
                double mx = p.Max(), sum = 0;
                for (int j = 0; j < end; j++) sum += p[j] = Math.Exp(p[j] - mx);
                for (int d = 0; d < D; d++)
                {
                    double r = 0;
                    for (int j = 0; j < end; j++) r += p[j] / sum * H(v[(j * hkv + kvh) * D + d]);
                    max = Math.Max(max, Math.Abs(r));
                    err = Math.Max(err, Math.Abs(r - got[(i * hq + h) * D + d]));
                }
            }
        Assert.True(err / max <= 1e-2 && !got.Any(float.IsNaN), $"relative error {err / max:E3}");
    }

    [Fact]
    public void UnsupportedShapesAreNamed()
    {
        Assert.Contains("head dim 128", FlashAttention.Unsupported(128, 128, 2, 2, 64));
        Assert.Contains("multiple of 128", FlashAttention.Unsupported(100, 128, 2, 2, 128));
        Assert.Contains("not a multiple", FlashAttention.Unsupported(128, 128, 3, 2, 128));
        Assert.Contains("K of 64", TensorCoreGemmPipelined.Unsupported(128, 128, 96, 128));
        Assert.Null(TensorCoreGemmPipelined.Unsupported(128, 256, 64, 256));
    }
}
