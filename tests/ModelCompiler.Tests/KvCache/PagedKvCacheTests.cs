using System.Runtime.CompilerServices;
using System.Text;
using ModelCompiler.Backends;
using ModelCompiler.Backends.Cpu;
using ModelCompiler.Frontend;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Paged;
using ModelCompiler.Tests.Oracles;

namespace ModelCompiler.Tests.KvCache;

/// <summary>
/// The paged KV cache on the cpu target (paged-kv-cache pass, Attention.Paged, KvBlockPool, PagedEngine): the printed IR
/// before and after the pass, every oracle's greedy tokens with each step's logits against the contiguous cache and a
/// full recompute, batched decoding against one sequence at a time, and no per-step allocation that grows with the context.
/// </summary>
public sealed class PagedKvCacheTests
{
    private static string GoldenDir([CallerFilePath] string thisFile = "")
    {
        var source = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(thisFile)!, "..", "Data", "golden"));
        return Directory.Exists(source) ? source : Path.Combine(AppContext.BaseDirectory, "Data", "golden");
    }

    private static Graph TinyLlama() => ModelFrontend.Load(Path.Combine(AppContext.BaseDirectory, "examples", "llama.arch"), null,
        new Dictionary<string, string> { ["n_layers"] = "1", ["dim"] = "64", ["n_heads"] = "4", ["n_kv_heads"] = "2", ["ffn_dim"] = "160", ["vocab"] = "256" }).Graph;

    private static void AssertGolden(string file, string actual)
    {
        var golden = Path.Combine(GoldenDir(), file);
        if (Environment.GetEnvironmentVariable("MC_UPDATE_GOLDEN") == "1") { File.WriteAllText(golden, actual); return; }
        Assert.True(File.Exists(golden), $"{golden} does not exist (MC_UPDATE_GOLDEN=1 creates it)");
        Assert.Equal(File.ReadAllText(golden), actual);
    }

    /// <summary>Before (kv-cache: past inputs, cache_append, presents) and after (paged_attention, position_ids) for a LLaMA layer.</summary>
    [Fact]
    public void PrintedIrBeforeAndAfterMatchesGolden()
    {
        var graph = TinyLlama();
        new PassManager(["kv-cache"]).Run(graph);
        var before = Printer.Print(graph);
        Assert.Contains("cache_append", before);
        new PassManager(["paged-kv-cache"]).Run(graph);
        var after = Printer.Print(graph);
        Assert.Contains("paged_attention", after);
        Assert.DoesNotContain("cache_append", after);
        Assert.DoesNotContain("past.", after);
        Assert.DoesNotContain("present.", after);
        AssertGolden("llama.kv-cache.ir", before);
        AssertGolden("llama.paged-kv-cache.ir", after);
    }

    /// <summary>paged-logit-rows: the LM head reads the rows named by logits_rows (a gather of its input), so it returns [1, R, V].</summary>
    [Fact]
    public void LogitRowsPrintedIrMatchesGoldenAndTheHeadReadsOnlyTheRequestedRows()
    {
        var graph = TinyLlama();
        new PassManager(["kv-cache", "paged-kv-cache"]).Run(graph);
        Assert.True(new PagedLogitRows().Run(graph));
        var after = Printer.Print(graph);
        Assert.Contains("input \"logits_rows\" : i64[1,logit_rows]", after);
        Assert.Equal("[1,logit_rows,256]", graph.Output("logits").Type.ToString()[3..]);
        Assert.False(new PagedLogitRows().Run(graph));   // once only
        AssertGolden("llama.paged-logit-rows.ir", after);
    }

    public static TheoryData<string> GreedyFamilies() => KvCacheTests.GreedyFamilies();

    /// <summary>
    /// Greedy decoding through the paged cache (blocks of 4 tokens, so every oracle's sequence spans several blocks) gives
    /// Hugging Face's greedy_ids, and every step's logits are within 1e-4 (relative to max |value|) of the contiguous
    /// cache's and of the compiled full forward over the same tokens. Models the paged rewrite does not take (position
    /// biases other than ALiBi, encoder inputs) must say why, and are held to that.
    /// </summary>
    [Theory]
    [MemberData(nameof(GreedyFamilies))]
    public void PagedDecodeMatchesContiguousCacheFullForwardAndHuggingFace(string family)
    {
        var folder = OracleCheck.Folder(family);
        Graph Load() => HuggingFaceImport.Load(folder, new Dictionary<string, string>()).Graph;
        var cached = Load();
        new PassManager(CpuBackend.CachedPipeline).Run(cached);
        if (PagedKvCacheRewrite.Unsupported(cached) is { } why)
        {
            // Only T5's relative-bucket bias and encoder input keep these on the contiguous cache.
            Assert.StartsWith("t5", family);
            Assert.Throws<McException>(() => new PassManager(["paged-kv-cache"]).Run(cached));
            return;
        }
        var full = Load();
        new PassManager(CpuBackend.Pipeline).Run(full);
        var paged = Load();
        new PassManager(CpuBackend.PagedPipeline).Run(paged);

        using var store = WeightStore.Open(folder);
        var fullModel = CpuBackend.Instantiate(CpuBackend.Compile(full));
        fullModel.LoadWeights(store);
        var cachedModel = CpuBackend.Instantiate(CpuBackend.Compile(cached));
        cachedModel.LoadWeights(store);
        var pagedModel = (IPagedCompiledModel)CpuBackend.Instantiate(CpuBackend.Compile(paged));
        pagedModel.LoadWeights(store);

        using var reference = SafetensorsFile.Open(Path.Combine(folder, "reference.safetensors"));
        var expected = reference.ReadInt64("greedy_ids");
        var row0 = reference.ReadInt64("input_ids").Take((int)reference.Get("input_ids").Shape[1]).ToArray();
        int steps = expected.Length - row0.Length;
        var eos = GreedyDecoder.EosIds(cached);

        var contiguous = new List<float[]>();
        new CompiledCachedDecoder(cached, cachedModel).Generate(row0, steps, eos, (_, logits) => contiguous.Add(logits));

        var engine = new PagedEngine(pagedModel, PagedEngine.PoolFor(pagedModel, 256, blockSize: 4));
        var tokens = new List<long>(row0);
        int step = 0;
        engine.Generate([new GenerationRequest(row0, steps)], (_, logits) => GreedyDecoder.ArgMax(logits, eos), maxConcurrent: 1,
            onToken: (_, token, logits) =>
            {
                var fullLogits = fullModel.Run(new Dictionary<string, HostTensor> { ["input_ids"] = HostTensor.FromInts([1, tokens.Count], tokens.ToArray()) }, row0.Length)["logits"].Floats!;
                var last = fullLogits.AsSpan(fullLogits.Length - logits.Length).ToArray();
                AssertClose(last, logits, $"{family}, step {step}: paged vs full forward");
                AssertClose(contiguous[step], logits, $"{family}, step {step}: paged vs contiguous cache");
                tokens.Add(token);
                step++;
            });
        Assert.Equal(steps, step);
        Assert.Equal(expected, tokens);
        Assert.Equal(0, engine.Pool.BlocksInUse);
    }

    private static void AssertClose(ReadOnlySpan<float> reference, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(reference.Length, actual.Length);
        double maxRef = 0, maxDiff = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            maxRef = Math.Max(maxRef, Math.Abs((double)reference[i]));
            maxDiff = Math.Max(maxDiff, Math.Abs((double)reference[i] - actual[i]));
        }
        Assert.True(maxDiff / maxRef <= 1e-4, $"{what}: relative difference {maxDiff / maxRef:E3}");
    }

    private static (IPagedCompiledModel Model, int Vocab) TinyPagedModel(int seed = 1)
    {
        var graph = TinyLlama();
        new PassManager(CpuBackend.PagedPipeline).Run(graph);
        var model = (IPagedCompiledModel)CpuBackend.Instantiate(CpuBackend.Compile(graph));
        var random = new Random(seed);
        var sizes = model.Weights.ToDictionary(w => w.Name, w => w.ElementCount);
        model.LoadWeights(name => Enumerable.Range(0, (int)sizes[name]).Select(_ => (float)(random.NextDouble() * 2 - 1) * 0.2f).ToArray());
        return (model, 256);
    }

    /// <summary>Sequences of different lengths decoded together (one forward per step, joins and leaves between steps) equal each decoded alone.</summary>
    [Fact]
    public void BatchedDecodeEqualsOneSequenceAtATime()
    {
        var (model, vocab) = TinyPagedModel();
        var random = new Random(7);
        var requests = Enumerable.Range(0, 6).Select(i => new GenerationRequest(
            Enumerable.Range(0, 3 + 7 * i).Select(_ => (long)random.Next(vocab)).ToArray(), 5 + 3 * i)).ToList();
        static long ArgMax(ReadOnlySpan<float> l) => GreedyDecoder.ArgMax(l, []);

        var alone = new List<(long[] Tokens, List<float[]> Logits)>();
        var engine = new PagedEngine(model, PagedEngine.PoolFor(model, 1024, blockSize: 4));
        foreach (var r in requests)
        {
            var logits = new List<float[]>();
            var tokens = engine.Generate([r], (_, l) => ArgMax(l), maxConcurrent: 1, onToken: (_, _, l) => logits.Add(l.ToArray()))[0];
            alone.Add((tokens, logits));
        }

        var batchedLogits = requests.Select(_ => new List<float[]>()).ToArray();
        int maxInFlight = 0;
        var batched = engine.Generate(requests, (_, l) => ArgMax(l), maxConcurrent: 4,
            onToken: (r, _, l) => { batchedLogits[r].Add(l.ToArray()); maxInFlight = Math.Max(maxInFlight, engine.Pool.BlocksInUse); });
        for (int r = 0; r < requests.Count; r++)
        {
            Assert.Equal(alone[r].Tokens, batched[r]);
            for (int s = 0; s < batchedLogits[r].Count; s++) AssertClose(alone[r].Logits[s], batchedLogits[r][s], $"request {r}, step {s}");
        }
        Assert.True(maxInFlight > 0);
        Assert.Equal(0, engine.Pool.BlocksInUse);
    }

    /// <summary>
    /// A decode step allocates the same bytes at 300 and at 1000 tokens of context: nothing per step grows with the cache
    /// (both lengths are past the point where the attention goes parallel, which adds a constant).
    /// </summary>
    [Fact]
    public void DecodeStepAllocationDoesNotGrowWithContext()
    {
        var (model, vocab) = TinyPagedModel();
        var engine = new PagedEngine(model, PagedEngine.PoolFor(model, 1100), maxTokensPerStep: 64, maxSequencesPerStep: 1);
        using var sequence = engine.Pool.CreateSequence(1100);
        var logits = new float[vocab];
        var feed = new List<ReadOnlyMemory<long>> { new long[] { 1 } };
        KvSequence[] one = [sequence];
        // The calling thread's allocations (the kernels' workers allocate nothing; a process-wide count would also see the
        // tests xunit runs alongside), the least of five steps.
        long StepBytes()
        {
            long least = long.MaxValue;
            for (int i = 0; i < 5; i++)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                engine.Step(one, feed, logits);
                least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
            }
            return least;
        }
        engine.Step(one, [new long[64]], logits);
        while (sequence.Length < 300) engine.Step(one, feed, logits);
        long at300 = StepBytes();
        while (sequence.Length < 1000) engine.Step(one, feed, logits);
        long at1000 = StepBytes();
        Assert.True(at1000 <= at300 + 256, $"a decode step allocated {at300} bytes at 300 tokens and {at1000} at 1000");
        Assert.Equal((sequence.Length + 15) / 16, engine.Pool.BlocksInUse);
    }

    /// <summary>
    /// Mistral's sliding window (4 tokens in the oracle): after every step the blocks that left the window are back in the
    /// pool, so the sequence never holds more than the window's blocks plus the one being filled; the tokens stay Hugging Face's
    /// (the logits of every step are checked in <see cref="PagedDecodeMatchesContiguousCacheFullForwardAndHuggingFace"/>).
    /// </summary>
    [Fact]
    public void SlidingWindowFreesBlocksThatLeftTheWindow()
    {
        var folder = OracleCheck.Folder("mistral_swa");
        var graph = HuggingFaceImport.Load(folder, new Dictionary<string, string>()).Graph;
        new PassManager(CpuBackend.PagedPipeline).Run(graph);
        using var store = WeightStore.Open(folder);
        var model = (IPagedCompiledModel)CpuBackend.Instantiate(CpuBackend.Compile(graph));
        model.LoadWeights(store);
        Assert.Equal(4, model.SlidingWindow);

        using var reference = SafetensorsFile.Open(Path.Combine(folder, "reference.safetensors"));
        var expected = reference.ReadInt64("greedy_ids");
        var row0 = reference.ReadInt64("input_ids").Take((int)reference.Get("input_ids").Shape[1]).ToArray();
        var engine = new PagedEngine(model, PagedEngine.PoolFor(model, 64, blockSize: 2));
        int mostHeld = 0;
        var eos = GreedyDecoder.EosIds(graph);
        var generated = engine.Generate([new GenerationRequest(row0, expected.Length - row0.Length)], (_, l) => GreedyDecoder.ArgMax(l, eos), maxConcurrent: 1,
            afterStep: () => mostHeld = Math.Max(mostHeld, engine.Pool.BlocksInUse))[0];
        Assert.Equal(expected, row0.Concat(generated).ToArray());
        // Window 4 = 2 blocks of 2, plus the block the next token goes to.
        Assert.InRange(mostHeld, 1, 3);
    }
}
