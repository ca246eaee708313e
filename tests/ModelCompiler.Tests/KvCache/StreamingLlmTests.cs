using ModelCompiler.Backends;
using ModelCompiler.Backends.Cpu;
using ModelCompiler.Backends.Reference;
using ModelCompiler.Frontend;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Paged;
using ModelCompiler.Tests.Oracles;
using RefInterpreter = ModelCompiler.Backends.Reference.Interpreter;

namespace ModelCompiler.Tests.KvCache;

/// <summary>
/// StreamingLLM mode (streaming-llm pass, RoPE at cache indices inside Attention.Paged, sink + window eviction) on the
/// zoo's LLaMA oracle: while the sequence fits in sinks + window it computes exactly the normal cache's logits; after
/// eviction each step equals the reference interpreter run on the kept tokens alone at positions 0..n−1; and it goes
/// to 4× the model's context with a bounded block count and no growth in what a step allocates.
/// </summary>
public sealed class StreamingLlmTests
{
    private const int BlockSize = 4;

    private static string Folder => OracleCheck.Folder("llama");

    private static Graph Load(IReadOnlyDictionary<string, string>? sets = null) => HuggingFaceImport.Load(Folder, sets ?? new Dictionary<string, string>()).Graph;

    private static IPagedCompiledModel Compile(Graph graph, WeightStore store, (int Sinks, int Window)? streaming)
    {
        new PassManager(CpuBackend.PagedPipeline).Run(graph);
        if (streaming is { } s) new StreamingLlmRewrite(s.Sinks, s.Window).Run(graph);
        var model = (IPagedCompiledModel)CpuBackend.Instantiate(CpuBackend.Compile(graph));
        model.LoadWeights(store);
        return model;
    }

    private static long[] Prompt()
    {
        using var reference = SafetensorsFile.Open(Path.Combine(Folder, "reference.safetensors"));
        return reference.ReadInt64("input_ids").Take((int)reference.Get("input_ids").Shape[1]).ToArray();
    }

