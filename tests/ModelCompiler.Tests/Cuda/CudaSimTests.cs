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
    public static TheoryData<string> Families() => ImportHfTests.Families();

    [Theory]
    [MemberData(nameof(Families))]
    public void SimulatedGpuMatchesHuggingFace(string family)
    {
        double relative = OracleCheck.Run(family, OracleCheck.Folder(family), weights: null, "--target", "cuda-sim");
        output.WriteLine($"{family}: relative logits error {relative:E3} (cuda-sim)");
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
        var m = VariantModel.Load(CpuVariantTests.Variants().Select(r => (string)r[0]).First());
        new ModelCompiler.Passes.PassManager(CudaBackend.Pipeline).Run(m.Graph);
        using var device = GpuDevice.Open(simulate: true);
        using var model = new CudaModel(m.Graph, device);
        model.LoadWeights(name => m.W.Load(name, m.Graph.Weights.First(w => w.Attrs.Str("name") == name).Type).ToFloat32());
        model.Run(new Dictionary<string, HostTensor> { ["input_ids"] = HostTensor.FromInts([1, 3], [1, 2, 3]) });
        Assert.True(model.Launches > 0);
        Assert.DoesNotContain(model.HostFallbacks.Keys, op => op is IR.OpKind.FusedLinear or IR.OpKind.Attention or IR.OpKind.RmsNorm
            or IR.OpKind.LayerNorm or IR.OpKind.Rope or IR.OpKind.Softmax or IR.OpKind.Embedding or IR.OpKind.MatMul);
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
