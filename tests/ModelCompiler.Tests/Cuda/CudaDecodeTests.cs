using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Backends;
using ModelCompiler.Backends.Cuda;
using ModelCompiler.Backends.Cuda.Kernels;
using ModelCompiler.Backends.Reference;
using ModelCompiler.Cli;
using ModelCompiler.Frontend;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Tests.Oracles;
using ModelCompiler.Tests.Variants;
using Xunit.Abstractions;
using RefInterpreter = ModelCompiler.Backends.Reference.Interpreter;

namespace ModelCompiler.Tests.Cuda;

/// <summary>
/// The cuda decode path on the CPU accelerator at tiny shapes: GEMV (norm prologue, gate, bias, residual; fp32, fp16,
/// bf16 weights), split decode attention, the in-place KV cache (one upload and one read-back per step), and 16-bit
/// weights end to end against Hugging Face.
/// </summary>
public sealed class CudaDecodeTests(ITestOutputHelper output)
{
    [Fact]
    public void SixteenBitValuesWidenExactly()
    {
        for (uint h = 0; h <= 0xffff; h++)
        {
            float expected = (float)BitConverter.UInt16BitsToHalf((ushort)h), actual = GemvKernels.ToFloat(h, WeightFormat.F16);
            Assert.True(float.IsNaN(expected) ? float.IsNaN(actual) : BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(actual), $"fp16 {h:x4}");
            Assert.Equal(BitConverter.UInt32BitsToSingle(h << 16), GemvKernels.ToFloat(h, WeightFormat.Bf16));
        }
    }

    [Fact]
    public void Bf16RoundsToNearestEven()
    {
        Assert.Equal(0x3f80, CudaModel.ToBits(1f + MathF.Pow(2, -8), WeightFormat.Bf16));          // tie: down to even
        Assert.Equal(0x3f82, CudaModel.ToBits(1f + 3 * MathF.Pow(2, -8), WeightFormat.Bf16));      // tie: up to even
        Assert.Equal(0x3f81, CudaModel.ToBits(1f + MathF.Pow(2, -7) + MathF.Pow(2, -10), WeightFormat.Bf16));
        Assert.True(float.IsNaN(GemvKernels.ToFloat(CudaModel.ToBits(float.NaN, WeightFormat.Bf16), WeightFormat.Bf16)));
        Assert.Equal(BitConverter.HalfToUInt16Bits((System.Half)0.1f), CudaModel.ToBits(0.1f, WeightFormat.F16));
    }

    /// <summary>The GEMV kernel against a double-precision host computation of the same (rounded) weights.</summary>
    [Theory]
    [InlineData(WeightFormat.F32, 0, false, false)]
    [InlineData(WeightFormat.F16, 1, true, true)]
    [InlineData(WeightFormat.Bf16, 2, true, false)]
    [InlineData(WeightFormat.F32, 1, false, true)]
    public void GemvMatchesTheHost(int format, int prologue, bool gate, bool residual)
    {
        const int m = 2, n = 20, k = 70;
        int rows = gate ? 2 * n : n;
        var rng = new Random(3);
        float[] R(int count) => Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        float[] x = R(m * k), w = R(rows * k), g = R(k), nb = R(k), bias = R(rows), res = R(m * n);
        var bits = w.Select(v => CudaModel.ToBits(v, format)).ToArray();
        var wr = format == WeightFormat.F32 ? w : bits.Select(b => GemvKernels.ToFloat(b, format)).ToArray();
        var expected = new double[m * n];
        for (int r = 0; r < m; r++)
        {
            var xr = x.Skip(r * k).Take(k).Select(v => (double)v).ToArray();
            if (prologue != 0)
            {
                double mean = prologue == 2 ? xr.Average() : 0;
                double inv = 1 / Math.Sqrt(xr.Select(v => (v - mean) * (v - mean)).Average() + 1e-5);
                xr = xr.Select((v, i) => (v - mean) * inv * g[i] + (prologue == 2 ? nb[i] : 0)).ToArray();
            }
            double Dot(int row) => Enumerable.Range(0, k).Sum(i => xr[i] * wr[row * k + i]) + bias[row];
            for (int c = 0; c < n; c++)
            {
                double a = Dot(c);
                if (gate) a = a / (1 + Math.Exp(-a)) * Dot(c + n);   // silu(a) · b
                expected[r * n + c] = a + (residual ? res[r * n + c] : 0);
            }
        }
        using var device = GpuDevice.Open(simulate: true);
        var acc = device.Accelerator;
        using var xb = acc.Allocate1D(x);
        using var wb = acc.Allocate1D(format == WeightFormat.F32 ? w : new float[1]);
        using var pb = acc.Allocate1D(format == WeightFormat.F32 ? new uint[1] : Enumerable.Range(0, bits.Length / 2).Select(i => bits[2 * i] | (uint)bits[2 * i + 1] << 16).ToArray());
        using var gb = acc.Allocate1D(g);
        using var nbb = acc.Allocate1D(nb);
        using var bb = acc.Allocate1D(bias);
        using var rb = acc.Allocate1D(res);
        using var yb = acc.Allocate1D<float>(m * n);
        var s = new GemvShape
        {
            M = m, N = n, K = k, Format = format, Prologue = prologue, HasNormW = prologue == 0 ? 0 : 1, HasNormB = prologue == 2 ? 1 : 0, Eps = 1e-5f,
            HasBias = 1, Activation = gate ? ActivationCode.Silu : ActivationCode.None, Gate = gate ? 1 : 0, HasResidual = residual ? 1 : 0,
        };
        var launch = device.Launcher<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<uint>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemvShape>>(GemvKernels.Gemv);
        launch(acc.DefaultStream, new KernelConfig(new Index3D(3, 1, 1), new Index3D(GemvKernels.Lanes, 1, 1)), xb.View, wb.View, pb.View, gb.View, nbb.View, bb.View, rb.View, yb.View, s);
        var y = yb.GetAsArray1D();
        double worst = expected.Zip(y, (e, a) => Math.Abs(e - a)).Max() / expected.Max(Math.Abs);
        output.WriteLine($"format {format} prologue {prologue} gate {gate}: {worst:E2}");
        Assert.True(worst <= 1e-5, $"relative error {worst:E2}");
    }

