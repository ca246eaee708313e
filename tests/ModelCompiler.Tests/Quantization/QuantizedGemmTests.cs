using ModelCompiler.Passes;
using ModelCompiler.Runtime.Kernels;

namespace ModelCompiler.Tests.Quantization;

/// <summary>
/// The quantized kernels against the definition: y = x·dequant(W)ᵀ (+ b) in double, for every instruction family the
/// machine has (the scalar fallback always), decode (M &lt; 4) and expanded-row (M ≥ 4) paths, per-channel and grouped
/// scales; W8A8 against the same sum over x rounded to int8 per row.
/// </summary>
public class QuantizedGemmTests
{
    private static float[] Random(int seed, int count, double scale = 1)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(scale * (2 * rng.NextDouble() - 1))).ToArray();
    }

    private static QuantizedWeight Make(QuantScheme scheme, float[] w, int n, int k, int group, float[]? inputScale = null)
    {
        if (scheme == QuantScheme.Int4)
        {
            var (codes, scales, zeros) = QuantizedLinears.Int4(w, n, k, group);
            return QuantizedWeight.FromCodes(scheme, n, k, group, null, codes, scales, zeros, inputScale);
        }
        var (c8, s8) = QuantizedLinears.Int8(w, n, k, group);
        return QuantizedWeight.FromCodes(scheme, n, k, group, c8.Select(b => (sbyte)b).ToArray(), null, s8, null, inputScale);
    }

    /// <summary>The definition in double; W8A8 rounds each row of x as the kernel's contract says.</summary>
    private static double[] Reference(QuantizedWeight w, float[] x, int m, float[]? bias, float[]? inputScale)
    {
        var y = new double[m * w.N];
        for (int r = 0; r < m; r++)
        {
            var row = x.Skip(r * w.K).Take(w.K).Select((v, i) => inputScale is null ? v : v * inputScale[i]).ToArray();
            double rowScale = 1;
            if (w.Scheme == QuantScheme.W8A8)
            {
                var codes = new sbyte[w.K];
                rowScale = QuantizedGemm.QuantizeRow(row, codes);
                row = codes.Select(c => (float)c).ToArray();
            }
            for (int j = 0; j < w.N; j++)
            {
                double acc = 0;
                for (int i = 0; i < w.K; i++) acc += (double)row[i] * w[j, i];
                y[r * w.N + j] = acc * rowScale + (bias?[j] ?? 0);
            }
        }
        return y;
    }

    public static TheoryData<QuantScheme, int, int, int, int> Shapes() => new()
    {
        { QuantScheme.Int8, 1, 96, 128, 128 },   // per output channel
        { QuantScheme.Int8, 1, 70, 160, 32 },
        { QuantScheme.Int8, 5, 33, 64, 16 },     // group 16: the 256-bit path, scalar where 512 needs 32
        { QuantScheme.Int8, 3, 40, 100, 100 },   // K not a multiple of 16: scalar inside, any ISA asked
        { QuantScheme.Int4, 1, 96, 256, 64 },
        { QuantScheme.Int4, 2, 50, 160, 32 },
        { QuantScheme.Int4, 7, 64, 128, 128 },
        { QuantScheme.Int8, 2, 41, 192, 64 },
        { QuantScheme.Int8, 20, 70, 96, 32 },    // prefill (M >= 16): chunks expanded for the blocked GEMM, a partial panel
        { QuantScheme.Int4, 17, 100, 128, 64 },    // decode: four rows at a time, one row left over
        { QuantScheme.Int4, 3, 45, 192, 96 },    // decode: groups of three blocks of 32, one row left over
        { QuantScheme.W8A8, 1, 64, 256, 256 },
        { QuantScheme.W8A8, 4, 24, 96, 32 },
        { QuantScheme.W8A8, 2, 17, 72, 72 },     // tails after the 64/32/16-byte steps
    };

    public static IEnumerable<QuantIsa> Isas(QuantScheme scheme) =>
        (scheme == QuantScheme.W8A8 ? new[] { QuantIsa.Scalar, QuantIsa.Vector256, QuantIsa.Vnni } : new[] { QuantIsa.Scalar, QuantIsa.Vector256, QuantIsa.Vector512 })
        .Where(QuantizedGemm.IsSupported);

    [Theory]
    [MemberData(nameof(Shapes))]
    public void EveryIsaMatchesTheDefinition(QuantScheme scheme, int m, int n, int k, int group)
    {
        var w = Random(1, n * k, 0.3);
        var x = Random(2, m * k, 2);
        var bias = Random(3, n);
        var inputScale = scheme == QuantScheme.Int4 ? Random(4, k).Select(v => 0.5f + MathF.Abs(v)).ToArray() : null;
        var q = Make(scheme, w, n, k, group, inputScale);
        var expected = Reference(q, x, m, bias, inputScale);
        double max = expected.Max(Math.Abs);
        foreach (var isa in Isas(scheme))
        {
            var y = new float[m * n];
            QuantizedGemm.Linear(x, m, q, bias, y, isa);
            for (int i = 0; i < y.Length; i++)
                Assert.True(Math.Abs(y[i] - expected[i]) <= 1e-4 * max, $"{scheme} {isa} m={m} [{i}]: {y[i]} vs {expected[i]}");
        }
    }

    [Fact]
    public void IntegerDotProductsAreExactOnEveryIsa()
    {
        var rng = new Random(7);
        foreach (int length in new[] { 1, 15, 16, 31, 32, 63, 64, 65, 200, 768 })
        {
            var a = Enumerable.Range(0, length).Select(_ => (sbyte)rng.Next(-127, 128)).ToArray();
            var b = Enumerable.Range(0, length).Select(_ => (sbyte)rng.Next(-127, 128)).ToArray();
            int expected = a.Zip(b, (u, v) => u * v).Sum();
            var shifted = a.Select(v => unchecked((sbyte)(byte)(v + 128))).ToArray();
            int sumB = b.Sum(v => v);
            foreach (var isa in Isas(QuantScheme.W8A8))
            {
                int dot = QuantizedGemm.DotI8(isa == QuantIsa.Vnni ? shifted : a, b, isa);
                if (isa == QuantIsa.Vnni) dot -= 128 * sumB;   // VPDPBUSD's +128 shift undone
                Assert.Equal(expected, dot);
            }
        }
    }

    [Fact]
    public void Int4CodesPackAsGgufQ4_0AndRoundTrip()
    {
        // A row whose values are exactly representable: codes 0..15 with scale 0.5 and zero point 8.
        int k = 64;
        var w = Enumerable.Range(0, k).Select(i => 0.5f * (i % 16 - 8)).ToArray();
        var (codes, scales, zeros) = QuantizedLinears.Int4(w, 1, k, 32);
        Assert.All(scales, s => Assert.Equal(0.5f, s));
        Assert.All(zeros, z => Assert.Equal(8, z));
        // byte j of a block: code j (low nibble), code j + 16 (high nibble)
        Assert.Equal((byte)(0 | 0 << 4), codes[0]);
        Assert.Equal((byte)(1 | 1 << 4), codes[1]);
        var q = QuantizedWeight.FromCodes(QuantScheme.Int4, 1, k, 32, null, codes, scales, zeros);
        for (int i = 0; i < k; i++) Assert.Equal(w[i], q[0, i]);
    }

    [Fact]
    public void RoundToNearestErrorIsWithinHalfAStep()
    {
        var w = Random(11, 8 * 128, 0.7);
        var (c8, s8) = QuantizedLinears.Int8(w, 8, 128, 128);
        var q8 = QuantizedWeight.FromCodes(QuantScheme.Int8, 8, 128, 128, c8.Select(b => (sbyte)b).ToArray(), null, s8, null);
        var (c4, s4, z4) = QuantizedLinears.Int4(w, 8, 128, 32);
        var q4 = QuantizedWeight.FromCodes(QuantScheme.Int4, 8, 128, 32, null, c4, s4, z4);
        for (int r = 0; r < 8; r++)
            for (int i = 0; i < 128; i++)
            {
                Assert.True(Math.Abs(q8[r, i] - w[r * 128 + i]) <= s8[r] / 2 * 1.0001, $"int8 [{r},{i}]");
                Assert.True(Math.Abs(q4[r, i] - w[r * 128 + i]) <= s4[r * 4 + i / 32] / 2 * 1.0001, $"int4 [{r},{i}]");
            }
    }

    [Fact]
    public void CompressedWeightsHoldOneOrHalfAByteAWeight()
    {
        int n = 256, k = 512;
        var w = Random(5, n * k);
        Assert.Equal(n * k + 4 * n, Make(QuantScheme.Int8, w, n, k, k).ByteSize);
        Assert.Equal(n * k / 2 + (4 + 1) * n * (k / 64), Make(QuantScheme.Int4, w, n, k, 64).ByteSize);
    }
}
