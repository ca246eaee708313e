using System.Diagnostics;
using System.Runtime.Intrinsics;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;
using ModelCompiler.Runtime.Kernels;
using ModelCompiler.Benchmarks;

// Two modes:
//   dotnet run -c Release --project bench/ModelCompiler.Benchmarks -- --filter '*Gemm*' [--job short]   (BenchmarkDotNet)
//   dotnet run -c Release --project bench/ModelCompiler.Benchmarks -- quick [reps]                     (Stopwatch medians, seconds)
if (args.Length > 0 && args[0] == "quick")
{
    Quick.Run(args.Length > 1 ? int.Parse(args[1]) : 15);
    return;
}

int peakWidth = Vector512.IsHardwareAccelerated ? 512 : 256;
foreach (int t in new[] { 1, 2 }) Columns.Peak[t] = Quick.FmaGflops(peakWidth, t, 5).wall.Median;
Console.WriteLine($"Host FMA peak (Vector{peakWidth}, median of 5): 1 thread {Columns.Peak[1]:F1} GFLOP/s, 2 threads {Columns.Peak[2]:F1} GFLOP/s");

// Artifacts (logs, reports) under bin/ (git-ignored) unless --artifacts says otherwise.
var config = DefaultConfig.Instance.AddColumn(Columns.All())
    .WithArtifactsPath(Path.Combine(AppContext.BaseDirectory, "BenchmarkDotNet.Artifacts"));
BenchmarkSwitcher.FromAssembly(typeof(GemmBenchmarks).Assembly).Run(args, config);

/// <summary>
/// A Stopwatch harness for tuning on a shared machine: every figure is a median over reps, given two ways:
/// wall-clock GFLOP/s, and GFLOP per CPU-second of this process (flops / process CPU time), which other
/// processes' load does not shrink (the OS does not charge us for time it gives them). "% of peak" is per
/// CPU-second too, against the FMA loop at the same thread count measured the same way, in reps
/// interleaved with the GEMM's so both see the same machine.
/// </summary>
static class Quick
{
    public readonly record struct Stat(double Median, double Min, double Max)
    {
        public override string ToString() => $"{Median,6:F1} [{Min:F1}..{Max:F1}]";
    }

    public static Stat Stats(List<double> xs)
    {
        xs.Sort();
        return new(xs[xs.Count / 2], xs[0], xs[^1]);
    }

    static readonly Process Self = Process.GetCurrentProcess();

    static double CpuSeconds()
    {
        Self.Refresh();
        return Self.TotalProcessorTime.TotalSeconds;
    }

    /// <summary>Times action (flops each call) once: (wall GFLOP/s, GFLOP per CPU-second).</summary>
    static (double wall, double cpu) Time(Action action, double flops)
    {
        double c0 = CpuSeconds();
        long t0 = Stopwatch.GetTimestamp();
        action();
        double wall = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        double cpu = CpuSeconds() - c0;
        return (flops / wall / 1e9, flops / Math.Max(cpu, 1e-9) / 1e9);
    }

    const long FmaIters = 3_000_000;

    static Action Fma(int width, int threads) => () => FmaPeak.Run(width, threads, FmaIters);
    static double FmaFlops(int width, int threads) => threads * FmaPeak.Flops(width / 32, FmaIters);

    public static (Stat wall, Stat cpu) FmaGflops(int width, int threads, int reps)
    {
        Fma(width, threads)();
        var w = new List<double>();
        var c = new List<double>();
        for (int r = 0; r < reps; r++)
        {
            var (a, b) = Time(Fma(width, threads), FmaFlops(width, threads));
            w.Add(a);
            c.Add(b);
        }
        return (Stats(w), Stats(c));
    }

    /// <summary>GEMM GFLOP/s (wall and per CPU-second) and % of the FMA peak (per CPU-second, interleaved reps).</summary>
    public static (Stat wall, Stat cpu, Stat pct) Gemm(int m, int k, int n, WeightFormat format, GemmOptions o, int threads, int reps)
    {
        var x = Shapes.Random((long)m * k, 1);
        var b = Shapes.Random(n, 2);
        var y = new float[(long)m * n];
        var w = PackedWeight.Pack(Shapes.Random((long)n * k, 3), n, k, format);
        double flops = 2.0 * m * k * n;
        // Calls per rep: about 30 ms.
        var sw = Stopwatch.StartNew();
        int calls = 0;
        while (sw.Elapsed.TotalMilliseconds < 30) { ModelCompiler.Runtime.Kernels.Gemm.Linear(x, m, w, y, b, default, o); calls++; }
        int width = Vector512.IsHardwareAccelerated && o.Isa is GemmIsa.Auto or GemmIsa.Vector512 ? 512 : 256;
        var ws = new List<double>();
        var cs = new List<double>();
        var ps = new List<double>();
        for (int r = 0; r < reps; r++)
        {
            var (gw, gc) = Time(() => { for (int i = 0; i < calls; i++) ModelCompiler.Runtime.Kernels.Gemm.Linear(x, m, w, y, b, default, o); }, flops * calls);
            var (_, fc) = Time(Fma(width, threads), FmaFlops(width, threads));
            ws.Add(gw);
            cs.Add(gc);
            ps.Add(100 * gc / fc);
        }
        return (Stats(ws), Stats(cs), Stats(ps));
    }

