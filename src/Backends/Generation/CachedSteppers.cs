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
/// <see cref="ITokenStepper"/> over a compiled KV-cached model (the cpu target's <see cref="Cpu.CpuBackend.CachedPipeline"/>):
/// each <see cref="Append"/> is one forward with the pasts, whose presents become the next pasts.
/// </summary>
public sealed class CompiledCachedStepper : ITokenStepper
{
    private readonly ICompiledModel _model;
    private readonly KvCacheLayout _layout;
    private readonly Dictionary<string, HostTensor> _past = new(StringComparer.Ordinal);

    /// <param name="cachedGraph">the graph <paramref name="model"/> was compiled from, already rewritten by <see cref="KvCacheRewrite"/></param>
    public CompiledCachedStepper(Graph cachedGraph, ICompiledModel model, long? contextLength)
    {
        _model = model;
        _layout = KvCacheLayout.Of(cachedGraph);
        ContextLength = contextLength;
        Reset();
    }

    public int Position { get; private set; }

    public long? ContextLength { get; }

    public void Reset()
    {
        foreach (var (past, _, type) in _layout.Caches) _past[past] = HostTensor.FromFloats(KvCacheLayout.EmptyShape(type), [], type.DType);
        Position = 0;
    }

    public float[] Append(ReadOnlySpan<int> tokens)
    {
        var ids = new long[tokens.Length];
        for (int i = 0; i < ids.Length; i++) ids[i] = tokens[i];
        var inputs = new Dictionary<string, HostTensor>(_past, StringComparer.Ordinal) { [_layout.GeneratedInput] = HostTensor.FromInts([1, ids.Length], ids) };
        var results = _model.Run(inputs);
        foreach (var (past, present, _) in _layout.Caches) _past[past] = results[present];
        Position += tokens.Length;
        var logits = results["logits"];
        int vocab = (int)logits.Shape[^1];
        return logits.Floats!.AsSpan(logits.Floats!.Length - vocab, vocab).ToArray();
    }
}

/// <summary><see cref="ITokenStepper"/> over the reference interpreter running a KV-cached graph (slow; the oracle).</summary>
public sealed class InterpreterCachedStepper : ITokenStepper
{
    private readonly Interpreter _interpreter;
    private readonly Func<string, TensorType, RefTensor> _weights;
    private readonly KvCacheLayout _layout;
    private readonly Dictionary<string, RefTensor> _past = new(StringComparer.Ordinal);

    /// <param name="cachedGraph">a graph already rewritten by <see cref="KvCacheRewrite"/></param>
    public InterpreterCachedStepper(Graph cachedGraph, Func<string, TensorType, RefTensor> weights, long? contextLength, Precision precision = Precision.F32)
    {
        _interpreter = new Interpreter(cachedGraph, precision);
        _weights = weights;
        _layout = KvCacheLayout.Of(cachedGraph);
        ContextLength = contextLength;
        Reset();
    }

    public int Position { get; private set; }

    public long? ContextLength { get; }

    public void Reset()
    {
        foreach (var (past, _, type) in _layout.Caches) _past[past] = RefTensor.FromFloats(KvCacheLayout.EmptyShape(type), Array.Empty<double>(), type.DType);
        Position = 0;
    }

    public float[] Append(ReadOnlySpan<int> tokens)
    {
        var ids = new long[tokens.Length];
        for (int i = 0; i < ids.Length; i++) ids[i] = tokens[i];
        var inputs = new Dictionary<string, RefTensor>(_past, StringComparer.Ordinal) { [_layout.GeneratedInput] = RefTensor.FromInts([1, ids.Length], ids) };
        var results = _interpreter.Run(inputs, _weights);
        foreach (var (past, present, _) in _layout.Caches) _past[past] = results[present];
        Position += tokens.Length;
        var logits = results["logits"];
        long vocab = logits.Shape[^1];
        return logits.ToFloat32().AsSpan((int)(logits.ElementCount - vocab), (int)vocab).ToArray();
    }
}
