using ModelCompiler.Backends.Cpu;
using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Runtime;
using RefInterpreter = ModelCompiler.Backends.Reference.Interpreter;

namespace ModelCompiler.Tests.CpuTarget;

/// <summary>
/// A graph built node by node with seeded random weights, compiled for the CPU once, and run side by side with
/// the reference interpreter (float32 mode) on the same inputs.
/// </summary>
internal sealed class CpuHarness
{
    private readonly Dictionary<string, float[]> _weights = new(StringComparer.Ordinal);
    private int _seed = 100;

    public CpuHarness(string name = "kernels") => B = new GraphBuilder(new Graph(name));

    public GraphBuilder B { get; }

    public Graph Graph => B.Graph;

    public static readonly Dim Batch = Dim.Sym("batch"), Seq = Dim.Sym("seq"), KSeq = Dim.Sym("kseq");

    public Node Input(string name, DType dtype, params Dim[] shape) => B.Input(name, new TensorType(dtype, shape));

    /// <summary>A weight of uniform values in ±<paramref name="scale"/> (plus <paramref name="shift"/>).</summary>
    public Node Weight(string name, long[] shape, double scale = 0.5, double shift = 0)
    {
        long n = shape.Aggregate(1L, (a, d) => a * d);
        _weights[name] = Values(_seed++, n, scale, shift);
        return B.Weight(name, new TensorType(DType.F32, shape.Select(Dim.Of).ToArray()));
    }

    public Node Op(OpKind op, params Node[] inputs) => B.Add(op, inputs);

    public Node Op(OpKind op, Node[] inputs, params (string Name, object Value)[] attrs) =>
        B.Add(op, inputs, attrs.Aggregate(Attrs.Empty, (a, kv) => a.With(kv.Name, kv.Value)));

    public Node Const(double value, DType dtype = DType.F32) => B.Const(value, dtype);

    public void Output(string name, Node value) => Graph.SetOutput(name, value);

    public float[] WeightValues(string name) => _weights[name];

    public ICompiledModel Compile()
    {
        var model = Backends.Cpu.CpuBackend.Instantiate(Backends.Cpu.CpuBackend.Compile(Graph));
        model.LoadWeights(name => _weights[name]);
        return model;
    }

    public static float[] Values(int seed, long count, double scale = 1, double shift = 0)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, (int)count).Select(_ => (float)(shift + scale * (2 * rng.NextDouble() - 1))).ToArray();
    }

    public static HostTensor Floats(int seed, long[] shape, double scale = 1) =>
        HostTensor.FromFloats(shape, Values(seed, shape.Aggregate(1L, (a, d) => a * d), scale));

    /// <summary>The interpreter's outputs (float32 mode) for the same inputs and weights.</summary>
    public IReadOnlyDictionary<string, RefTensor> Reference(IReadOnlyDictionary<string, HostTensor> inputs, long? cachedPrefixLength = null)
    {
        var feeds = inputs.ToDictionary(kv => kv.Key, kv => kv.Value.IsFloat
            ? RefTensor.FromFloats(kv.Value.Shape, kv.Value.Floats!)
            : RefTensor.FromInts(kv.Value.Shape, kv.Value.Ints!, kv.Value.DType), StringComparer.Ordinal);
        return new RefInterpreter(Graph).Run(feeds, (name, type) =>
            RefTensor.FromFloats(type.Shape.Select(d => d.Size).ToArray(), _weights[name]), cachedPrefixLength: cachedPrefixLength);
    }

    /// <summary>
    /// max |cpu − reference| / max |reference| for a float output (1 if the shapes differ; 0 for two all-zero outputs);
    /// for an integer output 0 if equal, else 1.
    /// </summary>
    public static double Difference(RefTensor expected, HostTensor actual)
    {
        if (!expected.Shape.SequenceEqual(actual.Shape) || expected.IsFloat != actual.IsFloat) return 1;
        if (!expected.IsFloat) return expected.I!.SequenceEqual(actual.Ints!) ? 0 : 1;
        var e = expected.ToFloat32();
        var a = actual.Floats!;
        double maxRef = 0, maxDiff = 0;
        for (int i = 0; i < e.Length; i++)
        {
            if (float.IsNaN(e[i]) || float.IsNaN(a[i]))
            {
                if (float.IsNaN(e[i]) != float.IsNaN(a[i])) return 1;
                continue;
            }
            if (float.IsInfinity(e[i]) || float.IsInfinity(a[i]))
            {
                if (e[i] != a[i]) return 1;
                continue;
            }
            maxRef = Math.Max(maxRef, Math.Abs(e[i]));
            maxDiff = Math.Max(maxDiff, Math.Abs((double)e[i] - a[i]));
        }
        return maxRef == 0 ? maxDiff : maxDiff / maxRef;
    }
}
