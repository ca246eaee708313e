using ModelCompiler.Backends.Cpu;
using ModelCompiler.Backends.Reference;
using ModelCompiler.Runtime;
using ModelCompiler.Tests.Variants;
using RefInterpreter = ModelCompiler.Backends.Reference.Interpreter;

namespace ModelCompiler.Tests.CpuTarget;

/// <summary>
/// The literature variants (examples/variants: xPos, Transformer-XL's relative scores, sinusoids, StreamingLLM's
/// sinks and window, the prefix LM, DeepNorm, Sandwich-LN) compiled for the CPU and compared with the interpreter
/// (float32) on seeded weights and tokens.
/// </summary>
public sealed class CpuVariantTests
{
    public static TheoryData<string> Variants() => new(Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "examples", "variants"), "*.arch")
        .Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal));

    [Theory]
    [MemberData(nameof(Variants))]
    public void CompiledVariantMatchesTheInterpreter(string file)
    {
        var m = VariantModel.Load(file);
        new ModelCompiler.Passes.PassManager(CpuBackend.Pipeline).Run(m.Graph);
        int vocab = (int)m.Graph.Output("logits").Type[-1].Size;
        var tokens = VariantModel.Tokens(2, 9, vocab);
        var ids = tokens.SelectMany(r => r).ToArray();

        var reference = new RefInterpreter(m.Graph).Run(
            new Dictionary<string, RefTensor> { ["input_ids"] = RefTensor.FromInts([2, 9], ids) }, m.W.Load)["logits"];
        var model = CpuBackend.Instantiate(CpuBackend.Compile(m.Graph));
        model.LoadWeights(name => m.W.Load(name, m.Graph.Weights.First(w => w.Attrs.Str("name") == name).Type).ToFloat32());
        var cpu = model.Run(new Dictionary<string, HostTensor> { ["input_ids"] = HostTensor.FromInts([2, 9], ids) })["logits"];

        double difference = CpuHarness.Difference(reference, cpu);
        Assert.True(difference <= 1e-5, $"{file}: cpu logits differ from the interpreter's by {difference:E3} (relative)");
    }
}
