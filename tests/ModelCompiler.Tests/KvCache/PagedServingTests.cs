using ModelCompiler.Backends;
using ModelCompiler.Backends.Cpu;
using ModelCompiler.Frontend;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Paged;

namespace ModelCompiler.Tests.KvCache;

/// <summary>
/// Serving on the paged KV cache: sessions sharing one model and pool through the scheduler thread, cancellation, parallel
/// samples sharing their prompt's blocks (copy on write), and the pool's waste on a mixed workload.
/// </summary>
public sealed class PagedServingTests
{
    private const int Vocab = 256;

    private static readonly Lazy<IPagedCompiledModel> Model = new(() =>
    {
        var graph = ModelFrontend.Load(Path.Combine(AppContext.BaseDirectory, "examples", "llama.arch"), null,
            new Dictionary<string, string> { ["n_layers"] = "2", ["dim"] = "64", ["n_heads"] = "4", ["n_kv_heads"] = "2", ["ffn_dim"] = "160", ["vocab"] = "256" }).Graph;
        new PassManager(CpuBackend.PagedPipeline).Run(graph);
        var model = (IPagedCompiledModel)CpuBackend.Instantiate(CpuBackend.Compile(graph));
        var random = new Random(3);
        var sizes = model.Weights.ToDictionary(w => w.Name, w => w.ElementCount);
        model.LoadWeights(name => Enumerable.Range(0, (int)sizes[name]).Select(_ => (float)(random.NextDouble() * 2 - 1) * 0.3f).ToArray());
        return model;
    });

    private static long Greedy(ReadOnlySpan<float> logits) => GreedyDecoder.ArgMax(logits, []);

