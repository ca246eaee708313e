namespace ModelCompiler.Runtime.Kernels;

/// <summary>
/// A process-wide cap on the threads the kernels use (the GEMM's default options and the kernels' row loops, <see cref="For"/>);
/// 0 (the default): no cap, one per core. <c>mc bench --threads N</c> sets it.
/// </summary>
public static class KernelThreading
{
    private static int _maxThreads;

    public static int MaxThreads
    {
        get => _maxThreads;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            _maxThreads = value;
            Options = new ParallelOptions { MaxDegreeOfParallelism = value == 0 ? -1 : value };
            GemmOptions.SetDefault(new GemmOptions { MaxThreads = value });
        }
    }

    /// <summary>The options of the kernels that still use Parallel.For (weight packing at load).</summary>
    public static ParallelOptions Options { get; private set; } = new();

    /// <summary>
    /// Runs body(0..count-1) on the GEMM's persistent workers (<see cref="GemmWorkerPool.Shared"/>) and the caller.
    /// Every kernel between two GEMMs shares those threads: a .NET thread-pool thread would compete for a core with
    /// a GEMM worker still spinning after its last job, and one preempted in the middle of a row holds up the whole
    /// kernel (on two cores that cost a decode step's attention ten times its work). Bodies must not call kernels
    /// that fan out themselves (the pool runs one job at a time).
    /// </summary>
    public static void For(int count, Action<int> body)
    {
        if (count <= 0) return;
        var pool = GemmWorkerPool.Shared;
        if (count == 1 || _maxThreads == 1)
            for (int i = 0; i < count; i++) body(i);
        else if (_maxThreads == 0 || _maxThreads >= pool.Workers + 1)
            pool.Run(count, body);
        else
            Parallel.For(0, count, Options, body);
    }
}
