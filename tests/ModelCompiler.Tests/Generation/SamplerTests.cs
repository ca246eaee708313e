using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Generation;

namespace ModelCompiler.Tests.Generation;

/// <summary>Temperature, top-k and top-p against distributions computed by hand, and the seeded generator against
/// the published test vectors of its algorithms.</summary>
public class SamplerTests
{
    private static readonly double[] P = [0.5, 0.25, 0.15, 0.1];

    private static float[] Logits => P.Select(p => (float)Math.Log(p)).ToArray();

    private static void AssertDistribution(IReadOnlyDictionary<int, double> actual, params (int Id, double P)[] expected)
    {
        Assert.Equal(expected.Select(e => e.Id).Order(), actual.Keys.Order());
        foreach (var (id, p) in expected) Assert.True(Math.Abs(actual[id] - p) < 1e-6, $"p({id}) = {actual[id]}, expected {p}");
    }

    [Fact]
    public void TemperatureOneKeepsTheSoftmax() =>
        AssertDistribution(new Sampler(new SamplingOptions(1.0), 0).Distribution(Logits), (0, 0.5), (1, 0.25), (2, 0.15), (3, 0.1));

    [Fact]
    public void TemperatureTwoTakesTheSquareRootOfEachProbability()
    {
        double sum = P.Sum(Math.Sqrt);
        AssertDistribution(new Sampler(new SamplingOptions(2.0), 0).Distribution(Logits),
            (0, Math.Sqrt(0.5) / sum), (1, Math.Sqrt(0.25) / sum), (2, Math.Sqrt(0.15) / sum), (3, Math.Sqrt(0.1) / sum));
    }

    [Fact]
    public void TopKKeepsTheKMostLikelyRenormalized() =>
        AssertDistribution(new Sampler(new SamplingOptions(1.0, TopK: 2), 0).Distribution(Logits), (0, 0.5 / 0.75), (1, 0.25 / 0.75));

    [Fact]
    public void TopPKeepsTokensUntilTheirMassReachesP()
    {
        // 0.5 < 0.7, 0.5 + 0.25 >= 0.7: the token that crosses the threshold is kept.
        AssertDistribution(new Sampler(new SamplingOptions(1.0, TopP: 0.7), 0).Distribution(Logits), (0, 0.5 / 0.75), (1, 0.25 / 0.75));
        AssertDistribution(new Sampler(new SamplingOptions(1.0, TopP: 0.8), 0).Distribution(Logits), (0, 0.5 / 0.9), (1, 0.25 / 0.9), (2, 0.15 / 0.9));
        AssertDistribution(new Sampler(new SamplingOptions(1.0, TopP: 0.3), 0).Distribution(Logits), (0, 1.0));
    }

    [Fact]
    public void TemperatureThenTopKThenTopP()
    {
        // T = 2: q ∝ sqrt(p); top-k 3 renormalizes q0..q2; top-p 0.6 keeps q0 (0.44 < 0.6) and q1 (crosses it).
        double q0 = Math.Sqrt(0.5), q1 = Math.Sqrt(0.25), q2 = Math.Sqrt(0.15);
        Assert.True(q0 / (q0 + q1 + q2) < 0.6 && (q0 + q1) / (q0 + q1 + q2) >= 0.6);
        AssertDistribution(new Sampler(new SamplingOptions(2.0, TopK: 3, TopP: 0.6), 0).Distribution(Logits), (0, q0 / (q0 + q1)), (1, q1 / (q0 + q1)));
    }

    [Fact]
    public void DrawsFollowTheDistribution()
    {
        var sampler = new Sampler(new SamplingOptions(1.0, TopK: 3), 12345);
        var counts = new int[4];
        const int n = 40_000;
        for (int i = 0; i < n; i++) counts[sampler.Next(Logits)]++;
        Assert.Equal(0, counts[3]);
        Assert.InRange(counts[0] / (double)n, 0.5 / 0.9 - 0.01, 0.5 / 0.9 + 0.01);
        Assert.InRange(counts[1] / (double)n, 0.25 / 0.9 - 0.01, 0.25 / 0.9 + 0.01);
        Assert.InRange(counts[2] / (double)n, 0.15 / 0.9 - 0.01, 0.15 / 0.9 + 0.01);
    }

    [Fact]
    public void SameSeedSameTokensOtherSeedOtherTokens()
    {
        int[] Draw(ulong seed)
        {
            var s = new Sampler(new SamplingOptions(1.0), seed);
            return Enumerable.Range(0, 64).Select(_ => s.Next(Logits)).ToArray();
        }
        Assert.Equal(Draw(7), Draw(7));
        Assert.NotEqual(Draw(7), Draw(8));
    }

    [Fact]
    public void GreedyTakesTheFirstLargestAndSkipsSuppressedIds()
    {
        float[] logits = [1, 3, 3, 2];
        var greedy = new Sampler(SamplingOptions.Greedy, 0);
        Assert.Equal(1, greedy.Next(logits));
        Assert.Equal(2, greedy.Next(logits, new HashSet<int> { 1 }));
        Assert.Equal(3, new Sampler(new SamplingOptions(1.0), 0).Next(logits, new HashSet<int> { 0, 1, 2 }));
    }

    [Theory]
    [InlineData(-0.5, 0, 1.0, "--temperature")]
    [InlineData(double.NaN, 0, 1.0, "--temperature")]
    [InlineData(1.0, -1, 1.0, "--top-k")]
    [InlineData(1.0, 0, 0.0, "--top-p")]
    [InlineData(1.0, 0, 1.5, "--top-p")]
    public void OutOfRangeOptionsAreUserErrors(double temperature, int topK, double topP, string option)
    {
        var e = Assert.Throws<McException>(() => new SamplingOptions(temperature, topK, topP).Validate());
        Assert.StartsWith(option, e.Message);
    }

    [Fact]
    public void SplitMix64MatchesItsReferenceOutput()
    {
        // splitmix64.c (Vigna) seeded with 0: the first output.
        ulong x = 0;
        Assert.Equal(0xE220A8397B1DCDAFUL, Xoshiro256StarStar.SplitMix64(ref x));
    }

    [Fact]
    public void Xoshiro256StarStarMatchesPhpsTestVector()
    {
        // php-src ext/random/tests/02_engine/xoshiro256starstar_seed.phpt: state words 0x0807060504030201 (bytes
        // 01..08 little-endian), 1000 outputs discarded, the next one printed little-endian as 90a025df9300cfd1.
        const ulong s = 0x0807060504030201UL;
        var g = Xoshiro256StarStar.FromState(s, s, s, s);
        for (int i = 0; i < 1000; i++) g.NextUInt64();
        Assert.Equal(0xD1CF0093DF25A090UL, g.NextUInt64());
    }
}
