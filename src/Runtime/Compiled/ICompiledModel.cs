using System.Globalization;

namespace ModelCompiler.Runtime;

/// <summary>
/// A model compiled ahead of time (<c>mc compile</c>, or in memory by <c>mc eval --target cpu</c>): a class
/// generated from the IR that calls <see cref="Kernels"/> node by node. Load the weights once, then run
/// forwards; a compiled model is thread-safe for concurrent <see cref="Run"/> calls once its weights are loaded.
/// </summary>
public interface ICompiledModel
{
    /// <summary>The graph's name (the DSL's <c>model</c> declaration).</summary>
    string Name { get; }

    /// <summary>The inputs by name, with their element types and shapes (symbols such as <c>batch</c> bound per call).</summary>
    IReadOnlyList<TensorSpec> Inputs { get; }

    IReadOnlyList<TensorSpec> Outputs { get; }

    /// <summary>Every checkpoint tensor the model reads, by checkpoint name, in its stored shape.</summary>
    IReadOnlyList<TensorSpec> Weights { get; }

    bool WeightsLoaded { get; }

    /// <summary>
    /// Reads every weight through <paramref name="load"/> (called once per checkpoint name; floats of any
    /// stored precision converted to float32) and prepares what depends only on weights (views such as
    /// transposed or sliced weights are computed here, once).
    /// </summary>
    void LoadWeights(Func<string, float[]> load);

    /// <summary>
    /// One forward pass. Inputs are keyed by name; every declared input must be given, with the declared
    /// element kind and a shape that matches (symbols bind on first use). <paramref name="cachedPrefixLength"/>,
    /// when decoding by recomputation, is the prompt length (dynamic-NTK RoPE depends on it, as in the
    /// reference interpreter). Returns a fresh tensor per output.
    /// </summary>
    IReadOnlyDictionary<string, HostTensor> Run(IReadOnlyDictionary<string, HostTensor> inputs, long? cachedPrefixLength = null);

    /// <summary>Loads the weights from a checkpoint (file, folder or sharded index).</summary>
    void LoadWeights(WeightStore store) => LoadWeights(store.ReadFloat32);

    /// <summary>
    /// <see cref="Run"/> for the common case: integer inputs (token ids) in, float outputs out (integer outputs
    /// are converted to float).
    /// </summary>
    IReadOnlyDictionary<string, (long[] Shape, float[] Data)> Forward(
        IReadOnlyDictionary<string, (long[] Shape, long[] Data)> inputs, long? cachedPrefixLength = null)
    {
        var specs = Inputs.ToDictionary(s => s.Name, StringComparer.Ordinal);
        var feeds = new Dictionary<string, HostTensor>(StringComparer.Ordinal);
        foreach (var (name, (shape, data)) in inputs)
            feeds[name] = specs.TryGetValue(name, out var spec) && spec.DType.IsFloat()
                ? HostTensor.FromFloats(shape, Array.ConvertAll(data, v => (float)v), spec.DType)
                : HostTensor.FromInts(shape, data, specs.TryGetValue(name, out var s) ? s.DType : DType.I64);
        var result = new Dictionary<string, (long[] Shape, float[] Data)>(StringComparer.Ordinal);
        foreach (var (name, t) in Run(feeds, cachedPrefixLength))
            result[name] = (t.Shape, t.Floats ?? Array.ConvertAll(t.Ints!, v => (float)v));
        return result;
    }
}

/// <summary>One dimension of a declared shape: a known size, or a symbol bound when the model runs.</summary>
public readonly record struct TensorDim(long Size, string? Symbol)
{
    public static TensorDim Of(long size) => new(size, null);

    public static TensorDim Sym(string symbol) => new(-1, symbol);

    public bool IsKnown => Symbol is null;

    public override string ToString() => Symbol ?? Size.ToString(CultureInfo.InvariantCulture);
}

/// <summary>A named tensor a compiled model takes, returns or loads.</summary>
public sealed record TensorSpec(string Name, DType DType, IReadOnlyList<TensorDim> Shape)
{
    /// <summary>The IR's spelling: <c>f32[batch,seq,64]</c>.</summary>
    public string TypeString => $"{DType.ShortName()}[{string.Join(",", Shape)}]";

    /// <summary>The element count of a fully known shape.</summary>
    public long ElementCount => Shape.Aggregate(1L, (a, d) => d.IsKnown ? checked(a * d.Size) : throw new InvalidOperationException($"{Name} has a symbolic shape {TypeString}"));

    public override string ToString() => $"{Name} {TypeString}";
}
