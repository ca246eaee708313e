using ModelCompiler.Runtime.Kernels;

namespace ModelCompiler.Tests.CpuKernels;

/// <summary>
/// The blocked GEMM against a float64 triple loop, on every ISA path the machine can run (Scalar always;
/// Vector256 and Vector512 forced where supported), shapes that are not multiples of any block size,
/// bias/residual combinations, K/M/N blocking forced small, both threading modes, 16-bit weights.
/// Error bound per element: 1e-5 · (Σ_k |x·w| + |bias| + |residual|), a relative bound that holds
/// whatever the fp32 summation order.
/// </summary>
public class GemmTests
{
    public static readonly TheoryData<GemmIsa> Isas = new(GemmIsa.Scalar, GemmIsa.Vector256, GemmIsa.Vector512);

    static (float[] x, float[] w, float[] b, float[] r) Data(int m, int n, int k, int seed)
    {
        var rng = new Random(seed);
        float[] F(long len) { var a = new float[len]; for (long i = 0; i < len; i++) a[i] = (float)(rng.NextDouble() * 2 - 1); return a; }
        return (F((long)m * k), F((long)n * k), F(n), F((long)m * n));
    }

    /// <summary>Checks y against X·Wᵀ + b + r computed in float64 from the weight values the kernel sees.</summary>
    static void Check(float[] x, PackedWeight pw, float[]? b, float[]? r, float[] y, int m)
    {
        int n = pw.N, k = pw.K;
        var wt = new double[(long)n * k];
        for (int j = 0; j < n; j++) for (int i = 0; i < k; i++) wt[(long)j * k + i] = pw[j, i];
        for (int row = 0; row < m; row++)
            for (int j = 0; j < n; j++)
            {
                double acc = 0, mag = 0;
                for (int i = 0; i < k; i++)
                {
                    double p = (double)x[row * k + i] * wt[(long)j * k + i];
                    acc += p;
                    mag += Math.Abs(p);
                }
                if (b is not null) { acc += b[j]; mag += Math.Abs(b[j]); }
                if (r is not null) { acc += r[row * n + j]; mag += Math.Abs(r[row * n + j]); }
                double err = Math.Abs(y[row * n + j] - acc);
                Assert.True(err <= 1e-5 * mag + 1e-30, $"y[{row},{j}] = {y[row * n + j]}, expected {acc} (err {err:g3}, bound {1e-5 * mag:g3})");
            }
    }