    private static double RelativeDifference(ReadOnlySpan<float> reference, ReadOnlySpan<float> actual)
    {
        Assert.Equal(reference.Length, actual.Length);
        double maxRef = 0, maxDiff = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            maxRef = Math.Max(maxRef, Math.Abs((double)reference[i]));
            maxDiff = Math.Max(maxDiff, Math.Abs((double)reference[i] - actual[i]));
        }
        return maxDiff / maxRef;
    }

    /// <summary>
    /// Up to sinks + window tokens nothing is evicted and every cache index is the position, so the streaming model (keys
    /// cached before RoPE, rotated inside the attention) gives the normal paged cache's logits, step for step, on both layers.
    /// </summary>
    [Fact]
    public void WithinSinksPlusWindowLogitsEqualTheNormalCache()
    {
        const int sinks = 4, window = 28;
        using var store = WeightStore.Open(Folder);
        var normal = Compile(Load(), store, null);
        var streaming = Compile(Load(), store, (sinks, window));
        Assert.Equal((window, sinks), (streaming.SlidingWindow, streaming.AttentionSinks));
        var normalEngine = new PagedEngine(normal, PagedEngine.PoolFor(normal, 64, BlockSize));
        var streamingEngine = new PagedEngine(streaming, PagedEngine.PoolFor(streaming, 64, BlockSize));
        using var a = normalEngine.Pool.CreateSequence(64);
        using var b = streamingEngine.Pool.CreateSequence(64);
        var (la, lb) = (new float[normalEngine.Vocab], new float[streamingEngine.Vocab]);
        ReadOnlyMemory<long> feed = Prompt();
        int steps = 0;
        while (b.Length + feed.Length <= sinks + window)
        {
            normalEngine.Step([a], [feed], la);
            streamingEngine.Step([b], [feed], lb);
            double diff = RelativeDifference(la, lb);
            Assert.True(diff <= 1e-4, $"step {steps} (length {b.Length}): streaming logits differ from the normal cache's by {diff:E3}");
            feed = new[] { (long)GreedyDecoder.ArgMax(lb, []) };
            steps++;
        }
        Assert.Equal(sinks + window, b.Length);
        Assert.True(steps > 10);
    }

    /// <summary>
    /// Past sinks + window, each step's logits equal the reference interpreter's over the kept tokens alone (the sinks, then
    /// the window ending at the new token) at positions 0..n−1, an independent computation. One layer, so that the kept
    /// tokens' keys and values do not depend on the evicted ones (with more layers they do, and no recompute matches).
    /// Block-aligned and unaligned sinks and windows, and no sinks.
    /// </summary>
    [Theory]
    [InlineData(4, 12)]
    [InlineData(3, 10)]
    [InlineData(0, 9)]
    public void AfterEvictionLogitsEqualTheInterpreterOnTheKeptTokensReindexed(int sinks, int window)
    {
        var sets = new Dictionary<string, string> { ["n_layers"] = "1" };
        using var store = WeightStore.Open(Folder);
        var model = Compile(Load(sets), store, (sinks, window));
        var full = Load(sets);
        var interpreter = new RefInterpreter(full);
        var load = WeightBinding.Loader(store);
        var weights = new Dictionary<string, RefTensor>();
        RefTensor Weight(string name, TensorType type) => weights.TryGetValue(name, out var t) ? t : weights[name] = load(name, type);

        var engine = new PagedEngine(model, PagedEngine.PoolFor(model, 64, BlockSize));
        int length = 3 * (sinks + window) + 5;
        using var sequence = engine.Pool.CreateSequence(length);
        var logits = new float[engine.Vocab];
        var tokens = new List<long>(Prompt());
        engine.Step([sequence], [tokens.ToArray()], logits);
        int compared = 0;
        while (sequence.Length < length)
        {
            long next = GreedyDecoder.ArgMax(logits, []);
            tokens.Add(next);
            engine.Step([sequence], [new[] { next }], logits);
            int p = tokens.Count - 1;
            if (p < sinks + window) continue;
            var kept = tokens.Take(sinks).Concat(tokens.Skip(p - window + 1)).ToArray();
            Assert.Equal(sinks + window, kept.Length);
            var reference = interpreter.Run(new Dictionary<string, RefTensor> { ["input_ids"] = RefTensor.FromInts([1, kept.Length], kept) }, Weight)["logits"];
            var last = reference.ToFloat32().AsSpan(reference.ToFloat32().Length - logits.Length).ToArray();
            double diff = RelativeDifference(last, logits);
            Assert.True(diff <= 1e-4, $"position {p}: streaming logits differ from the interpreter on the kept tokens by {diff:E3}");
            compared++;
            // Evicted blocks are back in the pool: at most the sinks' blocks, the window's and the block being filled.
            Assert.True(sequence.BlocksHeld <= (sinks + BlockSize - 1) / BlockSize + (window + BlockSize - 1) / BlockSize + 1, $"{sequence.BlocksHeld} blocks held at position {p}");
        }
        Assert.True(compared >= 2 * (sinks + window));
    }

    /// <summary>
    /// 4× the model's context (max_position_embeddings 64) generated in StreamingLLM mode: the pool's blocks in use stay
    /// within the sinks' and window's blocks plus one, and a decode step at 4× the context allocates no more managed memory
    /// than one at the context (both after the cache reached sinks + window).
    /// </summary>
    [Fact]
    public void GeneratesFourTimesTheContextWithFlatMemory()
    {
        const int sinks = 4, window = 24;
        using var store = WeightStore.Open(Folder);
        var graph = Load();
        Assert.True(graph.TryGetHyperparameter<long>("max_positions", out var context));
        var model = Compile(graph, store, (sinks, window));
        int total = (int)(4 * context) + 8;
        var engine = new PagedEngine(model, PagedEngine.PoolFor(model, 4 * (sinks + window), BlockSize), maxTokensPerStep: 64, maxSequencesPerStep: 1);
        using var sequence = engine.Pool.CreateSequence(total);
        var logits = new float[engine.Vocab];
        var prompt = Prompt();
        engine.Step([sequence], [prompt], logits);
        var token = new long[1];
        var feed = new List<ReadOnlyMemory<long>> { token };
        KvSequence[] one = [sequence];
        int mostInUse = 0;
        void Step()
        {
            token[0] = GreedyDecoder.ArgMax(logits, []);
            engine.Step(one, feed, logits);
            mostInUse = Math.Max(mostInUse, engine.Pool.BlocksInUse);
        }
        // The least of five steps, as in PagedKvCacheTests: the runtime's own bookkeeping may vary from step to step.
        long StepBytes()
        {
            long least = long.MaxValue;
            for (int i = 0; i < 5; i++)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                Step();
                least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
            }
            return least;
        }
        while (sequence.Length < context) Step();
        long atContext = StepBytes();
        while (sequence.Length < 4 * context) Step();
        long atFourTimes = StepBytes();
        Assert.True(sequence.Length >= 4 * context, $"{sequence.Length} tokens");
        Assert.True(atFourTimes <= atContext, $"a decode step allocated {atContext} bytes at the context and {atFourTimes} at 4× it");
        int bound = (sinks + BlockSize - 1) / BlockSize + (window + BlockSize - 1) / BlockSize + 1;
        Assert.InRange(mostInUse, 1, bound);
        Assert.All(logits, x => Assert.True(float.IsFinite(x)));
    }

    /// <summary>
    /// The rewrite on the zoo LLaMA: every paged attention reads q and k from before their rope (no rope is left), carries the
    /// sinks, window and the ropes' parameters, and position_ids stay an input that nothing else reads.
    /// </summary>
    [Fact]
    public void TheRewriteMovesRopeIntoEveryPagedAttention()
    {
        var graph = Load();
        new PassManager(CpuBackend.PagedPipeline).Run(graph);
        var ropes = graph.Nodes.Where(n => n.Op == OpKind.Rope).ToList();
        var before = graph.Nodes.Where(n => n.Op == OpKind.PagedAttention).ToList();
        Assert.Equal(2 * before.Count, ropes.Count);
        var preRope = before.Select(a => (a.Name, Q: a.Input(0).Input(0), K: a.Input(1).Input(0), Theta: a.Input(0).Attrs.Float("theta"))).ToList();
        Assert.True(new StreamingLlmRewrite(4, 20).Run(graph));
        Assert.DoesNotContain(graph.Nodes, n => n.Op == OpKind.Rope);
        var after = graph.Nodes.Where(n => n.Op == OpKind.PagedAttention).ToList();
        Assert.Equal(preRope.Count, after.Count);
        foreach (var (attention, expected) in after.Zip(preRope))
        {
            Assert.Equal(expected.Name, attention.Name);
            Assert.Same(expected.Q, attention.Input(0));
            Assert.Same(expected.K, attention.Input(1));
            Assert.Equal((4L, 20L), (attention.Attrs.Int("sinks"), attention.Attrs.Int("window")));
            Assert.Equal(expected.Theta, attention.Attrs.Float("rope_theta"));
            Assert.Equal(expected.Q.Type[3].Size, attention.Attrs.Int("rope_dim"));
        }
        var positionIds = Assert.Single(graph.Inputs, i => i.Attrs.Str("name") == PagedKvCacheRewrite.PositionIds);
        Assert.DoesNotContain(graph.Nodes, n => n.Inputs.Contains(positionIds));
    }

    /// <summary>Models whose positions do not enter only through RoPE are refused with the reason (GPT-2's learned table, BLOOM's ALiBi, dynamic NTK).</summary>
    [Theory]
    [InlineData("gpt2", "position_ids reach")]
    [InlineData("bloom", "ALiBi")]
    [InlineData("llama_rope_dynamic", "rope scaling 'dynamic'")]
    public void ModelsWithOtherPositionEncodingsAreRefused(string family, string reason)
    {
        var graph = HuggingFaceImport.Load(OracleCheck.Folder(family), new Dictionary<string, string>()).Graph;
        new PassManager(CpuBackend.PagedPipeline).Run(graph);
        var error = Assert.Throws<McException>(() => new StreamingLlmRewrite(4, 16).Run(graph));
        Assert.Contains("cannot run in StreamingLLM mode", error.Message);
        Assert.Contains(reason, error.Message);
    }
}
