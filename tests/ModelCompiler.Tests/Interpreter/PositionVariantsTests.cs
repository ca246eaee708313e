using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using static ModelCompiler.Tests.Interpreter.TestModel;

namespace ModelCompiler.Tests.Interpreter;

/// <summary>xpos: RoPE times ζ_i^(±n/γ), ζ_i = (2i + 0.4·D)/(1.4·D) (Sun et al. 2022; torchscale's XPOS).</summary>
public sealed class XposOpTests
{
    private static RefTensor Run(long[] shape, double[] x, long[] pos, Attrs attrs)
    {
        var m = new TestModel();
        var xi = m.Input("x", F(shape, x));
        var p = m.Input("pos", Ints([pos.Length], pos));
        return m.Run(m.Add(OpKind.Xpos, [xi, p], attrs));
    }

    [Fact]
    public void HandComputedSinglePair()
    {
        // D = 2: one pair, angle = n (frequency θ⁰ = 1), ζ_0 = 0.4·2/(1.4·2) = 2/7; γ = 1 so the scale is (2/7)^n.
        double[] x = [1, 0, 0, 1, 1, 2];
        long[] pos = [0, 1, 3];
        double z = 2.0 / 7;
        var up = Run([1, 3, 1, 2], x, pos, A(("theta", 10000.0), ("scale_base", 1.0)));
        Check.Close([1, 0,
                     -Math.Sin(1) * z, Math.Cos(1) * z,
                     (Math.Cos(3) - 2 * Math.Sin(3)) * z * z * z, (2 * Math.Cos(3) + Math.Sin(3)) * z * z * z], up);
        var down = Run([1, 3, 1, 2], x, pos, A(("theta", 10000.0), ("scale_base", 1.0), ("downscale", true)));
        Check.Close([1, 0,
                     -Math.Sin(1) / z, Math.Cos(1) / z,
                     (Math.Cos(3) - 2 * Math.Sin(3)) / (z * z * z), (2 * Math.Cos(3) + Math.Sin(3)) / (z * z * z)], down);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void HandComputedTwoPairsInEitherLayout(bool interleaved)
    {
        // D = 4, θ = 100: frequencies 1 and 100^(−1/2) = 0.1; ζ = (0 + 1.6)/5.6 = 2/7 and (2 + 1.6)/5.6 = 9/14; γ = 2.
        // x = (a0, b0, a1, b1) interleaved or (a0, a1, b0, b1) split, at position n = 2.
        double a0 = 0.5, b0 = -1, a1 = 2, b1 = 0.25;
        double[] x = interleaved ? [a0, b0, a1, b1] : [a0, a1, b0, b1];
        var y = Run([1, 1, 1, 4], x, [2], A(("theta", 100.0), ("scale_base", 2.0), ("interleaved", interleaved)));
        double s0 = 2.0 / 7, s1 = 9.0 / 14; // ζ^(2/2)
        double c0 = Math.Cos(2), n0 = Math.Sin(2), c1 = Math.Cos(0.2), n1 = Math.Sin(0.2);
        double ya0 = (a0 * c0 - b0 * n0) * s0, yb0 = (b0 * c0 + a0 * n0) * s0;
        double ya1 = (a1 * c1 - b1 * n1) * s1, yb1 = (b1 * c1 + a1 * n1) * s1;
        Check.Close(interleaved ? [ya0, yb0, ya1, yb1] : [ya0, ya1, yb0, yb1], y);
    }

    [Fact]
    public void QueryKeyProductsDependOnlyOnTheDistance()
    {
        // q at n (upscaled) · k at m (downscaled) = Σ_i ζ_i^((n−m)/γ)·(rotation by n−m): shifting both positions keeps it.
        const int D = 8;
        var q = Noise(1, D);
        var k = Noise(2, D);
        double Dot(long n, long m)
        {
            var a = Run([1, 1, 1, D], q, [n], A(("theta", 10000.0), ("scale_base", 16.0))).F!;
            var b = Run([1, 1, 1, D], k, [m], A(("theta", 10000.0), ("scale_base", 16.0), ("downscale", true))).F!;
            return a.Zip(b, (u, v) => u * v).Sum();
        }
        double d1 = Dot(7, 3), d2 = Dot(107, 103), d3 = Dot(4, 0);
        Assert.Equal(d1, d2, 1e-12);
        Assert.Equal(d1, d3, 1e-12);
        Assert.True(Math.Abs(d1 - Dot(7, 4)) > 1e-3);
    }

    [Fact]
    public void RejectsAnOddHeadDimOrABadScaleBase()
    {
        var m = new TestModel();
        var p = m.Input("pos", Ints([2], 0, 1));
        Assert.Throws<ShapeError>(() => m.Add(OpKind.Xpos, [m.Input("odd", F([1, 2, 1, 3], new double[6])), p]));
        Assert.Throws<ShapeError>(() => m.Add(OpKind.Xpos, [m.Input("x", F([1, 2, 1, 4], new double[8])), p], A(("scale_base", 0.0))));
    }
}

/// <summary>relative_scores: out[b, h, i, j] = x[b, i, h]·table[qpos_i − kpos_j, h], 0 for distances without a row.</summary>
public sealed class RelativeScoresOpTests
{
    [Fact]
    public void HandComputed()
    {
        // x rows (1, 2) at position 0 and (3, 4) at 1; table rows r0 = (10, 20), r1 = (100, 1000).
        var m = new TestModel();
        var x = m.Input("x", F([1, 2, 1, 2], 1, 2, 3, 4));
        var t = m.Input("table", F([2, 1, 2], 10, 20, 100, 1000));
        var pos = m.Input("pos", Ints([2], 0, 1));
        var y = m.Run(m.Add(OpKind.RelativeScores, [x, t, pos, pos]));
        Check.Shape([1, 1, 2, 2], y);
        // (0,0): x0·r0 = 50; (0,1): distance −1 → 0; (1,0): x1·r1 = 4300; (1,1): x1·r0 = 110.
        Check.Close([50, 0, 4300, 110], y);
    }

