using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Runtime;
using static ModelCompiler.Tests.Interpreter.TestModel;

namespace ModelCompiler.Tests.Interpreter;

public sealed class EmbeddingAndPositionsTests
{
    [Fact]
    public void EmbeddingGathersTableRows()
    {
        var m = new TestModel();
        var ids = m.Input("ids", Ints([2, 2], 3, 0, 1, 3));
        var table = m.Weight("table", F([4, 3], 0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32));
        var y = m.Run(m.Add(OpKind.Embedding, [ids, table]));
        Check.Shape([2, 2, 3], y);
        Check.Close([30, 31, 32, 0, 1, 2, 10, 11, 12, 30, 31, 32], y);
    }

    [Fact]
    public void EmbeddingIdOutOfRangeNamesTheNodeAndItsSource()
    {
        var m = new TestModel();
        var ids = m.Input("ids", Ints([1, 2], 5, 300));
        var table = m.Weight("table", F([256, 2], new double[512]));
        m.B.CurrentName = "embed";
        m.B.CurrentSpan = new SourceSpan("/models/llama.arch", 3, 5);
        var node = m.Add(OpKind.Embedding, [ids, table]);
        var e = Assert.Throws<McException>(() => m.Run(node));
        Assert.Equal("embedding 'embed' (llama.arch:3:5): token id 300 is outside the table's 256 rows", e.Message);

        var negative = new TestModel();
        var y = negative.Add(OpKind.Embedding, [negative.Input("ids", Ints([1], -1)), negative.Weight("t", F([2, 1], 0, 0))]);
        Assert.Contains("token id -1", Assert.Throws<McException>(() => negative.Run(y)).Message);
    }

    [Fact]
    public void PositionsCountAlongAnAxisFromTheOffset()
    {
        var m = new TestModel();
        var x = m.Input("x", F([2, 5], new double[10]));
        m.Graph.SetOutput("seq", m.Add(OpKind.Positions, [x], A(("axis", -1), ("offset", 3))));
        m.Graph.SetOutput("batch", m.Add(OpKind.Positions, [x], A(("axis", 0))));
        var r = m.RunAll();
        Assert.Equal(DType.I64, r["seq"].DType);
        Assert.Equal([3L, 4, 5, 6, 7], r["seq"].I!);
        Assert.Equal([0L, 1], r["batch"].I!);
    }

    [Fact]
    public void SinusoidalPositionsInterleavedAndSplit()
    {
        // dim 4, base 10000: frequencies 1 and 10000^(−1/2) = 0.01.
        long[] pos = [0, 1, 5];
        var m = new TestModel();
        var p = m.Input("pos", Ints([3], pos));
        m.Graph.SetOutput("inter", m.Add(OpKind.SinusoidalPositions, [p], A(("dim", 4))));
        m.Graph.SetOutput("split", m.Add(OpKind.SinusoidalPositions, [p], A(("dim", 4), ("interleaved", false))));
        m.Graph.SetOutput("base", m.Add(OpKind.SinusoidalPositions, [p], A(("dim", 2), ("base", 7.0))));
        var r = m.RunAll();
        Check.Shape([3, 4], r["inter"]);
        Check.Close(pos.SelectMany(t => new[] { Math.Sin(t), Math.Cos(t), Math.Sin(0.01 * t), Math.Cos(0.01 * t) }).ToArray(), r["inter"]);
        Check.Close(pos.SelectMany(t => new[] { Math.Sin(t), Math.Sin(0.01 * t), Math.Cos(t), Math.Cos(0.01 * t) }).ToArray(), r["split"]);
        // With dim 2 only frequency 1 exists, whatever the base.
        Check.Close(pos.SelectMany(t => new[] { Math.Sin(t), Math.Cos(t) }).ToArray(), r["base"]);
    }
}

public sealed class RopeTests
{
    private const int B = 2, S = 3, H = 2, D = 8;
    private static readonly long[] Pos = [0, 5, 9];

