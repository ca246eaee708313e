using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ModelCompiler.Benchmarks;

/// <summary>
/// The FMA throughput ceiling: a loop of independent fused multiply-adds, 16 accumulator chains
/// (more than latency × ports on any current x86: 4 cycles × 2 pipes = 8), nothing else in the loop
/// but the counter. GFLOP/s = 2 × lanes × chains × iterations / time.
/// </summary>
public static class FmaPeak
{
    public const int Chains = 16;

    public static double Flops(int lanes, long iterations) => 2.0 * lanes * Chains * iterations;

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static float Loop512(long iterations)
    {
        var m = Vector512.Create(0.999999f);
        var d = Vector512.Create(1e-7f);
        Vector512<float> a0 = Vector512.Create(0.1f), a1 = a0 + d, a2 = a1 + d, a3 = a2 + d, a4 = a3 + d, a5 = a4 + d, a6 = a5 + d, a7 = a6 + d;
        Vector512<float> a8 = a7 + d, a9 = a8 + d, a10 = a9 + d, a11 = a10 + d, a12 = a11 + d, a13 = a12 + d, a14 = a13 + d, a15 = a14 + d;
        for (long i = 0; i < iterations; i++)
        {
            a0 = Avx512F.FusedMultiplyAdd(a0, m, d); a1 = Avx512F.FusedMultiplyAdd(a1, m, d);
            a2 = Avx512F.FusedMultiplyAdd(a2, m, d); a3 = Avx512F.FusedMultiplyAdd(a3, m, d);
            a4 = Avx512F.FusedMultiplyAdd(a4, m, d); a5 = Avx512F.FusedMultiplyAdd(a5, m, d);
            a6 = Avx512F.FusedMultiplyAdd(a6, m, d); a7 = Avx512F.FusedMultiplyAdd(a7, m, d);
            a8 = Avx512F.FusedMultiplyAdd(a8, m, d); a9 = Avx512F.FusedMultiplyAdd(a9, m, d);
            a10 = Avx512F.FusedMultiplyAdd(a10, m, d); a11 = Avx512F.FusedMultiplyAdd(a11, m, d);
            a12 = Avx512F.FusedMultiplyAdd(a12, m, d); a13 = Avx512F.FusedMultiplyAdd(a13, m, d);
            a14 = Avx512F.FusedMultiplyAdd(a14, m, d); a15 = Avx512F.FusedMultiplyAdd(a15, m, d);
        }
        var s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11)) + ((a12 + a13) + (a14 + a15));
        return Vector512.Sum(s);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static float Loop256(long iterations)
    {
        var m = Vector256.Create(0.999999f);
        var d = Vector256.Create(1e-7f);
        Vector256<float> a0 = Vector256.Create(0.1f), a1 = a0 + d, a2 = a1 + d, a3 = a2 + d, a4 = a3 + d, a5 = a4 + d, a6 = a5 + d, a7 = a6 + d;
        Vector256<float> a8 = a7 + d, a9 = a8 + d, a10 = a9 + d, a11 = a10 + d, a12 = a11 + d, a13 = a12 + d, a14 = a13 + d, a15 = a14 + d;
        for (long i = 0; i < iterations; i++)
        {
            a0 = Fma.MultiplyAdd(a0, m, d); a1 = Fma.MultiplyAdd(a1, m, d);
            a2 = Fma.MultiplyAdd(a2, m, d); a3 = Fma.MultiplyAdd(a3, m, d);
            a4 = Fma.MultiplyAdd(a4, m, d); a5 = Fma.MultiplyAdd(a5, m, d);
            a6 = Fma.MultiplyAdd(a6, m, d); a7 = Fma.MultiplyAdd(a7, m, d);
            a8 = Fma.MultiplyAdd(a8, m, d); a9 = Fma.MultiplyAdd(a9, m, d);
            a10 = Fma.MultiplyAdd(a10, m, d); a11 = Fma.MultiplyAdd(a11, m, d);
            a12 = Fma.MultiplyAdd(a12, m, d); a13 = Fma.MultiplyAdd(a13, m, d);
            a14 = Fma.MultiplyAdd(a14, m, d); a15 = Fma.MultiplyAdd(a15, m, d);
        }
        var s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11)) + ((a12 + a13) + (a14 + a15));
        return Vector256.Sum(s);
    }

    /// <summary>Runs the loop on <paramref name="threads"/> threads at once (each its own iterations).</summary>
    public static float Run(int width, int threads, long iterations)
    {
        if (threads == 1) return width == 512 ? Loop512(iterations) : Loop256(iterations);
        var results = new float[threads];
        var ts = new Thread[threads];
        for (int t = 0; t < threads; t++)
        {
            int id = t;
            ts[t] = new Thread(() => results[id] = width == 512 ? Loop512(iterations) : Loop256(iterations));
            ts[t].Start();
        }
        foreach (var t in ts) t.Join();
        return results.Sum();
    }
}
