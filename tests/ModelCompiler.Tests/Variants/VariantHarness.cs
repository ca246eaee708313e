using ModelCompiler.Backends.Reference;
using ModelCompiler.Frontend;
using ModelCompiler.IR;
using RefInterpreter = ModelCompiler.Backends.Reference.Interpreter;

namespace ModelCompiler.Tests.Variants;

/// <summary>
/// Seeded random checkpoint tensors, by name: the interpreter loads them through its weight callback and the
/// tests' float64 re-implementations read the same values. Norm scales ("norm" in the name, ending in ".weight")
/// are 1 ± 0.25, everything else uniform in ±0.5. Records which names each side asked for, so a test can check
/// that its re-implementation used exactly the checkpoint the model did.
/// </summary>
internal sealed class Weights(int seed)
{
    private readonly Dictionary<string, double[]> _values = new(StringComparer.Ordinal);

    public HashSet<string> Loaded { get; } = new(StringComparer.Ordinal);
    public HashSet<string> Used { get; } = new(StringComparer.Ordinal);

    /// <summary>What the re-implementation reads; <paramref name="count"/> is the element count it expects.</summary>
    public double[] this[string name, long count]
    {
        get
        {
            Used.Add(name);
            return Values(name, count);
        }
    }

    public RefTensor Load(string name, TensorType type)
    {
        Loaded.Add(name);
        var shape = type.Shape.Select(d => d.IsKnown ? d.Size : throw new InvalidOperationException($"weight {name} has a symbolic shape {type}")).ToArray();
        return RefTensor.FromFloats(shape, Values(name, shape.Aggregate(1L, (a, d) => a * d)), type.DType);
    }

    private double[] Values(string name, long count)
    {
        if (!_values.TryGetValue(name, out var v))
        {
            uint h = 2166136261;
            foreach (char c in name) h = (h ^ c) * 16777619;
            var rng = new Random(unchecked((int)h) ^ seed);
            bool normScale = name.Contains("norm", StringComparison.Ordinal) && name.EndsWith(".weight", StringComparison.Ordinal);
            v = Enumerable.Range(0, (int)count).Select(_ => normScale ? 1 + 0.25 * (2 * rng.NextDouble() - 1) : 0.5 * (2 * rng.NextDouble() - 1)).ToArray();
            _values[name] = v;
        }
        Assert.True(v.Length == count, $"weight '{name}': the re-implementation expects {count} values, the model declares {v.Length}");
        return v;
    }
}

/// <summary>A variant model loaded through the real frontend from examples/variants, and run by the reference interpreter in F64.</summary>
internal sealed class VariantModel
{
    private VariantModel(Graph graph, Weights weights) { Graph = graph; W = weights; }

    public Graph Graph { get; }
    public Weights W { get; }

    public static string ArchPath(string file) => Path.Combine(AppContext.BaseDirectory, "examples", "variants", file);

    /// <summary>examples/variants/<paramref name="file"/> with hyperparameter overrides (as mc's --set), and seeded weights.</summary>
    public static VariantModel Load(string file, params (string Name, string Value)[] sets)
    {
        var loaded = ModelFrontend.Load(ArchPath(file), null, sets.ToDictionary(s => s.Name, s => s.Value, StringComparer.Ordinal));
        return new VariantModel(loaded.Graph, new Weights(seed: 1));
    }

    /// <summary>The re-implementation read exactly the checkpoint tensors the model loaded.</summary>
    public void AssertSameWeightsUsed() =>
        Assert.Equal(W.Loaded.Order(StringComparer.Ordinal), W.Used.Order(StringComparer.Ordinal));

    /// <summary>The logits [batch, seq, vocab], flattened.</summary>
    public double[] Logits(long[][] ids, int vocab)
    {
        int b = ids.Length, s = ids[0].Length;
        var input = RefTensor.FromInts([b, s], ids.SelectMany(r => r).ToArray());
        var outputs = new RefInterpreter(Graph, Precision.F64).Run(new Dictionary<string, RefTensor> { ["input_ids"] = input }, W.Load);
        var logits = outputs["logits"];
        Assert.Equal([b, s, (long)vocab], logits.Shape);
        return logits.F!;
    }