    /// <summary>
    /// The rotation written directly from the definition: pair (a, b) of frequency i is rotated by
    /// angle p·θ^(−2i/rd); the pairs are (i, i + rd/2) half-split or (2i, 2i+1) interleaved.
    /// </summary>
    private static double[] Naive(double[] x, int rd, bool interleaved, Func<long, double> position, double theta)
    {
        var y = (double[])x.Clone();
        for (int b = 0; b < B; b++)
            for (int s = 0; s < S; s++)
                for (int h = 0; h < H; h++)
                {
                    int o = ((b * S + s) * H + h) * D;
                    for (int i = 0; i < rd / 2; i++)
                    {
                        double angle = position(Pos[s]) / Math.Pow(theta, 2.0 * i / rd);
                        int ia = interleaved ? o + 2 * i : o + i, ib = interleaved ? o + 2 * i + 1 : o + i + rd / 2;
                        y[ia] = x[ia] * Math.Cos(angle) - x[ib] * Math.Sin(angle);
                        y[ib] = x[ib] * Math.Cos(angle) + x[ia] * Math.Sin(angle);
                    }
                }
        return y;
    }

    private static RefTensor RunRope(double[] x, Attrs attrs)
    {
        var m = new TestModel();
        var xi = m.Input("x", F([B, S, H, D], x));
        var p = m.Input("pos", Ints([S], Pos));
        return m.Run(m.Add(OpKind.Rope, [xi, p], attrs));
    }

    [Theory]
    [InlineData(8, false)]
    [InlineData(8, true)]
    [InlineData(4, false)]
    [InlineData(4, true)]
    public void MatchesADirectLoop(int rd, bool interleaved)
    {
        var x = Noise(10, B * S * H * D);
        var y = RunRope(x, A(("theta", 10000.0), ("rotary_dim", rd), ("interleaved", interleaved)));
        var expected = Naive(x, rd, interleaved, p => p, 10000);
        Check.Close(expected, y);
        if (rd < D) // partial rotary: the tail of each head is untouched
            for (int e = 0; e < x.Length; e++)
                if (e % D >= rd) Assert.Equal(x[e], y.F![e]);
    }

    [Fact]
    public void HandComputedSinglePair()
    {
        // One pair (a, b) = (1, 2) at positions 0 and 1 with rd = 2: angle = p·θ⁰ = p.
        var m = new TestModel();
        var x = m.Input("x", F([1, 2, 1, 2], 1, 2, 1, 2));
        var p = m.Input("pos", Ints([2], 0, 1));
        var y = m.Run(m.Add(OpKind.Rope, [x, p], A(("theta", 10000.0), ("rotary_dim", 2))));
        Check.Close([1, 2, Math.Cos(1) - 2 * Math.Sin(1), 2 * Math.Cos(1) + Math.Sin(1)], y);
    }

    [Fact]
    public void LinearScalingDividesThePositions()
    {
        var x = Noise(11, B * S * H * D);
        var y = RunRope(x, A(("theta", 500.0), ("rotary_dim", 8), ("scaling", "linear"), ("factor", 4.0)));
        Check.Close(Naive(x, 8, false, p => p / 4.0, 500), y);
    }

    [Fact]
    public void DynamicScalingGrowsTheBasePastTheTrainedLength()
    {
        var x = Noise(12, B * S * H * D);
        // max position 9 → L = 10 > 4: base = θ·(2·10/4 − 1)^(8/6).
        var y = RunRope(x, A(("theta", 100.0), ("rotary_dim", 8), ("scaling", "dynamic"), ("factor", 2.0), ("original_max_positions", 4)));
        Check.Close(Naive(x, 8, false, p => p, 100 * Math.Pow(4.0, 8.0 / 6.0)), y);
        // Within the trained length the base is unchanged.
        var z = RunRope(x, A(("theta", 100.0), ("rotary_dim", 8), ("scaling", "dynamic"), ("factor", 2.0), ("original_max_positions", 10)));
        Check.Close(Naive(x, 8, false, p => p, 100), z);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void PreservesTheNormOfEveryPair(bool interleaved)
    {
        var x = Noise(13, B * S * H * D);
        var y = RunRope(x, A(("theta", 10000.0), ("rotary_dim", D), ("interleaved", interleaved))).F!;
        for (int o = 0; o < x.Length; o += D)
            for (int i = 0; i < D / 2; i++)
            {
                int a = interleaved ? o + 2 * i : o + i, b = interleaved ? o + 2 * i + 1 : o + i + D / 2;
                Assert.Equal(x[a] * x[a] + x[b] * x[b], y[a] * y[a] + y[b] * y[b], 1e-14);
            }
    }
}