    static void Run(GemmIsa isa, int m, int n, int k, bool bias, bool residual, WeightFormat format = WeightFormat.F32,
        GemmOptions? options = null, int seed = 1)
    {
        if (!Gemm.IsSupported(isa)) return;     // this machine lacks the ISA: the other paths still run
        var (x, w, b, r) = Data(m, n, k, seed);
        var pw = PackedWeight.Pack(w, n, k, format);
        var y = new float[m * n];
        Array.Fill(y, float.NaN);               // every element must be written
        Gemm.Linear(x, m, pw, y, bias ? b : default, residual ? r : default, (options ?? GemmOptions.Default) with { Isa = isa });
        Check(x, pw, bias ? b : null, residual ? r : null, y, m);
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void Odd_shapes_with_and_without_bias_and_residual(GemmIsa isa)
    {
        foreach (var (m, n, k) in new[] { (1, 7, 13), (3, 100, 37), (17, 64, 129), (1, 33, 300), (2, 32, 1), (15, 1, 5), (29, 70, 16) })
            foreach (var (bias, res) in new[] { (false, false), (true, false), (false, true), (true, true) })
                Run(isa, m, n, k, bias, res, seed: m * 1000 + n + k);
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void Every_row_count_of_the_micro_tile(GemmIsa isa)
    {
        for (int m = 1; m <= 15; m++) Run(isa, m, 40, 23, bias: true, residual: false, seed: m);
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void Small_blocks_force_K_M_and_N_blocking(GemmIsa isa)
    {
        var o = new GemmOptions { KC = 16, MC = 8, NC = 64, Threading = GemmThreading.Single };
        Run(isa, 31, 150, 70, bias: true, residual: true, options: o);
        Run(isa, 31, 150, 70, bias: false, residual: false, options: o);
    }

    [Theory]
    [InlineData(GemmThreading.Pool)]
    [InlineData(GemmThreading.ParallelFor)]
    public void Both_threading_modes_split_panels_and_rows(GemmThreading threading)
    {
        foreach (var isa in new[] { GemmIsa.Scalar, GemmIsa.Vector256, GemmIsa.Vector512 })
        {
            var o = new GemmOptions { Threading = threading, MaxThreads = 2 };
            Run(isa, 1, 300, 500, bias: true, residual: true, options: o);     // decode: split over panels
            Run(isa, 37, 150, 200, bias: true, residual: false, options: o);   // panels
            Run(isa, 64, 40, 70, bias: false, residual: true, options: o);     // two panels: split over rows
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void Residual_may_be_the_output_itself(GemmIsa isa)
    {
        if (!Gemm.IsSupported(isa)) return;
        int m = 5, n = 45, k = 300;
        var (x, w, b, r) = Data(m, n, k, 7);
        var pw = PackedWeight.Pack(w, n, k);
        var y = (float[])r.Clone();
        Gemm.Linear(x, m, pw, y, b, y, new GemmOptions { Isa = isa, KC = 64 });
        Check(x, pw, b, r, y, m);
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void Strided_rows_write_only_their_slice(GemmIsa isa)
    {
        if (!Gemm.IsSupported(isa)) return;
        int m = 16, n = 37, k = 50, ldx = 61, ldy = 45;
        var (x, w, b, r) = Data(m, n, k, 11);
        var pw = PackedWeight.Pack(w, n, k);
        // x and y as column slices of wider row-major buffers; the residual is y itself (in place).
        var xs = new float[m * ldx];
        var ys = new float[m * ldy];
        Array.Fill(ys, -7f);
        for (int i = 0; i < m; i++)
        {
            Array.Copy(x, i * k, xs, i * ldx + 3, k);
            Array.Copy(r, i * n, ys, i * ldy + 5, n);
        }
        var yView = ys.AsSpan(5);
        Gemm.Linear(xs.AsSpan(3), ldx, m, pw, yView, ldy, b, yView, ldy, new GemmOptions { Isa = isa, MaxThreads = 2 });
        var y = new float[m * n];
        for (int i = 0; i < m; i++)
        {
            Array.Copy(ys, i * ldy + 5, y, i * n, n);
            for (int j = 0; j < ldy; j++)
                if (j < 5 || j >= 5 + n) Assert.Equal(-7f, ys[i * ldy + j]);
        }
        Check(x, pw, b, r, y, m);
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void Bf16_and_fp16_weights(GemmIsa isa)
    {
        foreach (var f in new[] { WeightFormat.BF16, WeightFormat.F16 })
        {
            Run(isa, 1, 70, 33, bias: true, residual: false, format: f);
            Run(isa, 17, 64, 129, bias: true, residual: true, format: f);
            Run(isa, 3, 100, 37, bias: false, residual: false, format: f, options: new GemmOptions { KC = 16 });
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void Fp16_special_values_convert_exactly(GemmIsa isa)
    {
        if (!Gemm.IsSupported(isa)) return;
        // K = 1, x = 1: y is each weight as the kernel converts it.
        ushort[] bits = [0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0x3555, 0x8001, 0x0200];
        var w = new ushort[40];
        for (int i = 0; i < w.Length; i++) w[i] = bits[i % bits.Length];
        foreach (var f in new[] { WeightFormat.F16, WeightFormat.BF16 })
        {
            var pw = PackedWeight.Pack16(w, w.Length, 1, f);
            var y = new float[w.Length];
            Gemm.Linear([1f], 1, pw, y, options: new GemmOptions { Isa = isa });
            for (int i = 0; i < w.Length; i++)
            {
                float expected = f == WeightFormat.F16 ? (float)BitConverter.UInt16BitsToHalf(w[i]) : BitConverter.UInt32BitsToSingle((uint)w[i] << 16);
                expected = 0f + expected;   // the kernel adds to +0: -0 comes out +0
                Assert.Equal(BitConverter.SingleToUInt32Bits(expected) & (float.IsNaN(expected) ? 0xFF800000 : 0xFFFFFFFF),
                    BitConverter.SingleToUInt32Bits(y[i]) & (float.IsNaN(expected) ? 0xFF800000 : 0xFFFFFFFF));
            }
        }
    }

    [Fact]
    public void Bf16_rounding_is_to_nearest_even()
    {
        Assert.Equal(0x3F80, PackedWeight.ToBf16Bits(1f));
        Assert.Equal(0x3F80, PackedWeight.ToBf16Bits(BitConverter.UInt32BitsToSingle(0x3F808000)));  // tie → even
        Assert.Equal(0x3F82, PackedWeight.ToBf16Bits(BitConverter.UInt32BitsToSingle(0x3F818000)));  // tie → even (up)
        Assert.Equal(0x3F81, PackedWeight.ToBf16Bits(BitConverter.UInt32BitsToSingle(0x3F808001)));
        Assert.True(float.IsNaN(BitConverter.UInt32BitsToSingle((uint)PackedWeight.ToBf16Bits(float.NaN) << 16)));
    }

    [Fact]
    public void Auto_picks_a_supported_isa_and_rejects_bad_shapes()
    {
        Assert.True(Gemm.IsSupported(Gemm.BestIsa));
        var pw = PackedWeight.Pack(new float[6], 2, 3);
        Assert.Throws<ArgumentException>(() => Gemm.Linear(new float[5], 2, pw, new float[4]));
        Assert.Throws<ArgumentException>(() => Gemm.Linear(new float[6], 2, pw, new float[3]));
    }
}
