using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Backends.Cuda.Kernels;

namespace ModelCompiler.Backends.Cuda;

/// <summary>
/// Times single kernels on the device at the shapes (fp32 GEMM m=n=k; SIMT attention B1 H16 S D128), with random
/// inputs, a warm-up, and the median of timed launches (each synchronised); checks sampled outputs against float64 sums.
/// </summary>
public static class KernelBench
{
    public sealed record Row(string Kernel, string Shape, double MedianMs, double Tflops, double SampledRelativeError);

    public static List<Row> Run(GpuDevice device, int gemmSize = 4096, int seq = 4096, int reps = 10)
    {
        var rows = new List<Row>();
        var launch = new Launchers(device);
        var random = new Random(1);
        float[] Random(long n) { var a = new float[n]; for (long i = 0; i < n; i++) a[i] = (float)(random.NextDouble() * 2 - 1); return a; }
        var acc = device.Accelerator;

        // GEMM: C[n, n] = A[n, n] · W[n, n]ᵀ (the Linear layout).
        {
            int n = gemmSize;
            var a = Random((long)n * n);
            var w = Random((long)n * n);
            using var da = acc.Allocate1D(a);
            using var dw = acc.Allocate1D(w);
            using var dc = acc.Allocate1D<float>((long)n * n);
            using var zero = acc.Allocate1D(new int[1]);
            using var dummy = acc.Allocate1D<float>(1);
            var s = new GemmShape { M = n, N = n, K = n, Lda = n, Sbk = 1, Sbn = n };
            var config = new KernelConfig(new Index3D((n + 63) / 64, (n + 63) / 64, 1), new Index3D(GemmKernels.Threads, 1, 1));
            double ms = Time(acc, reps, () => launch.Gemm(config, da.View, dw.View, dc.View, dummy.View, dummy.View, zero.View, zero.View, s));
            var c = dc.GetAsArray1D();
            double err = 0, max = 0;
            for (int t = 0; t < 64; t++)
            {
                int i = random.Next(n), j = random.Next(n);
                double r = 0;
                for (int k = 0; k < n; k++) r += (double)a[(long)i * n + k] * w[(long)j * n + k];
                err = Math.Max(err, Math.Abs(r - c[(long)i * n + j]));
                max = Math.Max(max, Math.Abs(r));
            }
            rows.Add(new Row("gemm_fp32_simt", $"{n}x{n}x{n}", ms, 2.0 * n * n * n / (ms * 1e-3) / 1e12, err / max));
        }

        // Tensor-core fp16 GEMM with fp32 accumulation (mma.sync), same shape.
        if (!device.IsSimulated)
        {
            int n = gemmSize;
            ushort[] Halves(long count) { var h = new ushort[count]; for (long i = 0; i < count; i++) h[i] = BitConverter.HalfToUInt16Bits((System.Half)(random.NextDouble() * 2 - 1)); return h; }
            uint[] Pack(ushort[] h) { var u = new uint[h.Length / 2]; for (long i = 0; i < u.Length; i++) u[i] = h[2 * i] | ((uint)h[2 * i + 1] << 16); return u; }
            var ah = Halves((long)n * n);
            var wh = Halves((long)n * n);
            using var da = acc.Allocate1D(Pack(ah));
            using var dw = acc.Allocate1D(Pack(wh));
            using var dc = acc.Allocate1D<float>((long)n * n);
            var run = device.Launcher<Action<AcceleratorStream, KernelConfig, ArrayView<uint>, ArrayView<uint>, ArrayView<float>, int, int, int>>(TensorCoreGemm.Gemm);
            var config = new KernelConfig(new Index3D(n / TensorCoreGemm.Tile, n / TensorCoreGemm.Tile, 1), new Index3D(TensorCoreGemm.Threads, 1, 1));
            double ms = Time(acc, reps, () => run(acc.DefaultStream, config, da.View, dw.View, dc.View, n, n, n));
            var c = dc.GetAsArray1D();
            double err = 0, max = 0;
            for (int t = 0; t < 64; t++)
            {
                int i = random.Next(n), j = random.Next(n);
                double r = 0;
                for (int k = 0; k < n; k++) r += (double)BitConverter.UInt16BitsToHalf(ah[(long)i * n + k]) * (double)BitConverter.UInt16BitsToHalf(wh[(long)j * n + k]);
                err = Math.Max(err, Math.Abs(r - c[(long)i * n + j]));
                max = Math.Max(max, Math.Abs(r));
            }
            rows.Add(new Row("gemm_fp16_mma_sync_f32acc", $"{n}x{n}x{n}", ms, 2.0 * n * n * n / (ms * 1e-3) / 1e12, err / max));
        }

        // Attention, non-causal and causal: q, k, v [1, S, 16, 128].
        foreach (var causal in new[] { false, true })
        {
            int S = seq, H = 16, D = 128;
            var q = Random((long)S * H * D);
            var k = Random((long)S * H * D);
            var v = Random((long)S * H * D);
            using var dq = acc.Allocate1D(q);
            using var dk = acc.Allocate1D(k);
            using var dv = acc.Allocate1D(v);
            using var o = acc.Allocate1D<float>((long)S * H * D);
            using var dummy = acc.Allocate1D<float>(1);
            var shape = new AttentionShape { B = 1, S = S, Hq = H, D = D, T = S, Hkv = H, Dv = D, Scale = 1f / MathF.Sqrt(D), Mask = causal ? 1 : 0 };
            double ms = Time(acc, Math.Max(3, reps / 2), () => launch.Attention(new KernelConfig(H * S, AttentionKernels.Warp), dq.View, dk.View, dv.View, dummy.View, o.View, shape));
            var got = o.GetAsArray1D();
            double err = 0, max = 0;
            for (int t = 0; t < 8; t++)
            {
                int i = random.Next(S), h = random.Next(H);
                int end = causal ? i + 1 : S;
                var scores = new double[end];
                double m = double.NegativeInfinity;
                for (int j = 0; j < end; j++)
                {
                    double dot = 0;
                    for (int d = 0; d < D; d++) dot += (double)q[((long)i * H + h) * D + d] * k[((long)j * H + h) * D + d];
                    scores[j] = dot / Math.Sqrt(D);
                    m = Math.Max(m, scores[j]);
                }
                double sum = 0;
                for (int j = 0; j < end; j++) sum += scores[j] = Math.Exp(scores[j] - m);
                for (int d = 0; d < D; d++)
                {
                    double r = 0;
                    for (int j = 0; j < end; j++) r += scores[j] / sum * v[((long)j * H + h) * D + d];
                    err = Math.Max(err, Math.Abs(r - got[((long)i * H + h) * D + d]));
                    max = Math.Max(max, Math.Abs(r));
                }
            }
            double flops = 4.0 * H * (double)S * S * D / (causal ? 2 : 1);
            rows.Add(new Row(causal ? "attention_fp32_simt_causal" : "attention_fp32_simt", $"B1 H{H} S{S} D{D}", ms, flops / (ms * 1e-3) / 1e12, err / max));
        }
        return rows;
    }

    /// <summary>The GEMM kernel's dynamic shared-memory limit as the driver reports it, before and after raising it to 200 KB.</summary>
    public static object SharedMemoryLimit(GpuDevice device)
    {
        var kernel = device.Load(typeof(GemmKernels).GetMethod(nameof(GemmKernels.Gemm))!);
        int before = DynamicSharedMemory.GetMaximum(kernel);
        DynamicSharedMemory.SetMaximum(kernel, 200 * 1024);
        return new { before, after = DynamicSharedMemory.GetMaximum(kernel), requested = 200 * 1024 };
    }

    private static double Time(Accelerator acc, int reps, Action run)
    {
        run();
        acc.Synchronize();
        var times = new List<double>();
        for (int r = 0; r < reps; r++)
        {
            var clock = Stopwatch.StartNew();
            run();
            acc.Synchronize();
            times.Add(clock.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        return times[times.Count / 2];
    }
}
