using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using ModelCompiler.Runtime.Kernels;

namespace ModelCompiler.Benchmarks;

/// <summary>Work per benchmark invocation, from its parameters: flops, and weight bytes streamed.</summary>
static class Work
{
    static object? Param(BenchmarkCase c, string name) => c.Parameters.Items.FirstOrDefault(p => p.Name == name)?.Value;

    public static double Flops(BenchmarkCase c)
    {
        string method = c.Descriptor.WorkloadMethod.Name;
        if (method.EndsWith("Fma"))
            return (int)Param(c, "Threads")! * FmaPeak.Flops(method.StartsWith("Vector512") ? 16 : 8, FmaPeakBenchmarks.Iterations);
        if (Param(c, "Shape") is not string shape) return double.NaN;
        var (m, k, n) = Shapes.Parse(shape);
        return 2.0 * m * k * n;
    }

    public static double WeightBytes(BenchmarkCase c)
    {
        if (Param(c, "Shape") is not string s) return double.NaN;
        var (m, k, n) = Shapes.Parse(s);
        if (m != 1) return double.NaN;
        int elem = Param(c, "Format") is WeightFormat f && f != WeightFormat.F32 ? 2 : 4;
        return (double)n * k * elem;
    }

    public static int ThreadCount(BenchmarkCase c) => Param(c, "Threads") switch
    {
        int t => t,
        Threads t => t == Threads.One ? 1 : 2,
        _ => 1,
    };
}

/// <summary>A number per case, from the median time.</summary>
class DerivedColumn(string name, string legend, Func<BenchmarkCase, double, double> value, string format) : IColumn
{
    public string Id => "Derived." + name;
    public string ColumnName => name;
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => legend;
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);
    public string GetValue(Summary summary, BenchmarkCase c, SummaryStyle style)
    {
        var stats = summary[c]?.ResultStatistics;
        if (stats is null) return "-";
        double v = value(c, stats.Median);
        return double.IsNaN(v) ? "-" : v.ToString(format);
    }
}

static class Columns
{
    /// <summary>The host's quick FMA peak (Vector512 if accelerated), per thread count, for the "% peak" column.</summary>
    public static readonly Dictionary<int, double> Peak = new();

    public static IColumn[] All() =>
    [
        new DerivedColumn("GFLOP/s", "Median: 1e9 floating-point operations per second (a multiply-add is 2)", (c, ns) => Work.Flops(c) / ns, "F1"),
        new DerivedColumn("% peak", "Median GFLOP/s over the FMA peak measured at start-up at the same thread count",
            (c, ns) => Peak.TryGetValue(Work.ThreadCount(c), out var p) && !c.Descriptor.WorkloadMethod.Name.EndsWith("Fma") ? 100 * Work.Flops(c) / ns / p : double.NaN, "F1"),
        new DerivedColumn("MB/s", "Median: input text megabytes (UTF-8) encoded per second (tokenizer benchmarks only)",
            (c, ns) => c.Descriptor.Type == typeof(TokenizerBenchmarks) ? TokenizerBenchmarks.TextBytes / ns * 1e3 : double.NaN, "F2"),
        new DerivedColumn("Weight GB/s", "Median: packed weight bytes streamed per second (M = 1 only)", (c, ns) => Work.WeightBytes(c) / ns, "F1"),
    ];
}