    [Fact]
    public void MatchesADirectLoopWithOffsetsAndHeads()
    {
        const int B = 2, S = 2, H = 3, D = 4, L = 3, T = 4;
        long[] qpos = [5, 6], kpos = [3, 4, 5, 6];
        var xs = Noise(3, B * S * H * D);
        var ts = Noise(4, L * H * D);
        var m = new TestModel();
        var y = m.Run(m.Add(OpKind.RelativeScores,
            [m.Input("x", F([B, S, H, D], xs)), m.Input("t", F([L, H, D], ts)), m.Input("q", Ints([S], qpos)), m.Input("k", Ints([T], kpos))]));
        Check.Shape([B, H, S, T], y);
        var expected = new double[B * H * S * T];
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < S; i++)
                    for (int j = 0; j < T; j++)
                    {
                        long dist = qpos[i] - kpos[j]; // 2,1,0,−1 for i = 0; 3,2,1,0 for i = 1 (3 has no row)
                        if (dist < 0 || dist >= L) continue;
                        for (int d = 0; d < D; d++)
                            expected[((b * H + h) * S + i) * T + j] += xs[((b * S + i) * H + h) * D + d] * ts[(dist * H + h) * D + d];
                    }
        Assert.Equal(0, y.F![(0 * S + 1) * T + 0]); // distance 3 ≥ L
        Assert.Equal(0, y.F![(0 * S + 0) * T + 3]); // distance −1
        Check.Close(expected, y);
    }

    [Fact]
    public void RejectsATableOfOtherHeads()
    {
        var m = new TestModel();
        var pos = m.Input("pos", Ints([2], 0, 1));
        var x = m.Input("x", F([1, 2, 2, 2], new double[8]));
        var e = Assert.Throws<ShapeError>(() => m.Add(OpKind.RelativeScores, [x, m.Input("t", F([2, 1, 2], new double[4])), pos, pos]));
        Assert.Contains("table", e.Message);
    }
}
