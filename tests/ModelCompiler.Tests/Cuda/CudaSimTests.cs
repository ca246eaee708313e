using ModelCompiler.Backends.Cuda;
using ModelCompiler.Backends.Reference;
using ModelCompiler.Cli;
using ModelCompiler.Runtime;
using ModelCompiler.Tests.CpuTarget;
using ModelCompiler.Tests.Oracles;
using ModelCompiler.Tests.Variants;
using Xunit.Abstractions;
using RefInterpreter = ModelCompiler.Backends.Reference.Interpreter;

namespace ModelCompiler.Tests.Cuda;

/// <summary>
/// The cuda target's kernels on ILGPU's CPU accelerator (<c>--target cuda-sim</c>): every oracle family through
/// <c>mc eval</c> (logits within 1e-4 of Hugging Face relative to the largest |value|, greedy ids exactly, decoded
/// through the device-resident KV cache with the device argmax), and every literature variant against the interpreter.
/// </summary>
public sealed class CudaSimTests(ITestOutputHelper output)
{
    /// <summary>
    /// Families that between them use every kernel: GQA/RoPE/SwiGLU (llama), ALiBi (bloom_alibi6), T5 relative bias and
    /// an encoder-decoder (t5), MoE (mixtral_moe), sliding window (mistral_swa), LayerNorm/GELU (gpt2), a bidirectional
    /// encoder (bert), MQA with parallel blocks (falcon_mqa). All 31 families ran on the H100 (bench/gpu/results); the
    /// simulator runs one CPU thread per GPU thread, so CI takes this subset and no generation.
    /// </summary>
    public static TheoryData<string> Families() => new("llama", "bloom_alibi6", "t5", "mixtral_moe", "mistral_swa", "gpt2", "bert", "falcon_mqa");

    [Theory]
    [MemberData(nameof(Families))]
    public void SimulatedGpuMatchesHuggingFace(string family)
    {
        var folder = OracleCheck.Folder(family);
        var reference = Path.Combine(folder, "reference.safetensors");
        var outPath = Path.Combine(Path.GetTempPath(), $"mc-cudasim-{family}-{Guid.NewGuid():N}.safetensors");
        try
        {
            var stderr = new StringWriter();
            int code = McApp.Run(["eval", folder, "--inputs", reference, "--out", outPath, "--target", "cuda-sim"], new StringWriter(), stderr);
            Assert.True(code == 0, $"mc eval --target cuda-sim exited with {code}: {stderr}");
            using var expectedFile = SafetensorsFile.Open(reference);
            using var actualFile = SafetensorsFile.Open(outPath);
            var expected = expectedFile.ReadFloat32("logits");
            var actual = actualFile.ReadFloat32("logits");
            Assert.Equal(expected.Length, actual.Length);
            double max = expected.Max(x => Math.Abs((double)x));
            double relative = expected.Zip(actual, (e, a) => Math.Abs((double)e - a)).Max() / max;
            output.WriteLine($"{family}: relative logits error {relative:E3} (cuda-sim)");
            Assert.True(relative <= OracleCheck.Tolerance, $"{family}: max|logits - ref| / max|ref| = {relative:E3}");
        }
        finally
        {
            File.Delete(outPath);
        }
    }

    /// <summary>Greedy decoding through the device-resident KV cache and the device argmax: the oracle's first tokens.</summary>
    [Fact]
    public void SimulatedGpuDecodesTheOraclesGreedyTokens()
    {
        var folder = OracleCheck.Folder("llama");
        var reference = Path.Combine(folder, "reference.safetensors");
        using var file = SafetensorsFile.Open(reference);
        var expected = file.ReadInt64("greedy_ids");
        long prompt = file.Get("input_ids").Shape[1];
        var outPath = Path.Combine(Path.GetTempPath(), $"mc-cudasim-gen-{Guid.NewGuid():N}.safetensors");
        try
        {
            var stderr = new StringWriter();
            int code = McApp.Run(["eval", folder, "--inputs", reference, "--out", outPath, "--target", "cuda-sim", "--generate", "2"], new StringWriter(), stderr);
            Assert.True(code == 0, $"exit {code}: {stderr}");
            using var result = SafetensorsFile.Open(outPath);
            Assert.Equal(expected.Take((int)prompt + 2), result.ReadInt64("greedy_ids"));
        }
        finally
        {
            File.Delete(outPath);
        }
    }

