namespace ModelCompiler.Runtime.Paged;

/// <summary>One request of a batched generation: its prompt, how many tokens it may add, and a stop token test.</summary>
public sealed record GenerationRequest(long[] Prompt, int MaxNewTokens);

/// <summary>
/// Runs a paged model (<see cref="IPagedCompiledModel"/>) over sequences that live in one <see cref="KvBlockPool"/>:
/// <see cref="Step"/> is one forward over the new tokens of any number of sequences (a prompt's many, a decoding
/// sequence's one), flattened into input_ids [1, T] so every linear is one GEMM over the batch's rows;
/// <see cref="Generate"/> is continuous batching on top: up to <c>maxConcurrent</c> requests decode together,
/// finished ones leave and waiting ones join (their prompt processed in the same step) between steps.
/// A sliding-window model's sequences free the blocks that left the window after every step.
/// Not thread-safe: one caller (or one scheduler thread) drives an engine.
/// </summary>
public sealed class PagedEngine
{
    private readonly string _inputName;
    private readonly PagedBatch _batch;
    private readonly long[] _ids;
    private readonly int[] _lastToken;

    public PagedEngine(IPagedCompiledModel model, KvBlockPool pool, int maxTokensPerStep = 4096, int maxSequencesPerStep = 64)
    {
        Model = model;
        Pool = pool;
        if (!model.WeightsLoaded) throw new McException($"{model.Name}: load the weights before creating a paged engine");
        if (!pool.Layers.SequenceEqual(model.CacheLayers))
            throw new McException($"{model.Name}: the KV block pool's layers do not match the model's ({model.CacheLayers.Count} cached layers)");
        _inputName = model.Inputs.Select(i => i.Name).FirstOrDefault(n => n is "input_ids" or "decoder_input_ids")
            ?? throw new McException($"{model.Name} has no input_ids");
        var logits = model.Outputs.FirstOrDefault(o => o.Name == "logits") ?? throw new McException($"{model.Name} has no logits output");
        Vocab = checked((int)logits.Shape[^1].Size);
        _batch = new PagedBatch(pool, maxTokensPerStep, maxSequencesPerStep);
        _ids = new long[maxTokensPerStep];
        _lastToken = new int[maxSequencesPerStep];
        _rowsInput = model.Inputs.Any(i => i.Name == LogitsRowsInput);
    }

    /// <summary>The input of a model compiled to compute only some tokens' logits (the paged-logit-rows pass).</summary>
    private const string LogitsRowsInput = "logits_rows";

    /// <summary>Whether the model takes <see cref="LogitsRowsInput"/>: then it returns one logits row per sequence.</summary>
    private readonly bool _rowsInput;

    /// <summary>A pool for <paramref name="model"/>'s cached layers holding <paramref name="tokens"/> tokens.</summary>
    public static KvBlockPool PoolFor(IPagedCompiledModel model, int tokens, int blockSize = 16) =>
        KvBlockPool.ForTokens(model.CacheLayers, tokens, blockSize);

    public IPagedCompiledModel Model { get; }

    public KvBlockPool Pool { get; }

    public int Vocab { get; }

    public int MaxTokensPerStep => _batch.MaxTokens;

    public int MaxSequencesPerStep => _batch.MaxSequences;

    /// <summary>During <see cref="Generate"/>: tokens cached by the requests in flight after the last step (for the pool's waste).</summary>
    public long ActiveTokens { get; private set; }

    /// <summary>
    /// One forward: appends <paramref name="tokens"/>[i] to <paramref name="sequences"/>[i] for every i and writes the
    /// logits after each sequence's last new token to row i of <paramref name="lastLogits"/> ([sequences, vocab]).
    /// </summary>
    public void Step(ReadOnlySpan<KvSequence> sequences, IReadOnlyList<ReadOnlyMemory<long>> tokens, Span<float> lastLogits)
    {
        if (tokens.Count != sequences.Length) throw new ArgumentException("one token list per sequence");
        if (lastLogits.Length < sequences.Length * Vocab) throw new ArgumentException("lastLogits is smaller than sequences × vocab");
        _batch.Clear();
        try
        {
            int total = 0;
            for (int s = 0; s < sequences.Length; s++)
            {
                var add = tokens[s].Span;
                if (add.Length == 0) throw new ArgumentException($"sequence {s} has no new tokens");
                if (total + add.Length > _ids.Length) throw new McException($"a step holds at most {_ids.Length} tokens");
                _batch.Add(sequences[s], add.Length);
                add.CopyTo(_ids.AsSpan(total));
                total += add.Length;
                _lastToken[s] = total - 1;
            }
            var inputs = new Dictionary<string, HostTensor>(2, StringComparer.Ordinal)
            {
                [_inputName] = HostTensor.FromInts([1, total], _ids[..total]),
                ["position_ids"] = HostTensor.FromInts([total], _batch.TokenPosition.ToArray()),
            };
            if (_rowsInput)
            {
                var rows = new long[sequences.Length];
                for (int s = 0; s < rows.Length; s++) rows[s] = _lastToken[s];
                inputs[LogitsRowsInput] = HostTensor.FromInts([1, rows.Length], rows);
            }
            var logits = Model.Run(inputs, _batch)["logits"].Floats!;
            _batch.Commit();
            if (Model.SlidingWindow > 0)
                // The next query of a sequence of length L sits at position L and sees keys from L − window + 1 on (and the sinks).
                for (int s = 0; s < sequences.Length; s++)
                    sequences[s].EvictBefore(sequences[s].Length - Model.SlidingWindow + 1, Model.AttentionSinks);
            for (int s = 0; s < sequences.Length; s++)
                logits.AsSpan((_rowsInput ? s : _lastToken[s]) * Vocab, Vocab).CopyTo(lastLogits.Slice(s * Vocab, Vocab));
        }
        finally { _batch.Clear(); }
    }

