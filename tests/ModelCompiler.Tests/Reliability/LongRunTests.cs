using System.Diagnostics;
using ModelCompiler.Backends;
using ModelCompiler.Backends.Cpu;
using ModelCompiler.Frontend;
using ModelCompiler.Passes;
using ModelCompiler.Runtime.Paged;

namespace ModelCompiler.Tests.Reliability;

/// <summary>Runs alone (after the parallel tests), so the process's resident set is this test's own.</summary>
[CollectionDefinition(nameof(AloneCollection), DisableParallelization = true)]
public sealed class AloneCollection;

/// <summary>
/// A 10,000-token streamed generation (one session of the paged scheduler, tokens as an IAsyncEnumerable) on a tiny
/// rotary model: the resident set sampled every 500 tokens stays within a bound after warm-up, and the live managed
/// heap does not grow with the tokens (the KV cache lives in the pool, allocated up front).
/// </summary>
[Collection(nameof(AloneCollection))]
public sealed class LongRunTests
{
    [Fact]
    public async Task TenThousandStreamedTokensKeepMemoryFlat()
    {
        const int tokens = 10_000, warmUp = 1_000, every = 500;
        var graph = ModelFrontend.Load(Path.Combine(AppContext.BaseDirectory, "examples", "llama.arch"), null,
            new Dictionary<string, string> { ["n_layers"] = "1", ["dim"] = "32", ["n_heads"] = "2", ["n_kv_heads"] = "1", ["ffn_dim"] = "48", ["vocab"] = "64" }).Graph;
        new PassManager(CpuBackend.PagedPipeline).Run(graph);
        var model = (IPagedCompiledModel)CpuBackend.Instantiate(CpuBackend.Compile(graph));
        var random = new Random(11);
        var sizes = model.Weights.ToDictionary(w => w.Name, w => w.ElementCount);
        model.LoadWeights(name => Enumerable.Range(0, (int)sizes[name]).Select(_ => (float)(random.NextDouble() * 2 - 1) * 0.3f).ToArray());

        using var scheduler = new PagedScheduler(model, PagedEngine.PoolFor(model, tokens + 64));
        using var session = scheduler.CreateSession(tokens + 16);
        var process = Process.GetCurrentProcess();
        long Rss() { process.Refresh(); return process.WorkingSet64; }

        var rss = new List<long>();
        long heapAfterWarmUp = 0;
        int received = 0;
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await foreach (var _ in session.Generate([1, 2, 3], tokens, logits => GreedyDecoder.ArgMax(logits, []), cancel: timeout.Token))
        {
            received++;
            if (received == warmUp) heapAfterWarmUp = GC.GetTotalMemory(forceFullCollection: true);
            if (received >= warmUp && received % every == 0) rss.Add(Rss());
        }
        long heapAtEnd = GC.GetTotalMemory(forceFullCollection: true);

        Assert.Equal(tokens, received);
        Assert.Equal(tokens / every - warmUp / every + 1, rss.Count);
        // Garbage between collections may come and go; growth with the tokens would exceed this many times over.
        long growth = rss.Max() - rss[0];
        Assert.True(growth < 64L << 20, $"RSS grew by {growth >> 20} MiB between token {warmUp} and {tokens} (samples MiB: {string.Join(", ", rss.Select(r => r >> 20))})");
        Assert.True(heapAtEnd - heapAfterWarmUp < 4L << 20, $"live managed heap grew from {heapAfterWarmUp} to {heapAtEnd} bytes");
    }
}
