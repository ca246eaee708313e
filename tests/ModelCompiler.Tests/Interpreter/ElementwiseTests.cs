using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Runtime;
using static ModelCompiler.Tests.Interpreter.TestModel;

namespace ModelCompiler.Tests.Interpreter;

public sealed class ErfTests
{
    // Reference values from the literature / glibc's erf, independent of the implementation.
    [Theory]
    [InlineData(0.5, 0.5204998778130465)]
    [InlineData(1.0, 0.8427007929497149)]
    [InlineData(2.0, 0.9953222650189527)]
    [InlineData(-3.0, -0.9999779095030014)]
    [InlineData(0.01, 0.011283415555849618)]
    [InlineData(0.0, 0.0)]
    public void ErfMatchesKnownValues(double x, double expected) =>
        Assert.True(Math.Abs(SpecialFunctions.Erf(x) - expected) <= 1e-15 * Math.Abs(expected), $"erf({x}) = {SpecialFunctions.Erf(x):R}");

    [Theory]
    [InlineData(0.3, 0.6713732405408726)]
    [InlineData(1.0, 0.15729920705028513)]
    [InlineData(2.0, 0.004677734981047265)]
    [InlineData(5.0, 1.5374597944280351e-12)]
    [InlineData(10.0, 2.088487583762545e-45)]
    [InlineData(-1.0, 1.842700792949715)]
    public void ErfcKeepsRelativeAccuracyInTheTail(double x, double expected) =>
        Assert.True(Math.Abs(SpecialFunctions.Erfc(x) - expected) <= 2e-15 * expected, $"erfc({x}) = {SpecialFunctions.Erfc(x):R}");

    [Fact]
    public void ErfIsOddAndSaturates()
    {
        for (double x = -4; x <= 4; x += 0.37)
            Assert.Equal(-SpecialFunctions.Erf(x), SpecialFunctions.Erf(-x));
        Assert.Equal(1.0, SpecialFunctions.Erf(double.PositiveInfinity));
        Assert.Equal(-1.0, SpecialFunctions.Erf(double.NegativeInfinity));
        Assert.Equal(0.0, SpecialFunctions.Erfc(double.PositiveInfinity));
        Assert.True(double.IsNaN(SpecialFunctions.Erf(double.NaN)));
    }
}

public sealed class ElementwiseTests
{
    [Fact]
    public void AddBroadcastsARowOverAMatrix()
    {
        var m = new TestModel();
        var x = m.Input("x", F([2, 3], 1, 2, 3, 4, 5, 6));
        var b = m.Input("b", F([3], 10, 20, 30));
        var y = m.Run(m.B.Binary(OpKind.Add, x, b));
        Check.Shape([2, 3], y);
        Check.Close([11, 22, 33, 14, 25, 36], y);
    }

    [Fact]
    public void MulByAScalarConst()
    {
        var m = new TestModel();
        var x = m.Input("x", F([2, 2], 1, -2, 0.5, 4));
        var y = m.Run(m.B.Binary(OpKind.Mul, x, m.B.Const(2.5)));
        Check.Shape([2, 2], y);
        Check.Close([2.5, -5, 1.25, 10], y);
    }

    [Theory]
    [InlineData(OpKind.Sub, new double[] { -9, -19, -29, -8, -18, -28 })]
    [InlineData(OpKind.Div, new double[] { 0.1, 0.05, 1.0 / 30, 0.2, 0.1, 2.0 / 30 })]
    [InlineData(OpKind.Maximum, new double[] { 10, 20, 30, 10, 20, 30 })]
    [InlineData(OpKind.Minimum, new double[] { 1, 1, 1, 2, 2, 2 })]
    [InlineData(OpKind.Pow, new double[] { 1, 1, 1, 1024, 1048576, 1073741824 })]
    public void BinaryOpsBroadcastAColumnAgainstARow(OpKind op, double[] expected)
    {
        // [2,1] op [1,3] → [2,3]: both operands stretch.
        var m = new TestModel();
        var a = m.Input("a", F([2, 1], 1, 2));
        var b = m.Input("b", F([1, 3], 10, 20, 30));
        var y = m.Run(m.B.Binary(op, a, b));
        Check.Shape([2, 3], y);
        Check.Close(expected, y);
    }