    public static TheoryData<string> Variants() => CpuVariantTests.Variants();

    [Theory]
    [MemberData(nameof(Variants))]
    public void SimulatedGpuMatchesTheInterpreterOnVariants(string file)
    {
        var m = VariantModel.Load(file);
        new ModelCompiler.Passes.PassManager(CudaBackend.Pipeline).Run(m.Graph);
        int vocab = (int)m.Graph.Output("logits").Type[-1].Size;
        var ids = VariantModel.Tokens(2, 9, vocab).SelectMany(r => r).ToArray();
        var reference = new RefInterpreter(m.Graph).Run(
            new Dictionary<string, RefTensor> { ["input_ids"] = RefTensor.FromInts([2, 9], ids) }, m.W.Load)["logits"];
        using var device = GpuDevice.Open(simulate: true);
        using var model = new CudaModel(m.Graph, device);
        model.LoadWeights(name => m.W.Load(name, m.Graph.Weights.First(w => w.Attrs.Str("name") == name).Type).ToFloat32());
        var gpu = model.Run(new Dictionary<string, HostTensor> { ["input_ids"] = HostTensor.FromInts([2, 9], ids) })["logits"];
        double difference = CpuHarness.Difference(reference, gpu);
        output.WriteLine($"{file}: {difference:E3}; host fallbacks: {string.Join(", ", model.HostFallbacks.Select(kv => $"{kv.Key}×{kv.Value}"))}");
        Assert.True(difference <= 1e-4, $"{file}: cuda-sim logits differ from the interpreter's by {difference:E3} (relative)");
    }

    /// <summary>The hot ops of a fused graph (linears, attention, norms, rope, softmax, embedding) run in kernels, never on the host.</summary>
    [Fact]
    public void HotOpsRunInKernels()
    {
        var m = VariantModel.Load("streaming_llm.arch"); // rope, sinks + window attention, gated MLP
        new ModelCompiler.Passes.PassManager(CudaBackend.Pipeline).Run(m.Graph);
        using var device = GpuDevice.Open(simulate: true);
        using var model = new CudaModel(m.Graph, device);
        model.LoadWeights(name => m.W.Load(name, m.Graph.Weights.First(w => w.Attrs.Str("name") == name).Type).ToFloat32());
        model.Run(new Dictionary<string, HostTensor> { ["input_ids"] = HostTensor.FromInts([1, 3], [1, 2, 3]) });
        Assert.True(model.Launches > 0);
        Assert.DoesNotContain(model.HostFallbacks.Keys, op => op is ModelCompiler.IR.OpKind.FusedLinear or ModelCompiler.IR.OpKind.Attention or ModelCompiler.IR.OpKind.RmsNorm
            or ModelCompiler.IR.OpKind.LayerNorm or ModelCompiler.IR.OpKind.Rope or ModelCompiler.IR.OpKind.Softmax or ModelCompiler.IR.OpKind.Embedding or ModelCompiler.IR.OpKind.MatMul);
    }

    [Fact]
    public void CudaTargetWithoutGpuSaysSoInOneLine()
    {
        if (Environment.GetEnvironmentVariable("MC_HAS_GPU") == "1") return; // the GPU machine runs this class too
        var folder = OracleCheck.Folder("llama");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = McApp.Run(["eval", folder, "--inputs", Path.Combine(folder, "reference.safetensors"), "--out", Path.Combine(Path.GetTempPath(), "mc-nogpu.safetensors"), "--target", "cuda"], stdout, stderr);
        Assert.Equal(1, code);
        var text = stderr.ToString().Trim();
        Assert.Single(text.Split('\n'));
        Assert.Contains("no CUDA GPU", text);
    }
}
