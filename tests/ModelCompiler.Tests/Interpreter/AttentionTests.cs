using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using static ModelCompiler.Tests.Interpreter.TestModel;

namespace ModelCompiler.Tests.Interpreter;

public sealed class AttentionTests
{
    private sealed record Case(int B, int S, int T, int Hq, int Hkv, int D, int Dv)
    {
        public double[] Q { get; } = Noise(20, (long)B * S * Hq * D);
        public double[] K { get; } = Noise(21, (long)B * T * Hkv * D).Select(v => 2 * v).ToArray();
        public double[] V { get; } = Noise(22, (long)B * T * Hkv * Dv);
    }

    /// <summary>
    /// Attention straight from its definition, one (batch, head, query) at a time. <paramref name="visible"/>(p, j)
    /// says whether the query at absolute position p sees key j; <paramref name="bias"/>(b, h, i, j) adds to the score.
    /// </summary>
    private static double[] Naive(Case c, double scale, Func<int, int, bool> visible, Func<int, int, int, int, double>? bias = null)
    {
        var output = new double[c.B * c.S * c.Hq * c.Dv];
        for (int b = 0; b < c.B; b++)
            for (int h = 0; h < c.Hq; h++)
                for (int i = 0; i < c.S; i++)
                {
                    int p = i + c.T - c.S, kvh = h * c.Hkv / c.Hq;
                    var keys = Enumerable.Range(0, c.T).Where(j => visible(p, j)).ToArray();
                    if (keys.Length == 0) continue;
                    var scores = keys.Select(j =>
                    {
                        double dot = 0;
                        for (int d = 0; d < c.D; d++)
                            dot += c.Q[((b * c.S + i) * c.Hq + h) * c.D + d] * c.K[((b * c.T + j) * c.Hkv + kvh) * c.D + d];
                        return scale * dot + (bias?.Invoke(b, h, i, j) ?? 0);
                    }).ToArray();
                    double max = scores.Max();
                    var w = scores.Select(s => Math.Exp(s - max)).ToArray();
                    double z = w.Sum();
                    for (int d = 0; d < c.Dv; d++)
                    {
                        double acc = 0;
                        for (int n = 0; n < keys.Length; n++) acc += w[n] / z * c.V[((b * c.T + keys[n]) * c.Hkv + kvh) * c.Dv + d];
                        output[((b * c.S + i) * c.Hq + h) * c.Dv + d] = acc;
                    }
                }
        return output;
    }

    private static RefTensor Run(Case c, Attrs attrs, RefTensor? bias = null)
    {
        var m = new TestModel();
        var q = m.Input("q", F([c.B, c.S, c.Hq, c.D], c.Q));
        var k = m.Input("k", F([c.B, c.T, c.Hkv, c.D], c.K));
        var v = m.Input("v", F([c.B, c.T, c.Hkv, c.Dv], c.V));
        List<Node> ins = [q, k, v];
        if (bias is not null) ins.Add(m.Input("bias", bias));
        var y = m.Run(m.Add(OpKind.Attention, ins, attrs));
        Check.Shape([c.B, c.S, c.Hq, c.Dv], y);
        return y;
    }

    private static readonly Case Square = new(2, 5, 5, 2, 2, 4, 3);

    [Fact]
    public void NoMaskSeesEveryKeyWithTheDefaultScale()
    {
        var y = Run(Square, A());
        Check.Close(Naive(Square, 1 / Math.Sqrt(4), (_, _) => true), y);
    }

    [Fact]
    public void CausalWithAnExplicitScale()
    {
        var y = Run(Square, A(("mask", "causal"), ("scale", 0.3)));
        Check.Close(Naive(Square, 0.3, (p, j) => j <= p), y);
    }

    [Fact]
    public void PrefixMaskSeesThePrefixBidirectionally()
    {
        var y = Run(Square, A(("mask", "prefix"), ("prefix", 3)));
        Check.Close(Naive(Square, 0.5, (p, j) => j < 3 || j <= p), y);
    }