    [Fact]
    public void IntegerArithmeticIsExactAndDivisionTruncatesTowardZero()
    {
        var m = new TestModel();
        var a = m.Input("a", Ints([4], 7, -7, 7, -7));
        var b = m.Input("b", Ints([4], 2, 2, -2, -2));
        var div = m.B.Binary(OpKind.Div, a, b);
        var big = m.B.Binary(OpKind.Mul, a, m.B.Const(1L << 40, DType.I64));
        var pow = m.B.Binary(OpKind.Pow, b, m.B.Const(3, DType.I64));
        m.Graph.SetOutput("div", div);
        m.Graph.SetOutput("big", big);
        m.Graph.SetOutput("pow", pow);
        var r = m.RunAll();
        Assert.Equal([3L, -3, -3, 3], r["div"].I!);
        Assert.Equal([7L << 40, -7L << 40, 7L << 40, -7L << 40], r["big"].I!);
        Assert.Equal([8L, 8, -8, -8], r["pow"].I!);
        Assert.Equal(DType.I64, r["div"].DType);
    }

    [Fact]
    public void IntegerDivisionByZeroNamesTheNode()
    {
        var m = new TestModel();
        m.B.CurrentName = "ratio";
        var a = m.Input("a", Ints([2], 1, 2));
        var e = Assert.Throws<McException>(() => m.Run(m.B.Binary(OpKind.Div, a, m.B.Const(0, DType.I64))));
        Assert.Contains("div 'ratio'", e.Message);
    }

    private static readonly double[] Points = [-6, -2.5, -1, -0.3, 0, 0.7, 1, 3.2];

    public static TheoryData<OpKind> UnaryOps => new()
    {
        OpKind.Neg, OpKind.Exp, OpKind.Tanh, OpKind.Sigmoid, OpKind.Relu, OpKind.Abs, OpKind.GeluTanh, OpKind.Silu,
    };

    [Theory]
    [MemberData(nameof(UnaryOps))]
    public void UnaryOpsMatchTheirFormulas(OpKind op)
    {
        Func<double, double> f = op switch
        {
            OpKind.Neg => x => -x,
            OpKind.Exp => Math.Exp,
            OpKind.Tanh => Math.Tanh,
            OpKind.Sigmoid => x => 1 / (1 + Math.Exp(-x)),
            OpKind.Relu => x => Math.Max(x, 0),
            OpKind.Abs => Math.Abs,
            OpKind.GeluTanh => x => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))),
            OpKind.Silu => x => x / (1 + Math.Exp(-x)),
            _ => throw new ArgumentOutOfRangeException(nameof(op)),
        };
        var m = new TestModel();
        var x = m.Input("x", F([2, 4], Points));
        Check.Close(Points.Select(f).ToArray(), m.Run(m.B.Unary(op, x)));
    }

    [Fact]
    public void LogSqrtRsqrtOnPositiveValues()
    {
        double[] pts = [0.01, 0.5, 1, 2, 9, 1e6];
        foreach (var (op, f) in new (OpKind, Func<double, double>)[]
                 { (OpKind.Log, Math.Log), (OpKind.Sqrt, Math.Sqrt), (OpKind.Rsqrt, x => 1 / Math.Sqrt(x)) })
        {
            var m = new TestModel();
            var x = m.Input("x", F([6], pts));
            Check.Close(pts.Select(f).ToArray(), m.Run(m.B.Unary(op, x)));
        }
    }

    [Fact]
    public void GeluIsXTimesTheNormalCdf()
    {
        // x·Φ(x) from tables of the normal distribution (Φ(1) = 0.8413447460685429, ...).
        double[] xs = [1, -1, 2, 0.5, 3, -6, 0];
        double[] expected = [0.8413447460685429, -0.15865525393145707, 1.9544997361036416, 0.34573123063700656, 2.99595030590511, -5.919525870226207e-09, 0];
        var m = new TestModel();
        var x = m.Input("x", F([7], xs));
        var y = m.Run(m.B.Unary(OpKind.Gelu, x));
        for (int i = 0; i < xs.Length; i++)
            Assert.True(Math.Abs(y.F![i] - expected[i]) <= 1e-14 * Math.Abs(expected[i]), $"gelu({xs[i]}) = {y.F[i]:R}");
    }
}
