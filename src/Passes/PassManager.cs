using System.Diagnostics;
using ModelCompiler.IR;

namespace ModelCompiler.Passes;

/// <summary>
/// Runs a named pipeline of passes, verifying the IR after each one, with the instrumentation users
/// and tests need: print the IR after a pass, time the passes, disable a pass by name.
/// </summary>
public sealed class PassManager
{
    /// <summary>Every pass the compiler knows, by name; <c>mc passes</c> lists this.</summary>
    public static IReadOnlyList<IPass> Registry { get; } = new IPass[]
    {
        new Canonicalize(),
        new ConstantFolding(),
        new CommonSubexpressionElimination(),
        new DeadCodeElimination(),
        new ConcatLinears(),
        new FuseNormLinear(),
        new FuseLinearEpilogue(),
        new KvCacheRewrite(),
        new TensorParallelShard(),
        new PagedKvCacheRewrite(),
        new PagedLogitRows(),
    };

    /// <summary>The default pipeline for the reference interpreter: cleanup only, so it runs what the user wrote.</summary>
    public static IReadOnlyList<string> InterpreterPipeline { get; } = ["dead-code-elimination"];

    /// <summary>
    /// The cleanup every compiled target starts from. Order matters: canonicalisation exposes constants
    /// and duplicates (a reshape of a reshape), folding makes constants equal, CSE then merges them,
    /// and dead-code elimination sweeps up what they left.
    /// </summary>
    public static IReadOnlyList<string> CleanupPipeline { get; } = ["canonicalize", "constant-folding", "common-subexpression-elimination", "dead-code-elimination"];

    /// <summary>
    /// Cleanup, then fusion for compiled targets. Order matters: concatenating q/k/v (gate/up) first
    /// leaves each norm with one linear user, so it can become that GEMM's prologue; the gate epilogue
    /// needs gate and up to be halves of one GEMM.
    /// </summary>
    public static IReadOnlyList<string> FusionPipeline { get; } = [.. CleanupPipeline, "concat-linears", "fuse-norm-linear", "fuse-linear-epilogue"];

    public sealed record Options
    {
        /// <summary>Pass names after which to print the IR; "all" prints after every pass.</summary>
        public IReadOnlySet<string> PrintIrAfter { get; init; } = new HashSet<string>();
        public IReadOnlySet<string> Disabled { get; init; } = new HashSet<string>();
        public bool TimePasses { get; init; }
        public bool Verify { get; init; } = true;
    }

    public sealed record PassReport(string Name, bool Changed, TimeSpan Elapsed, bool Skipped);

    private readonly IReadOnlyList<IPass> _pipeline;
    private readonly Options _options;

    public PassManager(IEnumerable<string> pipeline, Options? options = null)
    {
        _options = options ?? new Options();
        _pipeline = pipeline.Select(Find).ToList();
        foreach (var name in _options.Disabled.Concat(_options.PrintIrAfter.Where(n => n != "all")))
            Find(name);
    }

    /// <summary>A pipeline of pass instances (passes with options, such as one rank of <see cref="TensorParallelShard"/>).</summary>
    public PassManager(IEnumerable<IPass> pipeline, Options? options = null)
    {
        _options = options ?? new Options();
        _pipeline = pipeline.ToList();
    }

    public static IPass Find(string name) =>
        Registry.FirstOrDefault(p => p.Name == name)
        ?? throw new Runtime.McException($"unknown pass '{name}' (known: {string.Join(", ", Registry.Select(p => p.Name))})");

    /// <summary>Runs the pipeline; IR dumps go to <paramref name="log"/>.</summary>
    public IReadOnlyList<PassReport> Run(Graph graph, TextWriter? log = null)
    {
        var reports = new List<PassReport>();
        if (_options.Verify) Verifier.Verify(graph, "construction");
        foreach (var pass in _pipeline)
        {
            if (_options.Disabled.Contains(pass.Name))
            {
                reports.Add(new PassReport(pass.Name, false, TimeSpan.Zero, Skipped: true));
                continue;
            }
            var clock = Stopwatch.StartNew();
            bool changed = pass.Run(graph);
            clock.Stop();
            if (_options.Verify) Verifier.Verify(graph, pass.Name);
            reports.Add(new PassReport(pass.Name, changed, clock.Elapsed, Skipped: false));
            if (log is not null && (_options.PrintIrAfter.Contains("all") || _options.PrintIrAfter.Contains(pass.Name)))
            {
                log.WriteLine($"// IR after {pass.Name}{(changed ? "" : " (unchanged)")}");
                log.Write(Printer.Print(graph));
            }
        }
        if (log is not null && _options.TimePasses)
        {
            log.WriteLine("// pass timings");
            foreach (var r in reports)
                log.WriteLine($"//   {r.Name,-28} {(r.Skipped ? "disabled" : $"{r.Elapsed.TotalMilliseconds,8:F3} ms{(r.Changed ? "  changed" : "")}")}");
        }
        return reports;
    }
}