    /// <summary>
    /// Continuous batching: every request is prefilled, then decodes one token per step alongside the others until it has
    /// <see cref="GenerationRequest.MaxNewTokens"/> tokens or <paramref name="stop"/> accepts its last token; then its
    /// blocks go back to the pool and the next waiting request joins. At most <paramref name="maxConcurrent"/> requests
    /// are in flight. <paramref name="choose"/> picks a request's next token from its logits; <paramref name="afterStep"/> runs
    /// after each forward, while every request of the step still holds its blocks. Returns each request's new tokens.
    /// </summary>
    public long[][] Generate(IReadOnlyList<GenerationRequest> requests, Func<int, ReadOnlySpan<float>, long> choose, int maxConcurrent = 8,
        Func<long, bool>? stop = null, Action<int, long, ReadOnlySpan<float>>? onToken = null, Action? afterStep = null)
    {
        if (maxConcurrent < 1 || maxConcurrent > _batch.MaxSequences) throw new McException($"maxConcurrent {maxConcurrent}: expected 1..{_batch.MaxSequences}");
        var produced = requests.Select(_ => new List<long>()).ToArray();
        var active = new List<(int Request, KvSequence Sequence, long[] Feed)>();
        int next = 0;
        var logits = new float[maxConcurrent * Vocab];
        var feeds = new List<ReadOnlyMemory<long>>(maxConcurrent);
        var sequences = new KvSequence[maxConcurrent];
        try
        {
            while (next < requests.Count || active.Count > 0)
            {
                // Join while there is room in the batch, in the step's token budget and in the pool.
                int stepTokens = active.Count;
                while (next < requests.Count && active.Count < maxConcurrent)
                {
                    var r = requests[next];
                    if (r.Prompt.Length == 0) throw new McException($"request {next}: empty prompt");
                    if (active.Count > 0 && stepTokens + r.Prompt.Length > _batch.MaxTokens) break;
                    int needBlocks = (r.Prompt.Length + r.MaxNewTokens + Pool.BlockSize - 1) / Pool.BlockSize;
                    if (active.Count > 0 && needBlocks > Pool.FreeBlocks - ReservedBlocks(active, requests)) break;
                    active.Add((next, Pool.CreateSequence(r.Prompt.Length + Math.Max(1, r.MaxNewTokens)), r.Prompt));
                    stepTokens += r.Prompt.Length;
                    next++;
                }
                feeds.Clear();
                for (int i = 0; i < active.Count; i++) { sequences[i] = active[i].Sequence; feeds.Add(active[i].Feed); }
                Step(sequences.AsSpan(0, active.Count), feeds, logits);
                long cached = 0;
                foreach (var a in active) cached += a.Sequence.Length;
                ActiveTokens = cached;
                afterStep?.Invoke();
                for (int i = active.Count - 1; i >= 0; i--)
                {
                    var (request, sequence, _) = active[i];
                    var row = logits.AsSpan(i * Vocab, Vocab);
                    long token = choose(request, row);
                    produced[request].Add(token);
                    onToken?.Invoke(request, token, row);
                    bool done = produced[request].Count >= requests[request].MaxNewTokens || (stop?.Invoke(token) ?? false);
                    if (done) { sequence.Dispose(); active.RemoveAt(i); }
                    else active[i] = (request, sequence, [token]);
                }
            }
        }
        finally
        {
            foreach (var a in active) a.Sequence.Dispose();
        }
        return produced.Select(p => p.ToArray()).ToArray();
    }

    /// <summary>Blocks the active requests will still claim as they grow to their full length.</summary>
    private int ReservedBlocks(List<(int Request, KvSequence Sequence, long[] Feed)> active, IReadOnlyList<GenerationRequest> requests)
    {
        int blocks = 0;
        foreach (var (request, sequence, _) in active)
        {
            var r = requests[request];
            blocks += (r.Prompt.Length + r.MaxNewTokens + Pool.BlockSize - 1) / Pool.BlockSize - sequence.BlockCount;
        }
        return blocks;
    }
}