    /// <summary>Token ids in [0, vocab), seeded.</summary>
    public static long[][] Tokens(int batch, int seq, int vocab, int seed = 7)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, seq).Select(_ => (long)rng.Next(vocab)).ToArray()).ToArray();
    }
}

/// <summary>Comparisons of logits.</summary>
internal static class Compare
{
    /// <summary>Every element within <paramref name="rel"/> of the expected one, relative (see <see cref="Interpreter.Check.Close"/>).</summary>
    public static void Close(double[] expected, double[] actual, double rel = 1e-9) =>
        ModelCompiler.Tests.Interpreter.Check.Close(expected, RefTensor.FromFloats([actual.Length], actual, ModelCompiler.Runtime.DType.F64), rel);

    /// <summary>The largest |a − b| relative to the largest |a|.</summary>
    public static double MaxRelativeDifference(double[] a, double[] b)
    {
        Assert.Equal(a.Length, b.Length);
        double scale = a.Max(Math.Abs), worst = 0;
        for (int i = 0; i < a.Length; i++) worst = Math.Max(worst, Math.Abs(a[i] - b[i]));
        return worst / scale;
    }

    /// <summary>A deliberately wrong formula must give clearly different logits (so the comparison can fail).</summary>
    public static void Differs(double[] actual, double[] wrong, double atLeast = 1e-2)
    {
        double d = MaxRelativeDifference(actual, wrong);
        Assert.True(d > atLeast, $"the wrong formula's logits differ from the model's by only {d:G3} (relative), expected more than {atLeast:G3}");
    }
}

/// <summary>
/// Float64 building blocks written from their definitions with plain loops; nothing here calls the IR or the
/// interpreter. A sequence is double[seq][features]; a linear weight is PyTorch's [out, in], row-major.
/// </summary>
internal static class Naive
{
    public static double[] Linear(double[] x, double[] w, double[]? b = null)
    {
        int inF = x.Length, outF = w.Length / inF;
        Assert.Equal(w.Length, outF * inF);
        var y = new double[outF];
        for (int o = 0; o < outF; o++)
        {
            double acc = b?[o] ?? 0;
            for (int i = 0; i < inF; i++) acc += w[o * inF + i] * x[i];
            y[o] = acc;
        }
        return y;
    }

    public static double[][] Linear(double[][] xs, double[] w, double[]? b = null) => xs.Select(x => Linear(x, w, b)).ToArray();

