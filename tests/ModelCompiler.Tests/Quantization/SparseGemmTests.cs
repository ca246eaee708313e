using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Kernels;

namespace ModelCompiler.Tests.Quantization;

/// <summary>
/// The 2:4-sparse kernel against the dense product in double: the weight pruned 2 of every 4, compressed
/// (<see cref="QuantizedLinears.Sparse24"/>), multiplied by every instruction family the machine has (scalar always),
/// decode (M &lt; 4, from the compressed form) and expanded rows (M ≥ 4); widths that leave a 256- or 512-bit tail.
/// </summary>
public class SparseGemmTests
{
    /// <summary>A random [n, k] weight with 2 of every 4 weights zeroed (a few groups keep fewer non-zeros).</summary>
    private static float[] TwoFour(int seed, int n, int k)
    {
        var rng = new Random(seed);
        var w = new float[n * k];
        for (int g = 0; g < n * k / 4; g++)
        {
            var kept = Enumerable.Range(0, 4).OrderBy(_ => rng.Next()).Take(rng.Next(10) == 0 ? 1 : 2).ToList();
            foreach (var i in kept) w[4 * g + i] = (float)(2 * rng.NextDouble() - 1);
        }
        return w;
    }

    public static TheoryData<QuantIsa, int, int, int> Cases()
    {
        var data = new TheoryData<QuantIsa, int, int, int>();
        foreach (var isa in new[] { QuantIsa.Scalar, QuantIsa.Vector256, QuantIsa.Vector512 })
            foreach (var (m, n, k) in new[] { (1, 37, 64), (2, 19, 88), (1, 8, 8), (5, 23, 120), (3, 64, 256) })
                data.Add(isa, m, n, k);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesTheDenseProduct(QuantIsa isa, int m, int n, int k)
    {
        if (!QuantizedGemm.IsSupported(isa)) isa = QuantIsa.Scalar;   // the machine lacks it: the fallback still runs
        var w = TwoFour(k * 31 + n, n, k);
        var rng = new Random(m + k);
        var x = Enumerable.Range(0, m * k).Select(_ => (float)(2 * rng.NextDouble() - 1)).ToArray();
        var bias = Enumerable.Range(0, n).Select(i => 0.01f * i).ToArray();
        var (values, positions) = QuantizedLinears.Sparse24(w, n, k, "w");
        var q = QuantizedWeight.FromSparse24("w", values, positions, n, k);
        Assert.Equal(n * k / 2 * 4 + n * k / 8, q.ByteSize);
        for (int j = 0; j < n; j++)
            for (int i = 0; i < k; i++) Assert.Equal(w[j * k + i], q[j, i]);

        var y = new float[m * n];
        QuantizedGemm.Linear(x, m, q, bias, y, isa);
        double max = 0, err = 0;
        for (int r = 0; r < m; r++)
            for (int j = 0; j < n; j++)
            {
                double expected = bias[j];
                for (int i = 0; i < k; i++) expected += (double)x[r * k + i] * w[j * k + i];
                max = Math.Max(max, Math.Abs(expected));
                err = Math.Max(err, Math.Abs(expected - y[r * n + j]));
            }
        Assert.True(err <= 1e-4 * max, $"{isa} m={m} n={n} k={k}: error {err:E2} of {max:E2}");
    }

    [Fact]
    public void MoreThanTwoNonZerosInAGroupIsNotTwoFour()
    {
        var w = new float[] { 1, 2, 3, 0, 0, 0, 0, 0 };
        var e = Assert.Throws<McException>(() => QuantizedLinears.Sparse24(w, 1, 8, "layer.weight"));
        Assert.Contains("'layer.weight': row 0, columns 0..3 have more than 2 non-zeros", e.Message);
    }

    [Fact]
    public void PositionsThatDoNotNameTwoWeightsInOrderAreRejected()
    {
        // nibble 0x5: p0 = 1, p1 = 1 (the same weight twice)
        var e = Assert.Throws<McException>(() => QuantizedWeight.FromSparse24("layer.weight", new float[4], [0x45], 1, 8));
        Assert.Contains("position byte 0 (0x45)", e.Message);
        Assert.Throws<McException>(() => QuantizedWeight.FromSparse24("layer.weight", new float[3], [0x41], 1, 8));
    }
}
