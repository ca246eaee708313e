using ModelCompiler.IR;
using ModelCompiler.Runtime;
using static ModelCompiler.Tests.Interpreter.TestModel;

namespace ModelCompiler.Tests.Interpreter;

public sealed class ShapeOpsTests
{
    private static readonly double[] Six = [0, 1, 2, 3, 4, 5];

    [Fact]
    public void ReshapeIsARowMajorView()
    {
        var m = new TestModel();
        var y = m.Run(m.B.Reshape(m.Input("x", F([2, 3], Six)), 3, 1, 2));
        Check.Shape([3, 1, 2], y);
        Check.Close(Six, y);
    }

    [Fact]
    public void ReshapeResolvesSymbolsFromTheInputs()
    {
        var m = new TestModel();
        var x = m.Input("x", F([2, 6], [.. Six, .. Six]), new TensorType(DType.F32, Dim.Sym("batch"), 6));
        var y = m.Run(m.B.Reshape(x, Dim.Sym("batch"), 2, 3));
        Check.Shape([2, 2, 3], y);
    }

    [Fact]
    public void TransposeTwoAndThreeAxes()
    {
        var m = new TestModel();
        var x2 = m.Input("x2", F([2, 3], Six));
        var x3 = m.Input("x3", F([2, 3, 2], Enumerable.Range(0, 12).Select(i => (double)i).ToArray()));
        m.Graph.SetOutput("t2", m.B.Transpose(x2, 1, 0));
        m.Graph.SetOutput("t3", m.B.Transpose(x3, 2, 0, 1));
        var r = m.RunAll();
        Check.Shape([3, 2], r["t2"]);
        Check.Close([0, 3, 1, 4, 2, 5], r["t2"]);
        // out[i,j,k] = x3[j,k,i] = 6j + 2k + i, with out shape [2,2,3].
        Check.Shape([2, 2, 3], r["t3"]);
        var expected = new List<double>();
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
                for (int k = 0; k < 3; k++)
                    expected.Add(6 * j + 2 * k + i);
        Check.Close([.. expected], r["t3"]);
    }

    [Fact]
    public void SliceAlongAnAxis()
    {
        var m = new TestModel();
        var x = m.Input("x", F([2, 3], Six));
        m.Graph.SetOutput("cols", m.B.Slice(x, 1, 1, 3));
        m.Graph.SetOutput("rows", m.B.Slice(x, 0, 1, 2));
        var r = m.RunAll();
        Check.Shape([2, 2], r["cols"]);
        Check.Close([1, 2, 4, 5], r["cols"]);
        Check.Close([3, 4, 5], r["rows"]);
    }

    [Fact]
    public void SlicePastASymbolicAxisIsAnErrorNamingTheNode()
    {
        var m = new TestModel();
        var x = m.Input("x", F([1, 3], 1, 2, 3), new TensorType(DType.F32, 1, Dim.Sym("seq")));
        m.B.CurrentName = "head";
        var e = Assert.Throws<McException>(() => m.Run(m.B.Slice(x, 1, 0, 4)));
        Assert.Contains("slice 'head'", e.Message);
        Assert.Contains("[0:4]", e.Message);
    }

    [Fact]
    public void ConcatAlongEitherAxis()
    {
        var m = new TestModel();
        var a = m.Input("a", F([2, 2], 1, 2, 3, 4));
        var b = m.Input("b", F([2, 1], 5, 6));
        var c = m.Input("c", F([1, 2], 7, 8));
        m.Graph.SetOutput("cols", m.Add(OpKind.Concat, [a, b], A(("axis", 1))));
        m.Graph.SetOutput("rows", m.Add(OpKind.Concat, [a, c, a], A(("axis", 0))));
        var r = m.RunAll();
        Check.Shape([2, 3], r["cols"]);
        Check.Close([1, 2, 5, 3, 4, 6], r["cols"]);
        Check.Shape([5, 2], r["rows"]);
        Check.Close([1, 2, 3, 4, 7, 8, 1, 2, 3, 4], r["rows"]);
    }

    [Fact]
    public void ConcatOfIntegers()
    {
        var m = new TestModel();
        var y = m.Run(m.Add(OpKind.Concat, [m.Input("a", Ints([2], 1, 2)), m.Input("b", Ints([1], 3))], A(("axis", 0))));
        Assert.Equal([1L, 2, 3], y.I!);
    }

    [Fact]
    public void CastTruncatesFloatsTowardZeroAndConvertsBack()
    {
        var m = new TestModel();
        var x = m.Input("x", F([4], 1.7, -1.7, 2.5, -0.5));
        var toInt = m.Add(OpKind.Cast, [x], null, new TensorType(DType.I64, 4));
        m.Graph.SetOutput("i", toInt);
        m.Graph.SetOutput("f", m.Add(OpKind.Cast, [toInt], null, new TensorType(DType.F32, 4)));
        var r = m.RunAll();
        Assert.Equal(DType.I64, r["i"].DType);
        Assert.Equal([1L, -1, 2, 0], r["i"].I!);
        Check.Close([1, -1, 2, 0], r["f"]);
    }
}
