namespace ModelCompiler.Runtime.Kernels;

/// <summary>
/// A process-wide cap on the threads the kernels use (the GEMM's default options and every kernel's Parallel.For);
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

    /// <summary>The options every kernel's Parallel.For runs with.</summary>
    public static ParallelOptions Options { get; private set; } = new();
}