    /// <summary>Split decode attention (several key ranges, combined) against the one-warp kernel, with GQA, causal and a window with sinks.</summary>
    [Theory]
    [InlineData(0, 0)]
    [InlineData(150, 3)]
    public void SplitDecodeAttentionMatchesTheOneWarpKernel(int window, int sinks)
    {
        const int hq = 4, hkv = 2, d = 16, t = 300;
        var rng = new Random(5);
        float[] R(int count) => Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        float[] q = R(hq * d), k = R(t * hkv * d), v = R(t * hkv * d);
        var s = new AttentionShape { B = 1, S = 1, Hq = hq, D = d, T = t, Hkv = hkv, Dv = d, Scale = 0.25f, Mask = 1, Window = window, Sinks = sinks };
        using var device = GpuDevice.Open(simulate: true);
        var acc = device.Accelerator;
        using var qb = acc.Allocate1D(q);
        using var kb = acc.Allocate1D(k);
        using var vb = acc.Allocate1D(v);
        using var dummy = acc.Allocate1D<float>(1);
        using var expected = acc.Allocate1D<float>(hq * d);
        using var actual = acc.Allocate1D<float>(hq * d);
        const int chunk = 64, splits = (t + chunk - 1) / chunk;
        using var scratch = acc.Allocate1D<float>(hq * splits * (d + 2));
        device.Launcher<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape>>(AttentionKernels.Attention)(
            acc.DefaultStream, new KernelConfig(hq, AttentionKernels.Warp), qb.View, kb.View, vb.View, dummy.View, expected.View, s);
        device.Launcher<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape, int>>(DecodeAttentionKernels.Partial)(
            acc.DefaultStream, new KernelConfig(new Index3D(hq, splits, 1), new Index3D(DecodeAttentionKernels.Lanes, 1, 1)), qb.View, kb.View, vb.View, dummy.View, scratch.View, s, chunk);
        device.Launcher<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int, int>>(DecodeAttentionKernels.Combine)(
            acc.DefaultStream, new KernelConfig(hq, 32), scratch.View, actual.View, d, splits);
        var e = expected.GetAsArray1D();
        var a = actual.GetAsArray1D();
        double worst = e.Zip(a, (x, y) => Math.Abs(x - y)).Max() / e.Max(Math.Abs);
        output.WriteLine($"window {window}: {worst:E2}");
        Assert.True(worst <= 1e-5, $"relative error {worst:E2}");
    }

