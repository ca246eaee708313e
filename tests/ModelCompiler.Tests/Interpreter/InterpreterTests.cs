using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Runtime;
using static ModelCompiler.Tests.Interpreter.TestModel;
using RefInterpreter = ModelCompiler.Backends.Reference.Interpreter;

namespace ModelCompiler.Tests.Interpreter;

/// <summary>Input binding, weight loading, precision modes and the run loop itself.</summary>
public sealed class InterpreterTests
{
    private static TensorType T(DType dtype, params Dim[] shape) => new(dtype, shape);

    private static readonly Dim Batch = Dim.Sym("batch"), Seq = Dim.Sym("seq");

    private static IReadOnlyDictionary<string, RefTensor> Run(Graph g, Dictionary<string, RefTensor> inputs, Precision p = Precision.F32) =>
        new RefInterpreter(g, p).Run(inputs, (name, _) => throw new InvalidOperationException($"unexpected weight {name}"));

    [Fact]
    public void BindsSymbolsFromInputShapes()
    {
        var b = new GraphBuilder(new Graph("t"));
        var ids = b.Input("input_ids", T(DType.I64, Batch, Seq));
        var pos = b.Add(OpKind.Positions, [ids], A(("axis", 1)));
        b.Graph.SetOutput("pos", pos);
        var r = Run(b.Graph, new() { ["input_ids"] = RefTensor.FromInts([2, 12], new long[24]) });
        Assert.Equal([12L], r["pos"].Shape);
    }

    [Fact]
    public void WrongRankNamesTheInputAndBothShapes()
    {
        var b = new GraphBuilder(new Graph("t"));
        b.Graph.SetOutput("y", b.Input("input_ids", T(DType.I64, Batch, Seq, 4)));
        var e = Assert.Throws<McException>(() => Run(b.Graph, new() { ["input_ids"] = RefTensor.FromInts([2, 12], new long[24]) }));
        Assert.Equal("input 'input_ids' has shape [2,12] but the model declares i64[batch,seq,4]", e.Message);
    }

    [Fact]
    public void KnownDimMismatch()
    {
        var b = new GraphBuilder(new Graph("t"));
        b.Graph.SetOutput("y", b.Input("x", T(DType.F32, Batch, 4)));
        var e = Assert.Throws<McException>(() => Run(b.Graph, new() { ["x"] = RefTensor.FromFloats([2, 5], new double[10]) }));
        Assert.Equal("input 'x' has shape [2,5] but the model declares f32[batch,4]", e.Message);
    }

    [Fact]
    public void ASymbolBoundTwoWays()
    {
        var b = new GraphBuilder(new Graph("t"));
        b.Graph.SetOutput("x", b.Input("x", T(DType.F32, Batch, 4)));
        b.Graph.SetOutput("mask", b.Input("mask", T(DType.I64, Batch)));
        var e = Assert.Throws<McException>(() => Run(b.Graph, new()
        {
            ["x"] = RefTensor.FromFloats([2, 4], new double[8]),
            ["mask"] = RefTensor.FromInts([3], new long[3]),
        }));
        Assert.StartsWith("input 'mask' has shape [3] but the model declares i64[batch]", e.Message);
        Assert.Contains("batch = 2", e.Message);

        // The same symbol twice within one shape.
        var sq = new GraphBuilder(new Graph("t"));
        sq.Graph.SetOutput("m", sq.Input("m", T(DType.F32, Seq, Seq)));
        var e2 = Assert.Throws<McException>(() => Run(sq.Graph, new() { ["m"] = RefTensor.FromFloats([2, 3], new double[6]) }));
        Assert.Contains("input 'm' has shape [2,3]", e2.Message);
    }

    [Fact]
    public void MissingUnknownAndWrongKindInputs()
    {
        var b = new GraphBuilder(new Graph("t"));
        b.Graph.SetOutput("y", b.Input("ids", T(DType.I64, Batch)));
        var missing = Assert.Throws<McException>(() => Run(b.Graph, new()));
        Assert.Equal("missing input 'ids' (the model declares i64[batch])", missing.Message);
        var unknown = Assert.Throws<McException>(() => Run(b.Graph, new() { ["ids"] = RefTensor.FromInts([1], [0]), ["idz"] = RefTensor.FromInts([1], [0]) }));
        Assert.Contains("unknown input 'idz'", unknown.Message);
        var kind = Assert.Throws<McException>(() => Run(b.Graph, new() { ["ids"] = RefTensor.FromFloats([2], [1.0, 2.0]) }));
        Assert.Contains("input 'ids'", kind.Message);
        Assert.Contains("f32[2]", kind.Message);
        Assert.Contains("i64[batch]", kind.Message);
    }

