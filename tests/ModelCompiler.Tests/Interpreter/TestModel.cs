using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Runtime;
using RefInterpreter = ModelCompiler.Backends.Reference.Interpreter;

namespace ModelCompiler.Tests.Interpreter;

/// <summary>
/// A small graph under construction together with the values of its inputs and weights, so a test can
/// build a few nodes and run them in one go.
/// </summary>
internal sealed class TestModel
{
    private readonly Dictionary<string, RefTensor> _inputs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RefTensor> _weights = new(StringComparer.Ordinal);

    public GraphBuilder B { get; } = new(new Graph("t"));

    public Graph Graph => B.Graph;

    /// <summary>An input whose declared type is the value's exact shape unless <paramref name="declared"/> is given.</summary>
    public Node Input(string name, RefTensor value, TensorType? declared = null)
    {
        _inputs[name] = value;
        return B.Input(name, declared ?? TypeOf(value));
    }

    public Node Weight(string name, RefTensor value)
    {
        _weights[name] = value;
        return B.Weight(name, TypeOf(value));
    }

    public Node Add(OpKind op, IReadOnlyList<Node> inputs, Attrs? attrs = null, TensorType? declared = null) =>
        B.Add(op, inputs, attrs, declared);

    public RefTensor Run(Node output, Precision precision = Precision.F64)
    {
        Graph.SetOutput("y", output);
        return RunAll(precision)["y"];
    }

    public IReadOnlyDictionary<string, RefTensor> RunAll(Precision precision = Precision.F64, Action<Node, RefTensor>? observe = null) =>
        new RefInterpreter(Graph, precision).Run(_inputs, (name, _) => _weights[name], observe);

    public static TensorType TypeOf(RefTensor t) => new(t.DType, t.Shape.Select(Dim.Of).ToArray());

    public static Attrs A(params (string Name, object Value)[] attrs) =>
        attrs.Aggregate(Attrs.Empty, (a, kv) => a.With(kv.Name, kv.Value));

    public static RefTensor F(long[] shape, params double[] data) => RefTensor.FromFloats(shape, data);

    public static RefTensor Ints(long[] shape, params long[] data) => RefTensor.FromInts(shape, data);

    /// <summary>Deterministic values in [-1, 1) that are not float32-representable (so F64 mode is really exercised).</summary>
    public static double[] Noise(int seed, long count)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, (int)count).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
    }
}

internal static class Check
{
    /// <summary>
    /// Element-wise |actual − expected| ≤ rel·max(|expected|, 1e-3·max|expected|): relative, except that
    /// entries far below the tensor's scale (where cancellation is legitimate) get the scale's absolute tolerance.
    /// </summary>
    public static void Close(double[] expected, RefTensor actual, double rel = 1e-12)
    {
        Assert.NotNull(actual.F);
        Assert.Equal(expected.Length, actual.F!.Length);
        double scale = expected.Length == 0 ? 0 : expected.Max(Math.Abs) * 1e-3;
        for (int e = 0; e < expected.Length; e++)
        {
            double tol = rel * Math.Max(Math.Abs(expected[e]), scale);
            if (!(Math.Abs(actual.F[e] - expected[e]) <= tol))
                Assert.Fail($"element {e}: expected {expected[e]:R} but got {actual.F[e]:R} (tolerance {tol:R})");
        }
    }

    public static void Shape(long[] expected, RefTensor actual) => Assert.Equal(expected, actual.Shape);
}