    /// <summary>(x − mean) / sqrt(var + eps) · w + b, with the biased variance.</summary>
    public static double[] LayerNorm(double[] x, double[] w, double[] b, double eps)
    {
        double mean = 0, var = 0;
        foreach (var v in x) mean += v;
        mean /= x.Length;
        foreach (var v in x) var += (v - mean) * (v - mean);
        var /= x.Length;
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++) y[i] = (x[i] - mean) / Math.Sqrt(var + eps) * w[i] + b[i];
        return y;
    }

    public static double[] RmsNorm(double[] x, double[] w, double eps)
    {
        double ms = 0;
        foreach (var v in x) ms += v * v;
        ms /= x.Length;
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++) y[i] = x[i] / Math.Sqrt(ms + eps) * w[i];
        return y;
    }

    public static double[] Add(double[] a, double[] b) => a.Select((v, i) => v + b[i]).ToArray();

    public static double[][] Add(double[][] a, double[][] b) => a.Select((r, s) => Add(r, b[s])).ToArray();

    public static double[] Scale(double[] a, double s) => a.Select(v => v * s).ToArray();

    public static double[] Map(double[] a, Func<double, double> f) => a.Select(f).ToArray();

    public static double Relu(double x) => Math.Max(x, 0);

    /// <summary>GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).</summary>
    public static double GeluTanh(double x) => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

    public static double Silu(double x) => x / (1 + Math.Exp(-x));

    public static double Dot(double[] a, int ao, double[] b, int bo, int n)
    {
        double acc = 0;
        for (int d = 0; d < n; d++) acc += a[ao + d] * b[bo + d];
        return acc;
    }

    /// <summary>
    /// Softmax attention of one sequence: out_i[h] = Σ_j softmax_j(score(h, i, j) over visible j) · v_j[h], where
    /// v_j[h] is v[j][h·headDim .. (h+1)·headDim). Returns the heads concatenated, double[seq][heads·headDim].
    /// </summary>
    public static double[][] Attend(int heads, int headDim, double[][] v, Func<int, int, int, double> score, Func<int, int, bool> visible)
    {
        int seq = v.Length;
        var o = new double[seq][];
        for (int i = 0; i < seq; i++)
        {
            o[i] = new double[heads * headDim];
            for (int h = 0; h < heads; h++)
            {
                var keys = Enumerable.Range(0, seq).Where(j => visible(i, j)).ToArray();
                var s = keys.Select(j => score(h, i, j)).ToArray();
                double max = s.Max(), z = 0;
                for (int n = 0; n < s.Length; n++) z += s[n] = Math.Exp(s[n] - max);
                for (int n = 0; n < keys.Length; n++)
                    for (int d = 0; d < headDim; d++)
                        o[i][h * headDim + d] += s[n] / z * v[keys[n]][h * headDim + d];
            }
        }
        return o;
    }

    /// <summary>
    /// The standard multi-head self-attention of std/variants.arch's mh_attention: biased q/k/v/o projections
    /// "{prefix}.{q,k,v,o}_proj", score q_i·k_j/√headDim, keys restricted by <paramref name="visible"/>(i, j).
    /// </summary>
    public static double[][] MhAttention(Weights w, string prefix, double[][] x, int heads, Func<int, int, bool> visible)
    {
        int dim = x[0].Length, hd = dim / heads;
        double[][] P(string n, double[][] input) => Linear(input, w[$"{prefix}.{n}.weight", dim * dim], w[$"{prefix}.{n}.bias", dim]);
        var q = P("q_proj", x);
        var k = P("k_proj", x);
        var v = P("v_proj", x);
        var o = Attend(heads, hd, v, (h, i, j) => Dot(q[i], h * hd, k[j], h * hd, hd) / Math.Sqrt(hd), visible);
        return P("o_proj", o);
    }

    /// <summary>std/variants.arch's mlp: fc2(act(fc1(x))) with biases.</summary>
    public static double[][] Mlp(Weights w, string prefix, double[][] x, int ffnDim, Func<double, double> act)
    {
        int dim = x[0].Length;
        return x.Select(t => Linear(Map(Linear(t, w[$"{prefix}.fc1.weight", ffnDim * dim], w[$"{prefix}.fc1.bias", ffnDim]), act),
            w[$"{prefix}.fc2.weight", dim * ffnDim], w[$"{prefix}.fc2.bias", dim])).ToArray();
    }

    /// <summary>LayerNorm "{name}.weight"/"{name}.bias" on every position.</summary>
    public static double[][] LayerNorm(Weights w, string name, double[][] x, double eps = 1e-5)
    {
        int dim = x[0].Length;
        return x.Select(t => LayerNorm(t, w[$"{name}.weight", dim], w[$"{name}.bias", dim], eps)).ToArray();
    }

    /// <summary>Rows of an embedding table [vocab, dim].</summary>
    public static double[][] Embed(double[] table, long[] ids, int dim) =>
        ids.Select(id => table.Skip((int)id * dim).Take(dim).ToArray()).ToArray();

    /// <summary>logits_i = head · x_i (+ bias), head [vocab, dim]; all positions of all sequences, flattened.</summary>
    public static double[] Logits(IEnumerable<double[][]> hidden, double[] head, double[]? bias = null) =>
        hidden.SelectMany(seq => seq.SelectMany(x => Linear(x, head, bias))).ToArray();
}