    /// <summary>Per-call cost of fanning out 2 tasks that do nothing: the pool vs Parallel.For (µs per call, wall).</summary>
    static void Dispatch(int reps)
    {
        var pool = GemmWorkerPool.Shared;
        int sink = 0;
        Action<int> noop = i => Interlocked.Add(ref sink, i);
        var po = new ParallelOptions { MaxDegreeOfParallelism = 2 };
        foreach (var (label, run) in new (string, Action)[] { ("pool", () => pool.Run(2, noop)), ("Parallel.For", () => Parallel.For(0, 2, po, noop)) })
        {
            const int calls = 20_000;
            for (int i = 0; i < calls; i++) run();
            var us = new List<double>();
            for (int r = 0; r < reps; r++)
            {
                long t0 = Stopwatch.GetTimestamp();
                for (int i = 0; i < calls; i++) run();
                us.Add(Stopwatch.GetElapsedTime(t0).TotalMicroseconds / calls);
            }
            var st = Stats(us);
            Console.WriteLine($"Dispatch of 2 empty tasks, {label,-12}: {st.Median:F2} [{st.Min:F2}..{st.Max:F2}] µs per call");
        }
    }

    public static void Run(int reps)
    {
        // Filters for tuning runs: QUICK_ONLY (shape substring), QUICK_FORMATS ("F32,BF16"), QUICK_MODES ("1 thread,2 pool").
        string? only = Environment.GetEnvironmentVariable("QUICK_ONLY");
        string[]? formats = Environment.GetEnvironmentVariable("QUICK_FORMATS")?.Split(',');
        string[]? modes = Environment.GetEnvironmentVariable("QUICK_MODES")?.Split(',');
        int kc = int.TryParse(Environment.GetEnvironmentVariable("GEMM_KC"), out var v1) ? v1 : 0;
        int mc = int.TryParse(Environment.GetEnvironmentVariable("GEMM_MC"), out var v2) ? v2 : 0;
        // GEMM_ISA=Vector256|Scalar forces a micro-kernel family (the % of peak is then against that width's FMA loop).
        var isa = Enum.TryParse<GemmIsa>(Environment.GetEnvironmentVariable("GEMM_ISA"), out var i1) ? i1 : GemmIsa.Auto;
        Console.WriteLine($"ISA {(isa == GemmIsa.Auto ? ModelCompiler.Runtime.Kernels.Gemm.BestIsa : isa)}, {Environment.ProcessorCount} cores, KC={(kc > 0 ? kc : ModelCompiler.Runtime.Kernels.Gemm.DefaultKC)} MC={(mc > 0 ? mc : ModelCompiler.Runtime.Kernels.Gemm.DefaultMC)}, {reps} reps: median [min..max]");
        if (only is null || only == "dispatch") Dispatch(reps);
        if (only is null)
            foreach (int t in new[] { 1, 2 })
                foreach (int width in new[] { 512, 256 })
                {
                    var (pw, pc) = FmaGflops(width, t, reps);
                    Console.WriteLine($"FMA peak Vector{width} {t} thread(s): wall {pw} GFLOP/s, per CPU-second {pc} GFLOP");
                }
        foreach (var shape in new[] { Shapes.Prefill, Shapes.DecodeSmall, Shapes.DecodeLarge })
        {
            if (only != null && !shape.Contains(only)) continue;
            var (m, k, n) = Shapes.Parse(shape);
            foreach (var format in new[] { WeightFormat.F32, WeightFormat.BF16 })
                foreach (var (label, threads, mode) in new[] { ("1 thread", 1, GemmThreading.Single), ("2 pool", 2, GemmThreading.Pool), ("2 Parallel.For", 2, GemmThreading.ParallelFor) })
                {
                    if (formats != null && !formats.Contains(format.ToString())) continue;
                    if (modes != null && !modes.Contains(label)) continue;
                    var o = new GemmOptions { Threading = mode, MaxThreads = threads, KC = kc, MC = mc, Isa = isa };
                    var (gw, gc, pct) = Gemm(m, k, n, format, o, threads, reps);
                    double bytesPerFlop = (format == WeightFormat.F32 ? 4.0 : 2.0) / (2.0 * m);
                    string gbs = m == 1 ? $"  weights GB/s: wall {gw.Median * bytesPerFlop:F1}, per CPU-s {gc.Median * bytesPerFlop:F1}" : "";
                    Console.WriteLine($"{shape,-12} {format,-4} {label,-15} wall {gw} GFLOP/s  per CPU-s {gc}  = {pct}% of peak{gbs}");
                }
        }
    }
}