    [Fact]
    public void WeightShapeMismatchNamesTheWeight()
    {
        var b = new GraphBuilder(new Graph("t"));
        var x = b.Input("x", T(DType.F32, 1, 3));
        var w = b.Weight("model.proj.weight", T(DType.F32, 2, 3));
        b.Graph.SetOutput("y", b.Linear(x, w));
        var e = Assert.Throws<McException>(() => new RefInterpreter(b.Graph).Run(
            new Dictionary<string, RefTensor> { ["x"] = RefTensor.FromFloats([1, 3], new double[3]) },
            (_, _) => RefTensor.FromFloats([3, 2], new double[6])));
        Assert.Equal("weight 'model.proj.weight' has shape [3,2] but the model declares f32[2,3]", e.Message);
    }

    [Fact]
    public void WeightsAreRequestedOncePerNodeWithTheirDeclaredType()
    {
        var b = new GraphBuilder(new Graph("t"));
        var x = b.Input("x", T(DType.F32, 1, 2));
        var w1 = b.Weight("a", T(DType.F32, 2, 2));
        var w2 = b.Weight("b", T(DType.F32, 2));
        b.Graph.SetOutput("y", b.Linear(b.Linear(x, w1), w1, w2));
        var requests = new List<(string, TensorType)>();
        var r = new RefInterpreter(b.Graph).Run(
            new Dictionary<string, RefTensor> { ["x"] = RefTensor.FromFloats([1, 2], new float[] { 1, 2 }) },
            (name, type) =>
            {
                requests.Add((name, type));
                return name == "a" ? RefTensor.FromFloats([2, 2], new float[] { 0, 1, 1, 0 }) : RefTensor.FromFloats([2], new float[] { 10, 20 });
            });
        Assert.Equal([("a", T(DType.F32, 2, 2)), ("b", T(DType.F32, 2))], requests);
        Check.Close([11, 22], r["y"]); // swapped twice, plus the bias
    }

    [Fact]
    public void F32ModeRoundsEveryNodeAndF64ModeDoesNot()
    {
        var m = new TestModel();
        var x = m.Input("x", F([2], 1, 3));
        // (x + 1e-9) − x: the 1e-9 vanishes when the sum is rounded to float32 before the subtraction.
        var tiny = m.B.Binary(OpKind.Sub, m.B.Binary(OpKind.Add, x, m.B.Const(1e-9)), x);
        var third = m.B.Binary(OpKind.Div, x, m.B.Const(3));
        m.Graph.SetOutput("tiny", tiny);
        m.Graph.SetOutput("third", third);
        var f32 = m.RunAll(Precision.F32);
        var f64 = m.RunAll(Precision.F64);
        Assert.Equal(new[] { 0.0, 0.0 }, f32["tiny"].F);
        Assert.Equal(new[] { (1.0 + 1e-9) - 1.0, (3.0 + 1e-9) - 3.0 }, f64["tiny"].F);
        Assert.Equal(new[] { (double)(1f / 3f), 1.0 }, f32["third"].F);
        Assert.Equal(new[] { 1 / 3.0, 1.0 }, f64["third"].F);
        Check.Close([1 / 3.0, 1.0], f32["third"], 1e-6);
    }