    [Fact]
    public void SlidingWindowAndSinks()
    {
        var window = Run(Square, A(("mask", "causal"), ("window", 2)));
        Check.Close(Naive(Square, 0.5, (p, j) => j <= p && p - j < 2), window);
        var sinks = Run(Square, A(("mask", "causal"), ("window", 2), ("sinks", 1)));
        Check.Close(Naive(Square, 0.5, (p, j) => j <= p && (p - j < 2 || j == 0)), sinks);
    }

    [Fact]
    public void DecodeStyleQueriesAreTheLastPositions()
    {
        // 2 queries over 6 keys: they sit at positions 4 and 5.
        var c = new Case(1, 2, 6, 2, 1, 4, 4);
        var y = Run(c, A(("mask", "causal")));
        Check.Close(Naive(c, 0.5, (p, j) => j <= p), y);
        // Query 0 must not see key 5.
        Assert.True(Math.Abs(Naive(c, 0.5, (_, _) => true)[0] - y.F![0]) > 1e-9);
    }

    [Fact]
    public void ARowWithNoVisibleKeyIsZero()
    {
        // 3 queries, 1 key: query 0 is at position −2 under a causal mask and sees nothing.
        var c = new Case(1, 3, 1, 1, 1, 2, 2);
        var y = Run(c, A(("mask", "causal")));
        Assert.Equal(new[] { 0.0, 0.0 }, y.F![..2]);
        Check.Close(Naive(c, 1 / Math.Sqrt(2), (p, j) => j <= p), y);
        Assert.Equal(c.V, y.F![4..6]); // the last query sees only key 0
    }

    [Fact]
    public void GroupedQueryAttentionEqualsRepeatedKvHeads()
    {
        // Hq = 4 over Hkv = 2: query heads 0,1 read kv head 0 and 2,3 read kv head 1.
        var gqa = new Case(2, 3, 3, 4, 2, 4, 4);
        var y = Run(gqa, A(("mask", "causal")));
        Check.Close(Naive(gqa, 0.5, (p, j) => j <= p), y);

        var m = new TestModel();
        var q = m.Input("q", F([2, 3, 4, 4], gqa.Q));
        var k = m.Input("k", F([2, 3, 2, 4], gqa.K));
        var v = m.Input("v", F([2, 3, 2, 4], gqa.V));
        Node Repeat(Node x) => m.B.Reshape(
            m.Add(OpKind.Concat, [m.B.Reshape(x, 2, 3, 2, 1, 4), m.B.Reshape(x, 2, 3, 2, 1, 4)], A(("axis", 3))), 2, 3, 4, 4);
        var mha = m.Run(m.Add(OpKind.Attention, [q, Repeat(k), Repeat(v)], A(("mask", "causal"))));
        Check.Close(mha.F!, y);
    }

    [Fact]
    public void MultiQueryAttention()
    {
        var mqa = new Case(1, 4, 4, 3, 1, 2, 5);
        Check.Close(Naive(mqa, 1 / Math.Sqrt(2), (p, j) => j <= p), Run(mqa, A(("mask", "causal"))));
    }

    [Fact]
    public void BiasIsAddedToTheScoresWithBroadcasting()
    {
        // A full [B, Hq, S, T] bias, and a [Hq, 1, T] one broadcast over batch and queries.
        var full = Noise(30, Square.B * Square.Hq * Square.S * Square.T);
        int S = Square.S, T = Square.T, Hq = Square.Hq;
        var y = Run(Square, A(("mask", "causal")), F([Square.B, Hq, S, T], full));
        Check.Close(Naive(Square, 0.5, (p, j) => j <= p, (b, h, i, j) => full[((b * Hq + h) * S + i) * T + j]), y);

        var perHead = Noise(31, Hq * T).Select(v => 3 * v).ToArray();
        var z = Run(Square, A(), F([Hq, 1, T], perHead));
        Check.Close(Naive(Square, 0.5, (_, _) => true, (_, h, _, j) => perHead[h * T + j]), z);
    }
}