    private static long[] Prompt(int seed, int length)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => (long)random.Next(Vocab)).ToArray();
    }

    /// <summary>16 sessions generating at once (batched by the scheduler) give each the tokens it gets alone; no deadlock.</summary>
    [Fact]
    public async Task SixteenConcurrentSessionsEqualSequentialRuns()
    {
        var model = Model.Value;
        var prompts = Enumerable.Range(0, 16).Select(i => Prompt(i, 4 + 5 * i)).ToArray();
        int NewTokens(int i) => 6 + i % 5;

        var sequential = new List<long[]>();
        var engine = new PagedEngine(model, PagedEngine.PoolFor(model, 512));
        for (int i = 0; i < prompts.Length; i++)
            sequential.Add(engine.Generate([new GenerationRequest(prompts[i], NewTokens(i))], (_, l) => Greedy(l), maxConcurrent: 1)[0]);

        using var scheduler = new PagedScheduler(model, PagedEngine.PoolFor(model, 16 * 128), maxConcurrent: 16);
        var sessions = prompts.Select(_ => scheduler.CreateSession(128)).ToArray();
        async Task<long[]> Run(int i)
        {
            var tokens = new List<long>();
            await foreach (var t in sessions[i].Generate(prompts[i], NewTokens(i), Greedy)) tokens.Add(t);
            return tokens.ToArray();
        }
        var all = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => Task.Run(() => Run(i)))).WaitAsync(TimeSpan.FromMinutes(3));
        for (int i = 0; i < 16; i++) Assert.Equal(sequential[i], all[i]);
        Assert.True(scheduler.LargestBatch > 1, "the scheduler never batched two sessions");
        foreach (var s in sessions) s.Dispose();
        Assert.Equal(0, scheduler.Pool.BlocksInUse);
    }

    /// <summary>A session's second turn continues its cache: the same tokens as one generation over the whole history.</summary>
    [Fact]
    public async Task SecondTurnContinuesTheConversation()
    {
        var model = Model.Value;
        using var scheduler = new PagedScheduler(model, PagedEngine.PoolFor(model, 256));
        using var session = scheduler.CreateSession(128);
        var first = await session.Generate(Prompt(1, 9), 4, Greedy).ToArrayAsync();
        var second = await session.Generate(Prompt(2, 5), 4, Greedy).ToArrayAsync();

        var engine = new PagedEngine(model, PagedEngine.PoolFor(model, 256));
        var whole = engine.Generate([new GenerationRequest([.. Prompt(1, 9), .. first, .. Prompt(2, 5)], 4)], (_, l) => Greedy(l), maxConcurrent: 1)[0];
        Assert.Equal(whole, second);
        Assert.Equal(9 + 4 + 5 + 3, session.CachedTokens);
    }

    /// <summary>Cancelling a generation ends it with OperationCanceledException and frees the session's blocks; others are unaffected.</summary>
    [Fact]
    public async Task CancellationFreesTheSessionsBlocks()
    {
        var model = Model.Value;
        using var scheduler = new PagedScheduler(model, PagedEngine.PoolFor(model, 1024));
        using var session = scheduler.CreateSession(512);
        using var cancel = new CancellationTokenSource();
        int received = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in session.Generate(Prompt(5, 20), 400, Greedy, cancel: cancel.Token).WithCancellation(CancellationToken.None))
                if (++received == 3) cancel.Cancel();
        });
        Assert.True(received is >= 3 and < 400);
        Assert.Equal(0, session.BlocksHeld);
        Assert.Equal(0, scheduler.Pool.BlocksInUse);
        // The session can start over.
        Assert.Equal(3, (await session.Generate(Prompt(5, 20), 3, Greedy).ToArrayAsync()).Length);
    }

    /// <summary>
    /// Four parallel samples of one prompt (as --n 4): the prompt's blocks are held once; each sample's first write into the
    /// shared, partly filled last block copies it; every sample's logits equal a run of its own tokens on a fresh sequence.
    /// </summary>
    [Fact]
    public void ParallelSamplesShareThePromptBlocksCopyOnWrite()
    {
        var model = Model.Value;
        var engine = new PagedEngine(model, PagedEngine.PoolFor(model, 512));
        var prompt = Prompt(9, 40);   // 2.5 blocks of 16
        var logits = new float[4 * Vocab];
        using var root = engine.Pool.CreateSequence(64);
        engine.Step([root], [prompt], logits);
        var samples = new[] { root, root.Fork(), root.Fork(), root.Fork() };
        Assert.Equal(3, engine.Pool.BlocksInUse);                          // the prompt's blocks, counted once
        Assert.Equal(4, engine.Pool.Owners(root.Table[0]));

        long[] next = [11, 22, 33, 44];
        engine.Step(samples, next.Select(t => (ReadOnlyMemory<long>)new[] { t }).ToList(), logits);
        Assert.Equal(3 + 3, engine.Pool.BlocksInUse);                      // three samples copied the shared last block
        Assert.Equal(4, engine.Pool.Owners(root.Table[0]));               // full prompt blocks stay shared

        var single = new float[Vocab];
        for (int s = 0; s < 4; s++)
        {
            using var alone = engine.Pool.CreateSequence(64);
            engine.Step([alone], [(long[])[.. prompt, next[s]]], single);
            var row = logits.AsSpan(s * Vocab, Vocab);
            double maxRef = 0, maxDiff = 0;
            for (int i = 0; i < Vocab; i++) { maxRef = Math.Max(maxRef, Math.Abs(single[i])); maxDiff = Math.Max(maxDiff, Math.Abs(single[i] - row[i])); }
            Assert.True(maxDiff / maxRef <= 1e-4, $"sample {s}: relative difference {maxDiff / maxRef:E3}");
        }
        foreach (var s in samples.Skip(1)) s.Dispose();
    }

    /// <summary>
    /// 64 requests with prompt and output lengths drawn (seeded) from 16..512, served 16 at a time: over every step, the
    /// pool's slots allocated but not holding a token stay under 4% of the slots allocated.
    /// </summary>
    [Fact]
    public void MixedWorkloadWastesUnderFourPercentOfThePool()
    {
        var model = Model.Value;
        var random = new Random(2024);
        var requests = Enumerable.Range(0, 64).Select(i => new GenerationRequest(Prompt(100 + i, random.Next(16, 513)), random.Next(16, 513))).ToList();
        var engine = new PagedEngine(model, PagedEngine.PoolFor(model, 16 * 1040), maxTokensPerStep: 16 * 512, maxSequencesPerStep: 16);
        long held = 0, used = 0, steps = 0;
        engine.Generate(requests, (_, l) => Greedy(l), maxConcurrent: 16, afterStep: () =>
        {
            held += (long)engine.Pool.BlocksInUse * engine.Pool.BlockSize;
            used += engine.ActiveTokens;
            steps++;
        });
        double waste = (double)(held - used) / held;
        Assert.True(steps > 500);
        Assert.True(waste < 0.04, $"wasted {waste:P2} of the allocated slots");
        Assert.Equal(0, engine.Pool.BlocksInUse);
    }
}
