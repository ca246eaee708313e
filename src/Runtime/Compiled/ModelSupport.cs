using System.Globalization;

namespace ModelCompiler.Runtime;

/// <summary>
/// Checks a call's inputs against a compiled model's declared inputs and binds the shape symbols
/// (<c>batch</c>, <c>seq</c>, ...) from them, with the reference interpreter's rules and messages: every
/// input known and present, ranks and known sizes equal, a symbol the same size wherever it appears.
/// </summary>
public sealed class InputBinder
{
    private readonly Dictionary<string, long> _symbols = new(StringComparer.Ordinal);
    private readonly HostTensor[] _given;

    public InputBinder(IReadOnlyDictionary<string, HostTensor> inputs, IReadOnlyList<TensorSpec> specs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var declared = specs.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var name in inputs.Keys)
            if (!declared.Contains(name))
                throw new McException($"unknown input {UserText.Quote(name)} (the model's inputs are: {string.Join(", ", declared.Order(StringComparer.Ordinal))})");
        _given = new HostTensor[specs.Count];
        for (int i = 0; i < specs.Count; i++)
        {
            var spec = specs[i];
            if (!inputs.TryGetValue(spec.Name, out var t) || t is null)
                throw new McException($"missing input {UserText.Quote(spec.Name)} (the model declares {spec.TypeString})");
            _given[i] = Admit(spec, t);
        }
    }

    /// <summary>The bound size of a symbol, as an int (a compiled model indexes with ints).</summary>
    public int Symbol(string name) =>
        _symbols.TryGetValue(name, out var v) ? (int)v : throw new InvalidOperationException($"symbol '{name}' is not bound by any input");

    /// <summary>The data of the <paramref name="index"/>-th declared input, an integer one.</summary>
    public long[] Ints(int index) => _given[index].Ints!;

    /// <summary>The data of the <paramref name="index"/>-th declared input, a float one.</summary>
    public float[] Floats(int index) => _given[index].Floats!;

    private HostTensor Admit(TensorSpec spec, HostTensor t)
    {
        string what = $"input '{spec.Name}'";
        string Mismatch(string why = "") => $"{what} has shape [{HostTensor.FormatShape(t.Shape)}] but the model declares {spec.TypeString}{why}";
        if (t.Shape.Length != spec.Shape.Count) throw new McException(Mismatch());
        var newlyBound = new List<string>();
        for (int d = 0; d < spec.Shape.Count; d++)
        {
            var dim = spec.Shape[d];
            long actual = t.Shape[d];
            if (dim.IsKnown)
            {
                if (dim.Size != actual) throw new McException(Mismatch());
            }
            else if (_symbols.TryGetValue(dim.Symbol!, out var bound))
            {
                if (bound != actual)
                    throw new McException(Mismatch($" ({dim.Symbol} = {bound}, bound {(newlyBound.Contains(dim.Symbol!) ? "earlier in this shape" : "by an earlier input")})"));
            }
            else
            {
                if (actual > int.MaxValue) throw new McException(Mismatch($" ({dim.Symbol} = {actual} is too large for the cpu target)"));
                _symbols[dim.Symbol!] = actual;
                newlyBound.Add(dim.Symbol!);
            }
        }
        if (t.ElementCount > Array.MaxLength) throw new McException($"{what} of shape [{HostTensor.FormatShape(t.Shape)}] is too large for the cpu target");
        if (spec.DType.IsFloat())
        {
            if (t.Floats is null) throw new McException($"{what} holds integers ({t}) but the model declares {spec.TypeString}");
            return t;
        }
        if (t.Ints is null) throw new McException($"{what} holds floats ({t}) but the model declares {spec.TypeString}");
        foreach (var v in t.Ints)
            if (Kernels.IntKernels.Wrap(spec.DType, v) != v)
                throw new McException($"{what} holds values outside the range of {spec.DType.ShortName()} ({spec.TypeString})");
        return t;
    }
}

/// <summary>
/// Reuses float buffers within one forward pass: a buffer returned after its value's last use is handed out
/// again for the next request of exactly the same length. Buffers come back dirty: kernels write every element.
/// </summary>
public sealed class BufferPool
{
    private readonly Dictionary<int, Stack<float[]>> _free = new();

    public float[] Rent(int length)
    {
        if (_free.TryGetValue(length, out var stack) && stack.Count > 0) return stack.Pop();
        return length == 0 ? [] : GC.AllocateUninitializedArray<float>(length);
    }

    public void Return(float[] buffer)
    {
        if (!_free.TryGetValue(buffer.Length, out var stack)) _free[buffer.Length] = stack = new Stack<float[]>();
        stack.Push(buffer);
    }
}

/// <summary>How a compiled model reads its weights and reports missing ones.</summary>
public static class WeightLoading
{
    /// <summary>One float weight, checked to hold exactly the declared number of elements.</summary>
    public static float[] Floats(Func<string, float[]> load, string name, long count, string declared)
    {
        var data = load(name) ?? throw new McException($"weight {UserText.Quote(name)} was not provided");
        if (data.LongLength != count)
            throw new McException($"weight {UserText.Quote(name)} has {data.LongLength.ToString(CultureInfo.InvariantCulture)} elements but the model declares {declared}");
        return data;
    }

    /// <summary>An integer weight (read as floats and truncated; exact up to 2^24).</summary>
    public static long[] Ints(Func<string, float[]> load, string name, long count, string declared) =>
        Array.ConvertAll(Floats(load, name, count, declared), v => (long)Math.Truncate((double)v));

    /// <summary>
    /// The packed format of a linear weight copied from these checkpoint tensors: their 16-bit format when all share
    /// one (bf16 or fp16 values are exact in it, and the GEMM widens them in registers), else fp32.
    /// </summary>
    public static Kernels.WeightFormat StoredFormat(WeightStore? store, string[] names)
    {
        if (store is null || names.Length == 0) return Kernels.WeightFormat.F32;
        var first = store.Get(names[0]).DType;
        if (first is not (DType.BF16 or DType.F16) || names.Any(n => store.Get(n).DType != first)) return Kernels.WeightFormat.F32;
        return first == DType.BF16 ? Kernels.WeightFormat.BF16 : Kernels.WeightFormat.F16;
    }

    public static InvalidOperationException NotLoaded(string model) =>
        new($"{model}: LoadWeights must be called before Run");
}
