using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends;

/// <summary>
/// Greedy decoding through a KV-cached graph (see <see cref="KvCacheRewrite"/>): one prefill over the
/// prompt with an empty past, then one token per step, each step feeding back the presents as pasts.
/// </summary>
public sealed class CachedDecoder
{
    private readonly Graph _graph;
    private readonly Interpreter _interpreter;
    private readonly Func<string, TensorType, RefTensor> _weights;
    private readonly string _generated;
    private readonly List<Node> _pasts;

    /// <param name="cachedGraph">a graph already rewritten by <see cref="KvCacheRewrite"/></param>
    public CachedDecoder(Graph cachedGraph, Func<string, TensorType, RefTensor> weights, Precision precision = Precision.F32)
    {
        _graph = cachedGraph;
        _interpreter = new Interpreter(cachedGraph, precision);
        _weights = weights;
        _generated = KvCacheRewrite.GeneratedInput(cachedGraph)?.Attrs.Str("name") ?? throw new McException($"graph {cachedGraph.Name} has no input_ids");
        _pasts = cachedGraph.Inputs.Where(i => i.Attrs.Str("name").StartsWith("past.", StringComparison.Ordinal)).ToList();
        if (_pasts.Count == 0) throw new McException($"graph {cachedGraph.Name} has no KV cache (run the kv-cache pass first)");
    }

    /// <summary>
    /// Extends <paramref name="start"/> (the prompt, or a decoder's start token) by <paramref name="steps"/> greedy tokens.
    /// <paramref name="fixedInputs"/> are fed unchanged every step (an encoder-decoder's input_ids).
    /// <paramref name="onStep"/> sees each step's tokens so far and the logits that chose the next one.
    /// </summary>
    public long[] Generate(long[] start, int steps, IReadOnlyCollection<long> eosIds,
        IReadOnlyDictionary<string, RefTensor>? fixedInputs = null, Action<long[], float[]>? onStep = null)
    {
        var ids = new List<long>(start);
        var past = _pasts.ToDictionary(p => p.Attrs.Str("name"), p => Empty(p.Type));
        long[] feed = start;
        for (int step = 0; step < steps; step++)
        {
            var inputs = new Dictionary<string, RefTensor>(past) { [_generated] = RefTensor.FromInts([1, feed.Length], feed) };
            foreach (var (name, value) in fixedInputs ?? new Dictionary<string, RefTensor>()) inputs[name] = value;
            var results = _interpreter.Run(inputs, _weights);
            var logits = results["logits"];
            long vocab = logits.Shape[^1];
            var last = logits.ToFloat32().AsSpan((int)(logits.ElementCount - vocab), (int)vocab).ToArray();
            onStep?.Invoke(ids.ToArray(), last);
            long next = GreedyDecoder.ArgMax(last, eosIds);
            ids.Add(next);
            foreach (var key in past.Keys.ToList()) past[key] = results["present" + key["past".Length..]];
            feed = [next];
        }
        return ids.ToArray();
    }

    /// <summary>A zero-length past: [1, 0, heads, head_dim].</summary>
    private static RefTensor Empty(TensorType type)
    {
        var shape = type.Shape.Select((d, i) => i == 0 ? 1 : i == 1 ? 0 : d.Size).ToArray();
        return RefTensor.FromFloats(shape, Array.Empty<double>(), type.DType);
    }
}
