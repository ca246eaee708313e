using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Generation;

namespace ModelCompiler.Backends.Generation;

/// <summary>The KV-cache inputs of a graph rewritten by <see cref="KvCacheRewrite"/>: <c>past.*</c> in, <c>present.*</c> out.</summary>
internal sealed record KvCacheLayout(string GeneratedInput, IReadOnlyList<(string Past, string Present, TensorType Type)> Caches)
{
    public static KvCacheLayout Of(Graph cachedGraph)
    {
        var generated = KvCacheRewrite.GeneratedInput(cachedGraph)?.Attrs.Str("name") ?? throw new McException($"graph {cachedGraph.Name} has no input_ids");
        var caches = cachedGraph.Inputs.Select(i => i.Attrs.Str("name")).Zip(cachedGraph.Inputs.Select(i => i.Type))
            .Where(p => p.First.StartsWith("past.", StringComparison.Ordinal))
            .Select(p => (p.First, "present" + p.First["past".Length..], p.Second)).ToList();
        if (caches.Count == 0) throw new McException($"graph {cachedGraph.Name} has no KV cache (run the kv-cache pass first)");
        var others = cachedGraph.Inputs.Select(i => i.Attrs.Str("name")).Except(caches.Select(c => c.Item1).Append(generated)).ToList();
        if (others.Count > 0) throw new McException($"generation supports decoder-only models whose input is input_ids; {cachedGraph.Name} also takes {string.Join(", ", others)}");
        return new KvCacheLayout(generated, caches);
    }

    /// <summary>A zero-length cache: [1, 0, heads, head_dim].</summary>
    public static long[] EmptyShape(TensorType type) => type.Shape.Select((d, i) => i == 0 ? 1 : i == 1 ? 0 : d.Size).ToArray();
}

/// <summary>
/// An <see cref="ITokenStepper"/> over a KV-cached graph: each <see cref="Append"/> is one forward with the pasts, whose
/// presents become the next pasts. <typeparamref name="TTensor"/> is the backend's tensor type.
/// </summary>
public abstract class KvCachedStepper<TTensor> : ITokenStepper where TTensor : class
{
    private readonly KvCacheLayout _layout;
    private readonly Dictionary<string, TTensor> _past = new(StringComparer.Ordinal);

    /// <param name="cachedGraph">a graph already rewritten by <see cref="KvCacheRewrite"/></param>
    protected KvCachedStepper(Graph cachedGraph, long? contextLength)
    {
        _layout = KvCacheLayout.Of(cachedGraph);
        ContextLength = contextLength;
    }

    public int Position { get; private set; }

    public long? ContextLength { get; }

    public void Reset()
    {
        _past.Clear();
        Position = 0;
    }

    public float[] Append(ReadOnlySpan<int> tokens)
    {
        if (_past.Count == 0)
            foreach (var (past, _, type) in _layout.Caches) _past[past] = Empty(KvCacheLayout.EmptyShape(type), type.DType);
        var ids = new long[tokens.Length];
        for (int i = 0; i < ids.Length; i++) ids[i] = tokens[i];
        var inputs = new Dictionary<string, TTensor>(_past, StringComparer.Ordinal) { [_layout.GeneratedInput] = Ids(ids) };
        var results = Run(inputs);
        foreach (var (past, present, _) in _layout.Caches) _past[past] = results[present];
        Position += tokens.Length;
        return LastRow(results["logits"]);
    }

    /// <summary>A float tensor of <paramref name="shape"/> with no elements (a zero-length cache).</summary>
    protected abstract TTensor Empty(long[] shape, DType dtype);

    /// <summary>A [1, n] int64 tensor of token ids.</summary>
    protected abstract TTensor Ids(long[] ids);

    protected abstract IReadOnlyDictionary<string, TTensor> Run(Dictionary<string, TTensor> inputs);

    /// <summary>The last row of [1, n, vocab] logits, as a fresh array.</summary>
    protected abstract float[] LastRow(TTensor logits);
}

/// <summary>A stepper over a compiled KV-cached model (the cpu target's <see cref="Cpu.CpuBackend.CachedPipeline"/>).</summary>
/// <param name="cachedGraph">the graph <paramref name="model"/> was compiled from, already rewritten by <see cref="KvCacheRewrite"/></param>
public sealed class CompiledCachedStepper(Graph cachedGraph, ICompiledModel model, long? contextLength)
    : KvCachedStepper<HostTensor>(cachedGraph, contextLength)
{
    protected override HostTensor Empty(long[] shape, DType dtype) => HostTensor.FromFloats(shape, [], dtype);

    protected override HostTensor Ids(long[] ids) => HostTensor.FromInts([1, ids.Length], ids);

    protected override IReadOnlyDictionary<string, HostTensor> Run(Dictionary<string, HostTensor> inputs) => model.Run(inputs);

    protected override float[] LastRow(HostTensor logits)
    {
        int vocab = (int)logits.Shape[^1];
        return logits.Floats!.AsSpan(logits.Floats!.Length - vocab, vocab).ToArray();
    }
}

/// <summary>A stepper over the reference interpreter running a KV-cached graph (slow; the oracle).</summary>
public sealed class InterpreterCachedStepper(Graph cachedGraph, Func<string, TensorType, RefTensor> weights, long? contextLength, Precision precision = Precision.F32)
    : KvCachedStepper<RefTensor>(cachedGraph, contextLength)
{
    private readonly Interpreter _interpreter = new(cachedGraph, precision);

    protected override RefTensor Empty(long[] shape, DType dtype) => RefTensor.FromFloats(shape, Array.Empty<double>(), dtype);

    protected override RefTensor Ids(long[] ids) => RefTensor.FromInts([1, ids.Length], ids);

    protected override IReadOnlyDictionary<string, RefTensor> Run(Dictionary<string, RefTensor> inputs) => _interpreter.Run(inputs, weights);

    protected override float[] LastRow(RefTensor logits)
    {
        long vocab = logits.Shape[^1];
        return logits.ToFloat32().AsSpan((int)(logits.ElementCount - vocab), (int)vocab).ToArray();
    }
}
