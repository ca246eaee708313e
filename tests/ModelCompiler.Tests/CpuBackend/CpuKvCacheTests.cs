using ModelCompiler.Backends;
using ModelCompiler.Backends.Cpu;
using ModelCompiler.Frontend;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Tests.Oracles;

namespace ModelCompiler.Tests.CpuTarget;

/// <summary>
/// The compiled KV-cached graph (fusion + kv-cache passes) against the compiled uncached forward, step by step:
/// every step's last logits within 1e-4 (relative to the largest |value|) and the greedy tokens the oracle's.
/// (mc eval --target cpu --generate, which every oracle with greedy_ids passes in CpuOracleTests, decodes through it.)
/// </summary>
public sealed class CpuKvCacheTests
{
    [Theory]
    [InlineData("llama")]
    [InlineData("gpt2")]
    [InlineData("mistral_swa")]
    [InlineData("falcon_mqa")]
    [InlineData("bloom")]
    public void CompiledCachedDecodeMatchesCompiledFullForward(string family)
    {
        var folder = OracleCheck.Folder(family);
        var full = HuggingFaceImport.Load(folder, new Dictionary<string, string>()).Graph;
        var cached = HuggingFaceImport.Load(folder, new Dictionary<string, string>()).Graph;
        new PassManager(CpuBackend.Pipeline).Run(full);
        new PassManager(CpuBackend.CachedPipeline).Run(cached);
        Assert.Contains(cached.Outputs, o => o.Key == "present.0.key");

        using var store = WeightStore.Open(folder);
        var fullModel = CpuBackend.Instantiate(CpuBackend.Compile(full));
        fullModel.LoadWeights(store);
        var cachedModel = CpuBackend.Instantiate(CpuBackend.Compile(cached));
        cachedModel.LoadWeights(store);

        using var reference = SafetensorsFile.Open(Path.Combine(folder, "reference.safetensors"));
        var expected = reference.ReadInt64("greedy_ids");
        var row0 = reference.ReadInt64("input_ids").Take((int)reference.Get("input_ids").Shape[1]).ToArray();
        int steps = expected.Length - row0.Length, checkedSteps = 0;
        var generated = new CompiledCachedDecoder(cached, cachedModel).Generate(row0, steps, GreedyDecoder.EosIds(cached), (ids, stepLogits) =>
        {
            var logits = fullModel.Run(new Dictionary<string, HostTensor> { ["input_ids"] = HostTensor.FromInts([1, ids.Length], ids) }, row0.Length)["logits"];
            long vocab = logits.Shape[^1];
            var last = logits.Floats!.AsSpan((int)(logits.Floats!.Length - vocab)).ToArray();
            double maxRef = last.Max(x => Math.Abs((double)x));
            double maxDiff = last.Zip(stepLogits, (a, b) => Math.Abs((double)a - b)).Max();
            Assert.True(maxDiff / maxRef <= 1e-4, $"{family}, step {checkedSteps}: cached logits differ from the compiled full forward by {maxDiff / maxRef:E3}");
            checkedSteps++;
        });
        Assert.Equal(steps, checkedSteps);
        Assert.Equal(expected, generated);
    }
}
