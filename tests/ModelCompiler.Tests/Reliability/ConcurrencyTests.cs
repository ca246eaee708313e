using ModelCompiler.Backends;
using ModelCompiler.Backends.Cpu;
using ModelCompiler.Frontend;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Tests.Oracles;

namespace ModelCompiler.Tests.Reliability;

/// <summary>
/// One compiled model shared by many generations at once (ICompiledModel.Run is documented thread-safe): 16
/// KV-cached greedy generations started together give exactly the tokens of 16 run one after another, and finish
/// within a time limit (a deadlock fails the test instead of hanging the run).
/// </summary>
public sealed class ConcurrencyTests
{
    [Fact]
    public async Task SixteenConcurrentGenerationsMatchSequentialOnes()
    {
        var folder = OracleCheck.Folder("llama");
        var cached = HuggingFaceImport.Load(folder, new Dictionary<string, string>()).Graph;
        new PassManager(CpuBackend.CachedPipeline).Run(cached);
        using var store = WeightStore.Open(folder);
        var model = CpuBackend.Instantiate(CpuBackend.Compile(cached));
        model.LoadWeights(store);
        var decoder = new CompiledCachedDecoder(cached, model);
        var eos = GreedyDecoder.EosIds(cached);
        long vocab = cached.Outputs.Single(o => o.Key == "logits").Value.Type.Shape[^1].Size;

        // Sixteen different prompts of different lengths, so the sessions' caches differ in size at every step.
        var prompts = Enumerable.Range(0, 16).Select(i => Enumerable.Range(0, 2 + i % 5).Select(j => (long)((i * 31 + j * 7 + 1) % vocab)).ToArray()).ToArray();
        const int steps = 12;
        var sequential = prompts.Select(p => decoder.Generate(p, steps, eos)).ToArray();

        using var start = new ManualResetEventSlim();
        var tasks = prompts.Select(p => Task.Run(() => { start.Wait(); return decoder.Generate(p, steps, eos); })).ToArray();
        start.Set();
        var concurrent = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(120));

        for (int i = 0; i < prompts.Length; i++) Assert.Equal(sequential[i], concurrent[i]);
        Assert.True(sequential.Select(s => string.Join(",", s[^steps..])).Distinct().Count() > 1, "the prompts should not all generate the same tokens");
    }
}