    /// <summary>
    /// A decode step through the device KV cache: the cached decoder's greedy tokens equal the interpreter's (no cache,
    /// whole prefix each step) over a cache long enough to be split, and a step moves only the token id in and the argmax
    /// out, runs no float op on the host, and appends the cache in place.
    /// </summary>
    [Fact]
    public void DecodeStepUploadsOnlyTheTokenAndMatchesTheInterpreter()
    {
        var sets = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["vocab"] = "48", ["dim"] = "32", ["n_layers"] = "2", ["n_heads"] = "4", ["n_kv_heads"] = "2", ["ffn_dim"] = "48",
        };
        var weights = new Weights(seed: 1);
        var fresh = ModelFrontend.Load(OracleCheck.Example("llama.arch"), null, sets).Graph;
        new PassManager(CudaBackend.Pipeline).Run(fresh);
        var cachedGraph = ModelFrontend.Load(OracleCheck.Example("llama.arch"), null, sets).Graph;
        new PassManager(CudaBackend.CachedPipeline).Run(cachedGraph);
        var prompt = VariantModel.Tokens(1, 90, 48)[0];
        const int steps = 3;

        var interpreter = new RefInterpreter(fresh);
        float[] Last(long[] ids)
        {
            var logits = interpreter.Run(new Dictionary<string, RefTensor> { ["input_ids"] = RefTensor.FromInts([1, ids.Length], ids) }, weights.Load)["logits"].ToFloat32();
            return logits[^48..];
        }
        var expected = GreedyDecoder.Generate(prompt, steps, [], Last);

        using var device = GpuDevice.Open(simulate: true);
        using var model = new CudaModel(cachedGraph, device);
        model.LoadWeights(name => weights.Load(name, cachedGraph.Weights.First(w => w.Attrs.Str("name") == name).Type).ToFloat32());
        var decoder = new CudaCachedDecoder(cachedGraph, model);
        var actual = decoder.Generate(prompt, steps, []);
        output.WriteLine($"launches per step {decoder.LastStepLaunches}, transfers {decoder.LastStepTransfers}, host fallbacks {string.Join(",", model.HostFallbacks.Keys)}");
        Assert.Equal(expected, actual);
        Assert.Equal(2, decoder.LastStepTransfers);
        Assert.Empty(model.HostFallbacks);
        // Per layer: gemv(norm+qkv), 2 rope, 2 appends, split attention + combine, gemv(o+residual), gemv(norm+gate/up), gemv(down+residual); then embedding, final gemv, argmax.
        Assert.True(decoder.LastStepLaunches <= 11 * 2 + 3, $"{decoder.LastStepLaunches} launches per step");
    }

    /// <summary>fp16 and bf16 weights on the device (fp32 arithmetic): the llama oracle's logits within 1e-2 of Hugging Face's.</summary>
    [Theory]
    [InlineData("fp16")]
    [InlineData("bf16")]
    public void SixteenBitWeightsMatchHuggingFace(string dtype)
    {
        var folder = OracleCheck.Folder("llama");
        var reference = Path.Combine(folder, "reference.safetensors");
        var outPath = Path.Combine(Path.GetTempPath(), $"mc-cudasim-{dtype}-{Guid.NewGuid():N}.safetensors");
        try
        {
            var stderr = new StringWriter();
            int code = McApp.Run(["eval", folder, "--inputs", reference, "--out", outPath, "--target", "cuda-sim", "--dtype", dtype], new StringWriter(), stderr);
            Assert.True(code == 0, $"exit {code}: {stderr}");
            using var expectedFile = SafetensorsFile.Open(reference);
            using var actualFile = SafetensorsFile.Open(outPath);
            var e = expectedFile.ReadFloat32("logits");
            var a = actualFile.ReadFloat32("logits");
            double relative = e.Zip(a, (x, y) => Math.Abs((double)x - y)).Max() / e.Max(x => Math.Abs((double)x));
            output.WriteLine($"{dtype}: relative logits error {relative:E3}");
            Assert.True(relative <= 1e-2, $"{dtype}: {relative:E3}");
            Assert.True(relative > 0, "16-bit weights changed nothing: were they rounded at all?");
        }
        finally
        {
            File.Delete(outPath);
        }
    }

    [Fact]
    public void DTypeOnTheCpuTargetIsAUserError()
    {
        var folder = OracleCheck.Folder("llama");
        var stderr = new StringWriter();
        int code = McApp.Run(["eval", folder, "--inputs", Path.Combine(folder, "reference.safetensors"), "--out", Path.Combine(Path.GetTempPath(), "mc-dtype.safetensors"), "--target", "cpu", "--dtype", "fp16"], new StringWriter(), stderr);
        Assert.Equal(1, code);
        Assert.Single(stderr.ToString().Trim().Split('\n'));
        Assert.Contains("--dtype fp16", stderr.ToString());
    }
}
