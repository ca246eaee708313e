using ModelCompiler.Runtime.Paged;
using ModelCompiler.Runtime.Tokenizers;

namespace ModelCompiler.Runtime.Generation;

/// <summary>One step of one sample of <see cref="ParallelSampleGenerator.Generate"/>.</summary>
public readonly record struct SampleStep(int Sample, GenerationStep Step);

/// <summary>
/// K samples of one prompt through a paged model (<see cref="PagedEngine"/>): the prompt is prefilled once into one
/// <see cref="KvSequence"/>, which is then forked K − 1 times, so the prompt's blocks are shared by every sample and a
/// sample copies a shared block only when it first writes into it (copy on write). Each step decodes the unfinished
/// samples together (one forward, one row per sample). Sample 0 uses the request's seed, sample i its derived seed
/// (<see cref="SampleSeed"/>), so sample 0 of K is the text of a single run with that seed.
/// </summary>
public sealed class ParallelSampleGenerator(PagedEngine engine, ITokenizer tokenizer, long? contextLength)
{
    /// <summary>The most tokens one step carries (a prompt is prefilled in one step, up to this many tokens).</summary>
    public PagedEngine Engine => engine;

    /// <summary>Blocks in use after the prefill (the prompt's, held once whatever the number of samples).</summary>
    public int PromptBlocks { get; private set; }

    /// <summary>The most blocks in use after any step of the last generation.</summary>
    public int PeakBlocks { get; private set; }

    /// <summary>Sample <paramref name="sample"/>'s seed: <paramref name="seed"/> itself for sample 0, else the
    /// <paramref name="sample"/>-th output of SplitMix64 started at <paramref name="seed"/>.</summary>
    public static ulong SampleSeed(ulong seed, int sample)
    {
        if (sample == 0) return seed;
        ulong state = seed, value = 0;
        for (int i = 0; i < sample; i++) value = Xoshiro256StarStar.SplitMix64(ref state);
        return value;
    }

    /// <summary>
    /// The blocks a pool needs for <paramref name="samples"/> samples of a <paramref name="promptTokens"/>-token prompt
    /// growing by <paramref name="maxNewTokens"/> each: no more than the context holds when there is one (generation
    /// stops there), and with the model's window, when it evicts, no more than the sinks' and window's blocks.
    /// </summary>
    public static int BlocksNeeded(IPagedCompiledModel model, int promptTokens, int maxNewTokens, int samples, int blockSize, long? contextLength)
    {
        long Blocks(long tokens) => (tokens + blockSize - 1) / blockSize;
        long perSample = Blocks(SequenceTokens(promptTokens, maxNewTokens, contextLength)) + 1;
        if (model.SlidingWindow > 0) perSample = Math.Min(perSample, Blocks(model.AttentionSinks) + Blocks(model.SlidingWindow) + 2);
        long blocks = Blocks(promptTokens) + samples * perSample;
        return blocks <= int.MaxValue ? (int)blocks : throw new McException($"a KV cache of {blocks} blocks of {blockSize} tokens is too large");
    }

    /// <summary>The most tokens one sample's sequence holds: the prompt and its new tokens, within the context when there is one.</summary>
    private static int SequenceTokens(int promptTokens, int maxNewTokens, long? contextLength)
    {
        long tokens = (long)promptTokens + Math.Max(1, maxNewTokens);
        if (contextLength is long c) tokens = Math.Min(tokens, Math.Max(c, promptTokens));
        return tokens <= int.MaxValue ? (int)tokens : throw new McException($"a sequence of {tokens} tokens is too long (at most {int.MaxValue})");
    }

    /// <summary>
    /// Generates <paramref name="samples"/> continuations of <paramref name="request"/>'s prompt. Steps are yielded as
    /// tokens are chosen (samples interleaved, each sample's in order); each sample ends with a step whose
    /// <see cref="GenerationStep.Finish"/> is set. Enumerate once, to the end or until cancelled.
    /// </summary>
    public IEnumerable<SampleStep> Generate(GenerationRequest request, int samples, CancellationToken cancel = default)
    {
        if (samples < 1) throw new McException($"--n {samples}: expected at least 1 sample");
        if (samples > engine.MaxSequencesPerStep) throw new McException($"--n {samples}: at most {engine.MaxSequencesPerStep} samples decode together here");
        if (request.PromptIds.Count == 0) throw new McException("the prompt encodes to no tokens (and the model has no BOS token to start from)");
        if (request.MaxNewTokens < 0) throw new McException($"--max-tokens {request.MaxNewTokens}: expected a number >= 0");
        if (contextLength is long context && request.PromptIds.Count > context)
            throw new McException($"the prompt is {request.PromptIds.Count} tokens, longer than the model's context of {context}");
        if (request.PromptIds.Count > engine.MaxTokensPerStep)
            throw new McException($"the prompt is {request.PromptIds.Count} tokens; one step takes at most {engine.MaxTokensPerStep}");
        return Steps(request, samples, cancel);
    }

    private IEnumerable<SampleStep> Steps(GenerationRequest request, int samples, CancellationToken cancel)
    {
        var pool = engine.Pool;
        int vocab = engine.Vocab;
        var decoders = new SampleDecoder[samples];
        for (int i = 0; i < samples; i++) decoders[i] = new SampleDecoder(request, SampleSeed(request.Seed, i), tokenizer);
        var sequences = new KvSequence[samples];
        var logits = new float[samples * vocab];
        try
        {
            sequences[0] = pool.CreateSequence(SequenceTokens(request.PromptIds.Count, request.MaxNewTokens, contextLength));
            var prompt = request.PromptIds.Select(id => (long)id).ToArray();
            engine.Step(sequences.AsSpan(0, 1), [prompt], logits);
            PromptBlocks = PeakBlocks = pool.BlocksInUse;
            for (int i = 1; i < samples; i++)
            {
                sequences[i] = sequences[0].Fork();
                logits.AsSpan(0, vocab).CopyTo(logits.AsSpan(i * vocab, vocab));
            }

            // Rows of the last step: active[r] is the sample whose logits are row r.
            var active = Enumerable.Range(0, samples).ToList();
            var next = new List<int>(samples);
            var fedSequences = new KvSequence[samples];
            var fedRow = new int[samples];
            var feeds = new List<ReadOnlyMemory<long>>(samples);
            var rows = new float[samples * vocab];
            while (active.Count > 0)
            {
                cancel.ThrowIfCancellationRequested();
                next.Clear();
                feeds.Clear();
                int fed = 0;
                for (int r = 0; r < active.Count; r++)
                {
                    int s = active[r];
                    var step = decoders[s].Next(logits.AsSpan(r * vocab, vocab), sequences[s].Length, contextLength);
                    yield return new SampleStep(s, step);
                    if (step.Finish is not null) { sequences[s].Dispose(); continue; }
                    next.Add(s);
                    // A sample that chose its last allowed token needs no forward: its next round only ends it.
                    if (!decoders[s].WantsMore) continue;
                    fedSequences[fed] = sequences[s];
                    fedRow[fed++] = next.Count - 1;
                    feeds.Add(new long[] { step.TokenId });
                }
                if (fed > 0)
                {
                    engine.Step(fedSequences.AsSpan(0, fed), feeds, rows);
                    PeakBlocks = Math.Max(PeakBlocks, pool.BlocksInUse);
                    for (int f = 0; f < fed; f++) rows.AsSpan(f * vocab, vocab).CopyTo(logits.AsSpan(fedRow[f] * vocab, vocab));
                }
                (active, next) = (next, active);
            }
        }
        finally
        {
            foreach (var s in sequences) s?.Dispose();
        }
    }
}
