using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Cpu;

/// <summary>
/// Greedy decoding through a compiled KV-cached graph (the <see cref="CachedDecoder"/> of the cpu target): one
/// prefill over the prompt with empty pasts, then one token per step, each step feeding back the presents as pasts.
/// </summary>
public sealed class CompiledCachedDecoder
{
    private readonly ICompiledModel _model;
    private readonly string _generated;
    private readonly List<(string Name, TensorType Type)> _pasts;

    /// <param name="cachedGraph">the graph <paramref name="model"/> was compiled from, already rewritten by <see cref="KvCacheRewrite"/></param>
    public CompiledCachedDecoder(Graph cachedGraph, ICompiledModel model)
    {
        _model = model;
        _generated = KvCacheRewrite.GeneratedInput(cachedGraph)?.Attrs.Str("name") ?? throw new McException($"graph {cachedGraph.Name} has no input_ids");
        _pasts = cachedGraph.Inputs.Where(i => i.Attrs.Str("name").StartsWith("past.", StringComparison.Ordinal))
            .Select(i => (i.Attrs.Str("name"), i.Type)).ToList();
        if (_pasts.Count == 0) throw new McException($"graph {cachedGraph.Name} has no KV cache (run the kv-cache pass first)");
    }

    /// <summary>
    /// Extends <paramref name="start"/> by <paramref name="steps"/> greedy tokens; <paramref name="onStep"/> sees each
    /// step's tokens so far and the logits that chose the next one; <paramref name="progress"/> the steps done.
    /// </summary>
    public long[] Generate(long[] start, int steps, IReadOnlyCollection<long> eosIds, Action<long[], float[]>? onStep = null, Action<int>? progress = null)
    {
        var ids = new List<long>(start);
        var past = _pasts.ToDictionary(p => p.Name, p => Empty(p.Type), StringComparer.Ordinal);
        long[] feed = start;
        for (int step = 0; step < steps; step++)
        {
            var inputs = new Dictionary<string, HostTensor>(past, StringComparer.Ordinal) { [_generated] = HostTensor.FromInts([1, feed.Length], feed) };
            var results = _model.Run(inputs);
            var logits = results["logits"].Floats!;
            long vocab = results["logits"].Shape[^1];
            var last = logits.AsSpan((int)(logits.Length - vocab), (int)vocab).ToArray();
            onStep?.Invoke(ids.ToArray(), last);
            long next = GreedyDecoder.ArgMax(last, eosIds);
            ids.Add(next);
            foreach (var key in past.Keys.ToList()) past[key] = results["present" + key["past".Length..]];
            feed = [next];
            progress?.Invoke(step + 1);
        }
        return ids.ToArray();
    }

    /// <summary>A zero-length past: [1, 0, heads, head_dim].</summary>
    private static HostTensor Empty(TensorType type)
    {
        var shape = type.Shape.Select((d, i) => i == 0 ? 1 : i == 1 ? 0 : d.Size).ToArray();
        return HostTensor.FromFloats(shape, [], type.DType);
    }
}
