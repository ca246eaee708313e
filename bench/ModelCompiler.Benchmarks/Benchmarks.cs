using BenchmarkDotNet.Attributes;
using ModelCompiler.Runtime.Kernels;

namespace ModelCompiler.Benchmarks;

/// <summary>The GEMM shapes: prefill-like and decode-like linear layers (X [M, K] · Wᵀ, W [N, K]).</summary>
public static class Shapes
{
    public const string Prefill = "512x768x2048";
    public const string DecodeSmall = "1x768x2048";
    public const string DecodeLarge = "1x2048x5632";

    public static (int m, int k, int n) Parse(string s)
    {
        var p = s.Split('x').Select(int.Parse).ToArray();
        return (p[0], p[1], p[2]);
    }

    public static float[] Random(long len, int seed)
    {
        var rng = new Random(seed);
        var a = new float[len];
        for (long i = 0; i < len; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        return a;
    }
}

/// <summary>How the product's threads are run: one thread, or two via the persistent pool or Parallel.For.</summary>
public enum Threads { One, TwoPool, TwoParallelFor }

/// <summary>FMA peak (GFLOP/s column): Vector512 and Vector256, 1 and 2 threads.</summary>
public class FmaPeakBenchmarks
{
    public const long Iterations = 20_000_000;

    [Params(1, 2)] public int Threads;

    [Benchmark] public float Vector512Fma() => FmaPeak.Run(512, Threads, Iterations);
    [Benchmark] public float Vector256Fma() => FmaPeak.Run(256, Threads, Iterations);
}

/// <summary>The blocked GEMM (fp32 weights, bf16 for decode) at 1 and 2 threads.</summary>
public class GemmBenchmarks
{
    [Params(Shapes.Prefill, Shapes.DecodeSmall, Shapes.DecodeLarge)] public string Shape = Shapes.Prefill;
    [Params(Threads.One, Threads.TwoPool, Threads.TwoParallelFor)] public Threads Threads;
    [Params(WeightFormat.F32, WeightFormat.BF16)] public WeightFormat Format;

    float[] _x = [], _b = [], _y = [];
    PackedWeight _w = null!;
    int _m;
    GemmOptions _options = GemmOptions.Default;

    [GlobalSetup]
    public void Setup()
    {
        var (m, k, n) = Shapes.Parse(Shape);
        _m = m;
        _x = Shapes.Random((long)m * k, 1);
        _b = Shapes.Random(n, 2);
        _y = new float[(long)m * n];
        _w = PackedWeight.Pack(Shapes.Random((long)n * k, 3), n, k, Format);
        _options = Threads switch
        {
            Threads.One => new GemmOptions { Threading = GemmThreading.Single },
            Threads.TwoPool => new GemmOptions { Threading = GemmThreading.Pool, MaxThreads = 2 },
            _ => new GemmOptions { Threading = GemmThreading.ParallelFor, MaxThreads = 2 },
        };
    }

    [Benchmark]
    public void Gemm() => Runtime.Kernels.Gemm.Linear(_x, _m, _w, _y, _b, default, _options);
}

/// <summary>The naive triple loop on W as stored (one thread): M=64 instead of 512 for the prefill-like shape, to keep a run short.</summary>
public class NaiveGemmBenchmarks
{
    [Params("64x768x2048", Shapes.DecodeSmall, Shapes.DecodeLarge)] public string Shape = Shapes.DecodeSmall;

    float[] _x = [], _w = [], _b = [], _y = [];
    int _m, _k, _n;

    [GlobalSetup]
    public void Setup()
    {
        (_m, _k, _n) = Shapes.Parse(Shape);
        _x = Shapes.Random((long)_m * _k, 1);
        _w = Shapes.Random((long)_n * _k, 3);
        _b = Shapes.Random(_n, 2);
        _y = new float[(long)_m * _n];
    }

    [Benchmark]
    public void NaiveGemm() => Naive.Linear(_x, _m, _w, _n, _k, _b, _y);
}
