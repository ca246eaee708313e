using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using static ModelCompiler.Tests.Interpreter.TestModel;

namespace ModelCompiler.Tests.Interpreter;

public sealed class AlibiTests
{
    private static double[] Run(long heads, long[] qpos, long[] kpos, out RefTensor y)
    {
        var m = new TestModel();
        var q = m.Input("q", Ints([qpos.Length], qpos));
        var k = m.Input("k", Ints([kpos.Length], kpos));
        y = m.Run(m.Add(OpKind.AlibiBias, [q, k], A(("heads", heads))));
        return y.F!;
    }

    private static double[] Expected(double[] slopes, long[] qpos, long[] kpos) =>
        slopes.SelectMany(s => qpos.SelectMany(i => kpos.Select(j => s * (j - i)))).ToArray();

    [Fact]
    public void EightHeadsHaveSlopesOneHalfToOne256th()
    {
        long[] q = [2, 3], k = [0, 1, 2, 3];
        double[] slopes = [1 / 2.0, 1 / 4.0, 1 / 8.0, 1 / 16.0, 1 / 32.0, 1 / 64.0, 1 / 128.0, 1 / 256.0];
        Run(8, q, k, out var y);
        Check.Shape([1, 8, 2, 4], y);
        Check.Close(Expected(slopes, q, k), y);
    }

    [Fact]
    public void SixHeadsInterleaveTheExtraSlopes()
    {
        // n = 4: base 2^(−8/4) = 1/4 → 1/4, 1/16, 1/64, 1/256; the 2 extra heads take the odd powers
        // 1 and 3 of 2^(−8/8) = 1/2 → 1/2, 1/8.
        long[] q = [0, 1, 2], k = [0, 1, 2];
        double[] slopes = [1 / 4.0, 1 / 16.0, 1 / 64.0, 1 / 256.0, 1 / 2.0, 1 / 8.0];
        Run(6, q, k, out var y);
        Check.Shape([1, 6, 3, 3], y);
        Check.Close(Expected(slopes, q, k), y);
    }
}

public sealed class RelativePositionBiasTests
{
    /// <summary>The buckets of kpos − qpos for each rel, read through a one-head table whose row b holds b.</summary>
    private static long[] Buckets(long[] rels, bool bidirectional, long numBuckets, long maxDistance)
    {
        var m = new TestModel();
        var table = m.Weight("table", F([numBuckets, 1], Enumerable.Range(0, (int)numBuckets).Select(b => (double)b).ToArray()));
        var q = m.Input("q", Ints([1], 1000));
        var k = m.Input("k", Ints([rels.Length], rels.Select(r => 1000 + r).ToArray()));
        var y = m.Run(m.Add(OpKind.RelativePositionBias, [table, q, k],
            A(("bidirectional", bidirectional), ("num_buckets", numBuckets), ("max_distance", maxDistance))));
        return y.F!.Select(v => (long)v).ToArray();
    }

    // Worked from HF T5's _relative_position_bucket. Bidirectional, 32 buckets, max distance 128: 16 buckets
    // per direction (positive rel adds 16), max_exact 8; large rel → 8 + ⌊ln(rel/8)/ln(16)·8⌋, capped at 15.
    // e.g. rel −20: ln 2.5/ln 16·8 = 2.64 → 10; rel 200: 8 + 9 = 17 → 15, +16 → 31; rel −16: exactly 2 → 10.
    [Fact]
    public void BidirectionalT5Buckets() =>
        Assert.Equal([1L, 17, 0, 7, 23, 24, 10, 31, 15, 26, 10, 12, 14],
            Buckets([-1, 1, 0, -7, 7, 8, -20, 200, -127, 16, -16, -32, -64], true, 32, 128));

    // Causal: rel = −min(rel, 0) (keys after the query all share bucket 0), max_exact 16;
    // large rel → 16 + ⌊ln(rel/16)/ln 8·16⌋ capped at 31. e.g. −32: 16·(1/3) = 5.33 → 21; −100: 14.1 → 30.
    [Fact]
    public void CausalT5Buckets() =>
        Assert.Equal([0L, 0, 1, 15, 16, 21, 26, 30, 31, 31, 31],
            Buckets([5, 0, -1, -15, -16, -32, -64, -100, -127, -128, -1000], false, 32, 128));

    // The oracle models' configuration: 8 buckets, max distance 16.
    // Bidirectional: 4 per direction, max_exact 2, large → 2 + ⌊ln(rel/2)/ln 8·2⌋ capped at 3.
    [Fact]
    public void BidirectionalT5BucketsOfTheOracleConfig() =>
        Assert.Equal([0L, 5, 1, 6, 2, 2, 3, 3, 6, 7],
            Buckets([0, 1, -1, 2, -2, -3, -6, -16, 5, 12], true, 8, 16));

    // Causal: max_exact 4, large → 4 + ⌊ln(rel/4)/ln 4·4⌋ capped at 7 (rel 8 lands exactly on 2 → 6).
    [Fact]
    public void CausalT5BucketsOfTheOracleConfig() =>
        Assert.Equal([0L, 0, 3, 4, 5, 6, 7, 7, 7],
            Buckets([3, 0, -3, -4, -6, -8, -12, -16, -100], false, 8, 16));

    [Fact]
    public void BiasIsLaidOutHeadsQueriesKeys()
    {
        // Two heads: table[b, h] = 10b + h; qpos [0, 1], kpos [0, 1, 2], causal with 8 buckets (rels < 4 are exact).
        var m = new TestModel();
        var table = m.Weight("table", F([8, 2], Enumerable.Range(0, 16).Select(e => 10.0 * (e / 2) + e % 2).ToArray()));
        var y = m.Run(m.Add(OpKind.RelativePositionBias, [table, m.Input("q", Ints([2], 0, 1)), m.Input("k", Ints([3], 0, 1, 2))],
            A(("bidirectional", false), ("num_buckets", 8), ("max_distance", 16))));
        Check.Shape([1, 2, 2, 3], y);
        // bucket(k − q): row q=0 → [0, 0, 0]; row q=1 → [1, 0, 0].
        Check.Close([0, 0, 0, 10, 0, 0, 1, 1, 1, 11, 1, 1], y);
    }
}
