using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Backends.Cuda.Kernels;

namespace ModelCompiler.Backends.Cuda;

/// <summary>
/// Times the tensor-core kernels (pipelined fp16 GEMM at several ring depths, FlashAttention non-causal/causal/GQA) and
/// the SIMT kernels they replace, on random inputs (never zeros; outputs poisoned with NaN before the checked run),
/// each as the median over batches of back-to-back launches; checks sampled outputs against float64 sums; reports
/// what the post-processed PTX of each kernel contains. With <c>dump</c> set, writes inputs and outputs as raw files
/// (fp16 bits / fp32) so that a PyTorch script in the same run can compare them with cuBLAS and SDPA.
/// </summary>
public static class TensorCoreBench
{
    public sealed record Row(string Kernel, string Shape, string Variant, double MedianMs, double Tflops, double SampledRelativeError,
        bool PtxMmaSync, bool PtxLdmatrix, bool PtxCpAsync, int PtxLocalAccesses, string? Dump, string? Error);

    public static List<Row> Run(GpuDevice device, int gemmSize, int seq, int batches, string? dump, Action<string>? progress = null)
    {
        if (device.IsSimulated) throw new Runtime.McException("the tensor-core kernel bench needs a CUDA GPU (--target cuda)");
        var rows = new List<Row>();
        var random = new Random(7);
        if (dump is not null) Directory.CreateDirectory(dump);

        void Guard(string kernel, string shape, string variant, Func<Row> run)
        {
            progress?.Invoke($"{kernel} {shape} {variant}");
            try { rows.Add(run()); }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                rows.Add(new Row(kernel, shape, variant, double.NaN, double.NaN, double.NaN, false, false, false, -1, null, $"{e.GetType().Name}: {e.Message.Split('\n')[0]}"));
            }
        }

        int n = gemmSize;
        var ah = Halves(random, (long)n * n);
        var wh = Halves(random, (long)n * n);
        var acc = device.Accelerator;
        using (var da = acc.Allocate1D(Pack(ah)))
        using (var dw = acc.Allocate1D(Pack(wh)))
        using (var dc = acc.Allocate1D<float>((long)n * n))
        {
            foreach (var (tileN, stages) in new[] { (128, 2), (128, 3), (256, 2), (256, 3) })
            {
                string variant = $"128x{tileN} tile, {stages} stages";
                Guard("gemm_fp16_tc_pipelined", $"{n}x{n}x{n}", variant, () =>
                {
                    var kernel = device.Load(typeof(TensorCoreGemmPipelined).GetMethod(nameof(TensorCoreGemmPipelined.Gemm))!);
                    DynamicSharedMemory.SetMaximum(kernel, TensorCoreGemmPipelined.SharedBytes(stages, tileN));
                    var run = kernel.CreateLauncherDelegate<Action<AcceleratorStream, KernelConfig, ArrayView<uint>, ArrayView<uint>, ArrayView<float>, long, long, int, int, int, int, int>>();
                    var config = TensorCoreGemmPipelined.Config(n, n, stages, tileN);
                    long aAt = TensorCorePtx.DeviceAddress(da), wAt = TensorCorePtx.DeviceAddress(dw);
                    void Launch() => run(acc.DefaultStream, config, da.View, dw.View, dc.View, aAt, wAt, n, n, n, stages, tileN);
                    return GemmRow("gemm_fp16_tc_pipelined", variant, n, ah, wh, dc, Launch, batches, random, device, nameof(TensorCoreGemmPipelined),
                        dump is not null && tileN == 256 && stages == 3 ? Path.Combine(dump, "gemm") : null);
                });
            }
            Guard("gemm_fp16_tc_simple", $"{n}x{n}x{n}", "64x64 tile, no pipeline", () =>
            {
                var run = device.Launcher<Action<AcceleratorStream, KernelConfig, ArrayView<uint>, ArrayView<uint>, ArrayView<float>, int, int, int>>(TensorCoreGemm.Gemm);
                var config = new KernelConfig(new Index3D(n / TensorCoreGemm.Tile, n / TensorCoreGemm.Tile, 1), new Index3D(TensorCoreGemm.Threads, 1, 1));
                void Launch() => run(acc.DefaultStream, config, da.View, dw.View, dc.View, n, n, n);
                return GemmRow("gemm_fp16_tc_simple", "64x64 tile, no pipeline", n, ah, wh, dc, Launch, batches, random, device, nameof(TensorCoreGemm), null);
            });
        }
        if (dump is not null)
        {
            WriteHalves(Path.Combine(dump, "gemm_a.bin"), ah);
            WriteHalves(Path.Combine(dump, "gemm_w.bin"), wh);
        }

        foreach (int half in new[] { 0, 1 })
        {
            Guard("mma_sync_peak", "m16n8k16, registers only", half == 0 ? "fp32 accumulate" : "fp16 accumulate", () => PeakRow(device, half, batches));
        }