    [Fact]
    public void F32ModeStaysWithinFloatPrecisionOfF64OnALayer()
    {
        // rms_norm → q/k/v projections → rope → causal attention → silu: F32 mode rounds every node, so it
        // drifts from F64 by a few float32 ulps, well inside 1e-6 of the output's scale.
        const int S = 4, H = 2, Dh = 4, D = H * Dh;
        var m = new TestModel();
        var x = m.Input("x", F([1, S, D], Noise(40, S * D).Select(v => (double)(float)v).ToArray()));
        var pos = m.Input("pos", Ints([S], 0, 1, 2, 3));
        var h = m.Add(OpKind.RmsNorm, [x, m.Weight("norm", F([D], Noise(41, D).Select(v => (double)(float)(1 + v)).ToArray()))], A(("eps", 1e-5)));
        Node Proj(string name, int seed) => m.B.Reshape(
            m.B.Linear(h, m.Weight(name, F([D, D], Noise(seed, D * D).Select(v => (double)(float)v).ToArray()))), 1, S, H, Dh);
        var rope = A(("theta", 10000.0), ("rotary_dim", Dh));
        var q = m.Add(OpKind.Rope, [Proj("q", 42), pos], rope);
        var k = m.Add(OpKind.Rope, [Proj("k", 43), pos], rope);
        var att = m.Add(OpKind.Attention, [q, k, Proj("v", 44)], A(("mask", "causal")));
        m.Graph.SetOutput("y", m.B.Unary(OpKind.Silu, att));
        var f64 = m.RunAll(Precision.F64)["y"].F!;
        var f32 = m.RunAll(Precision.F32)["y"];
        Assert.All(f32.F!, v => Assert.Equal(v, (double)(float)v));
        double scale = f64.Max(Math.Abs);
        for (int e = 0; e < f64.Length; e++)
            Assert.True(Math.Abs(f32.F![e] - f64[e]) <= 1e-6 * scale, $"element {e}: {f32.F[e]:R} vs {f64[e]:R}");
    }

    [Fact]
    public void IntegerOperandWhereTheOpComputesInFloatsNamesTheNode()
    {
        var m = new TestModel();
        var x = m.Input("x", F([1, 2], 1, 2));
        m.B.CurrentName = "proj";
        var e = Assert.Throws<McException>(() => m.Run(m.B.Linear(x, m.Weight("w", Ints([2, 2], 1, 0, 0, 1)))));
        Assert.Equal("linear 'proj': operand 2 must hold floats, got i64[2,2]", e.Message);
    }

    [Fact]
    public void F32ModeRoundsInputsWithoutTouchingTheCallersArray()
    {
        double[] data = [0.1, 0.25];
        var m = new TestModel();
        var y = m.Run(m.B.Unary(OpKind.Neg, m.Input("x", F([2], data))), Precision.F32);
        Assert.Equal(new[] { -(double)0.1f, -0.25 }, y.F);
        Assert.Equal(0.1, data[0]);
    }

    [Fact]
    public void ObservesEveryNodeInOrderAndKeepsOutputsThatAreAlsoIntermediates()
    {
        var m = new TestModel();
        var x = m.Input("x", F([2], 1, 2));
        var sq = m.B.Binary(OpKind.Mul, x, x);         // one user reading the same value twice
        var dead = m.B.Unary(OpKind.Exp, x);           // no users, not an output: still evaluated
        var y = m.B.Binary(OpKind.Add, sq, x);
        m.Graph.SetOutput("sq", sq);
        m.Graph.SetOutput("y", y);
        var seen = new List<(Node, RefTensor)>();
        var r = m.RunAll(Precision.F64, (n, t) => seen.Add((n, t)));
        Assert.Equal(m.Graph.Nodes, seen.Select(s => s.Item1));
        Check.Close([Math.E, Math.Exp(2)], seen.Single(s => s.Item1 == dead).Item2);
        Check.Close([1, 4], r["sq"]);
        Check.Close([2, 6], r["y"]);
    }

    [Fact]
    public void RefTensorAccessors()
    {
        var t = RefTensor.FromFloats([2, 3], new float[] { 0, 1, 2, 3, 4, 5.5f });
        Assert.Equal(DType.F32, t.DType);
        Assert.Equal(6, t.ElementCount);
        Assert.Equal(5.5, t[1, 2]);
        Assert.Equal(3, t[1, 0]);
        Assert.Equal(new float[] { 0, 1, 2, 3, 4, 5.5f }, t.ToFloat32());
        var s = RefTensor.Scalar(2.5);
        Assert.Empty(s.Shape);
        Assert.Equal(2.5, s[Array.Empty<long>()]);
        Assert.Throws<ArgumentException>(() => RefTensor.FromFloats([2, 2], new double[3]));
        Assert.Throws<ArgumentException>(() => RefTensor.FromInts([1], [1], DType.F32));
    }
}