        foreach (var (label, hq, hkv, s, causal) in new[] { ("noncausal", 16, 16, seq, false), ("causal", 16, 16, seq, true), ("gqa_causal", 32, 8, Math.Min(seq, 2048), true) })
        {
            Guard("flash_attention_fp16_tc", $"B1 Hq{hq} Hkv{hkv} S{s} D128", label, () =>
                AttentionRow(device, label, hq, hkv, s, causal, batches, random, dump is not null ? Path.Combine(dump, "attention_" + label) : null));
        }
        if (dump is not null)
            foreach (var (kernel, ptx) in device.Ptx) File.WriteAllText(Path.Combine(dump, kernel + ".ptx"), ptx.Ptx); // for ptxas -v / cuobjdump there
        return rows;
    }

    private static Row GemmRow(string name, string variant, int n, ushort[] ah, ushort[] wh, MemoryBuffer1D<float, Stride1D.Dense> dc, Action launch,
        int batches, Random random, GpuDevice device, string ptxKey, string? dumpPrefix)
    {
        var acc = device.Accelerator;
        dc.CopyFromCPU(Enumerable.Repeat(float.NaN, n * n).ToArray());
        launch();
        acc.Synchronize();
        var c = dc.GetAsArray1D();
        double err = 0, max = 0;
        bool written = !c.Any(float.IsNaN);
        for (int t = 0; t < 64; t++)
        {
            int i = random.Next(n), j = random.Next(n);
            double r = 0;
            for (int k = 0; k < n; k++) r += (double)BitConverter.UInt16BitsToHalf(ah[(long)i * n + k]) * (double)BitConverter.UInt16BitsToHalf(wh[(long)j * n + k]);
            err = Math.Max(err, Math.Abs(r - c[(long)i * n + j]));
            max = Math.Max(max, Math.Abs(r));
        }
        if (dumpPrefix is not null) WriteFloats(dumpPrefix + "_c.bin", c);
        double ms = Time(acc, batches, launch);
        var ptx = device.Ptx.FirstOrDefault(kv => kv.Key.StartsWith(ptxKey + ".", StringComparison.Ordinal)).Value?.Ptx ?? "";
        return new Row(name, $"{n}x{n}x{n}", variant, ms, 2.0 * n * n * (double)n / (ms * 1e-3) / 1e12, written ? err / max : double.NaN,
            ptx.Contains("mma.sync"), ptx.Contains("ldmatrix"), ptx.Contains("cp.async"), PtxPostPass.LocalAccesses(ptx), dumpPrefix, written ? null : "outputs left unwritten");
    }

    private static Row AttentionRow(GpuDevice device, string label, int hq, int hkv, int seq, bool causal, int batches, Random random, string? dumpPrefix)
    {
        const int D = FlashAttention.HeadDim;
        var acc = device.Accelerator;
        var q = Halves(random, (long)seq * hq * D);
        var k = Halves(random, (long)seq * hkv * D);
        var v = Halves(random, (long)seq * hkv * D);
        using var dq = acc.Allocate1D(Pack(q));
        using var dk = acc.Allocate1D(Pack(k));
        using var dv = acc.Allocate1D(Pack(v));
        using var o = acc.Allocate1D<float>((long)seq * hq * D);
        var kernel = device.Load(typeof(FlashAttention).GetMethod(nameof(FlashAttention.Attention))!);
        DynamicSharedMemory.SetMaximum(kernel, FlashAttention.SharedBytes);
        var run = kernel.CreateLauncherDelegate<Action<AcceleratorStream, KernelConfig, ArrayView<uint>, ArrayView<uint>, ArrayView<uint>, ArrayView<float>, long, long, long, FlashShape>>();
        var shape = new FlashShape { B = 1, S = seq, T = seq, Hq = hq, Hkv = hkv, Causal = causal ? 1 : 0, ScaleLog2 = 1f / MathF.Sqrt(D) * 1.4426950408889634f };
        var config = FlashAttention.Config(shape);
        long qa = TensorCorePtx.DeviceAddress(dq), ka = TensorCorePtx.DeviceAddress(dk), va = TensorCorePtx.DeviceAddress(dv);
        void Launch() => run(acc.DefaultStream, config, dq.View, dk.View, dv.View, o.View, qa, ka, va, shape);

        o.CopyFromCPU(Enumerable.Repeat(float.NaN, seq * hq * D).ToArray());
        Launch();
        acc.Synchronize();
        var got = o.GetAsArray1D();
        bool written = !got.Any(float.IsNaN);
        double err = 0, max = 0;
        for (int t = 0; t < 8; t++)
        {
            int i = t == 0 ? 0 : t == 1 ? seq - 1 : random.Next(seq), h = random.Next(hq), kvh = h / (hq / hkv);
            int end = causal ? i + 1 : seq;
            var scores = new double[end];
            double m = double.NegativeInfinity;
            for (int j = 0; j < end; j++)
            {
                double dot = 0;
                for (int d = 0; d < D; d++) dot += H(q[((long)i * hq + h) * D + d]) * H(k[((long)j * hkv + kvh) * D + d]);
                scores[j] = dot / Math.Sqrt(D);
                m = Math.Max(m, scores[j]);
            }
            double sum = 0;
            for (int j = 0; j < end; j++) sum += scores[j] = Math.Exp(scores[j] - m);
            for (int d = 0; d < D; d++)
            {
                double r = 0;
                for (int j = 0; j < end; j++) r += scores[j] / sum * H(v[((long)j * hkv + kvh) * D + d]);
                err = Math.Max(err, Math.Abs(r - got[((long)i * hq + h) * D + d]));
                max = Math.Max(max, Math.Abs(r));
            }
        }
        if (dumpPrefix is not null)
        {
            WriteHalves(dumpPrefix + "_q.bin", q); WriteHalves(dumpPrefix + "_k.bin", k); WriteHalves(dumpPrefix + "_v.bin", v);
            WriteFloats(dumpPrefix + "_o.bin", got);
        }
        double ms = Time(acc, batches, Launch);
        double flops = 4.0 * hq * (double)seq * seq * D / (causal ? 2 : 1);
        var ptx = device.Ptx.FirstOrDefault(kv => kv.Key.StartsWith(nameof(FlashAttention) + ".", StringComparison.Ordinal)).Value?.Ptx ?? "";
        return new Row("flash_attention_fp16_tc", $"B1 Hq{hq} Hkv{hkv} S{seq} D{D}", label, ms, flops / (ms * 1e-3) / 1e12, written ? err / max : double.NaN,
            ptx.Contains("mma.sync"), ptx.Contains("ldmatrix"), ptx.Contains("cp.async"), PtxPostPass.LocalAccesses(ptx), dumpPrefix, written ? null : "outputs left unwritten");
    }

    private static Row PeakRow(GpuDevice device, int half, int batches)
    {
        var acc = device.Accelerator;
        int blocks = 132 * 8, iterations = 4096;
        using var sink = acc.Allocate1D<float>((long)blocks * MmaPeak.Threads);
        var run = device.Launcher<Action<AcceleratorStream, KernelConfig, ArrayView<float>, int, int>>(MmaPeak.Probe);
        var config = new KernelConfig(new Index3D(blocks, 1, 1), new Index3D(MmaPeak.Threads, 1, 1));
        void Launch() => run(acc.DefaultStream, config, sink.View, iterations, half);
        double ms = Time(acc, batches, Launch);
        double flops = (double)blocks * (MmaPeak.Threads / 32) * iterations * MmaPeak.ChainsPerWarp * MmaPeak.FlopsPerMma;
        var ptx = device.Ptx.FirstOrDefault(kv => kv.Key.StartsWith(nameof(MmaPeak) + ".", StringComparison.Ordinal)).Value?.Ptx ?? "";
        return new Row("mma_sync_peak", "m16n8k16, registers only", half == 0 ? "fp32 accumulate" : "fp16 accumulate", ms, flops / (ms * 1e-3) / 1e12, double.NaN,
            ptx.Contains("mma.sync"), false, false, PtxPostPass.LocalAccesses(ptx), null, null);
    }

    private static double H(ushort bits) => (double)BitConverter.UInt16BitsToHalf(bits);

    private static ushort[] Halves(Random random, long count)
    {
        var h = new ushort[count];
        for (long i = 0; i < count; i++) h[i] = BitConverter.HalfToUInt16Bits((System.Half)(random.NextDouble() * 2 - 1));
        return h;
    }

    private static uint[] Pack(ushort[] h)
    {
        var u = new uint[h.Length / 2];
        for (long i = 0; i < u.Length; i++) u[i] = h[2 * i] | ((uint)h[2 * i + 1] << 16);
        return u;
    }

    private static void WriteHalves(string path, ushort[] data) => File.WriteAllBytes(path, System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()).ToArray());

    private static void WriteFloats(string path, float[] data) => File.WriteAllBytes(path, System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()).ToArray());

    /// <summary>Median over batches of the mean time of back-to-back launches (a batch is about 20 launches), after a warm-up.</summary>
    private static double Time(Accelerator acc, int batches, Action launch)
    {
        launch();
        acc.Synchronize();
        var clock = Stopwatch.StartNew();
        launch();
        acc.Synchronize();
        int perBatch = Math.Clamp((int)(20 / Math.Max(clock.Elapsed.TotalMilliseconds, 0.05)), 3, 50);
        var times = new List<double>();
        for (int r = 0; r < batches; r++)
        {
            clock.Restart();
            for (int i = 0; i < perBatch; i++) launch();
            acc.Synchronize();
            times.Add(clock.Elapsed.TotalMilliseconds / perBatch);
        }
        times.Sort();
        return times[times.Count / 2];
    }
}
