namespace ModelCompiler.Runtime.Kernels;

/// <summary>
/// A small persistent pool for the GEMM kernels: <see cref="Workers"/> dedicated threads plus the
/// caller. A call publishes a job by bumping a generation counter; idle workers spin on it for a while
/// (so back-to-back kernel calls, as in decoding, cost well under a microsecond to fan out) and then
/// block on an event (so an idle process burns no CPU). Work items are claimed with an interlocked
/// counter; the caller runs items too and spins until the last one finishes. One job at a time:
/// concurrent callers are serialised.
/// </summary>
public sealed class GemmWorkerPool
{
    /// <summary>Process-wide pool with one worker per extra core.</summary>
    public static GemmWorkerPool Shared { get; } = new(Math.Max(0, Environment.ProcessorCount - 1));

    /// <summary>How long an idle worker spins before it blocks (Stopwatch ticks of ~100 µs).</summary>
    static readonly long SpinTicks = System.Diagnostics.Stopwatch.Frequency / 10_000;

    readonly Thread[] _threads;
    readonly ManualResetEventSlim[] _wake;
    readonly int[] _sleeping;
    readonly object _callLock = new();

    int _generation;
    Job? _current;

    /// <summary>One call's work. A new object per call, so a worker that wakes late can only find a
    /// finished job (its counter already past the end), never half-reset state.</summary>
    sealed class Job(Action<int> body, int count)
    {
        public readonly Action<int> Body = body;
        public readonly int Count = count;
        public int Next;
        public int Remaining = count;
        public Exception? Error;
    }

    public int Workers => _threads.Length;

    public GemmWorkerPool(int workers)
    {
        _threads = new Thread[workers];
        _wake = new ManualResetEventSlim[workers];
        _sleeping = new int[workers];
        for (int i = 0; i < workers; i++)
        {
            _wake[i] = new ManualResetEventSlim(false, 0);
            int id = i;
            _threads[i] = new Thread(() => WorkerLoop(id)) { IsBackground = true, Name = $"gemm-worker-{i}" };
            _threads[i].Start();
        }
    }

    /// <summary>Runs body(0..count-1), at most Workers+1 at once, and returns when all have finished.</summary>
    public void Run(int count, Action<int> body)
    {
        if (count <= 0) return;
        if (count == 1 || _threads.Length == 0)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        lock (_callLock)
        {
            var job = new Job(body, count);
            Volatile.Write(ref _current, job);
            Interlocked.Increment(ref _generation);     // full fence: publishes the job
            for (int i = 0; i < _sleeping.Length; i++)
                if (Volatile.Read(ref _sleeping[i]) != 0) _wake[i].Set();
            Drain(job);
            var sw = new SpinWait();
            while (Volatile.Read(ref job.Remaining) != 0) sw.SpinOnce(-1);
            if (job.Error is { } e) throw new AggregateException(e);
        }
    }

    static void Drain(Job job)
    {
        int i;
        while ((i = Interlocked.Increment(ref job.Next) - 1) < job.Count)
        {
            try { job.Body(i); }
            catch (Exception e) { Interlocked.CompareExchange(ref job.Error, e, null); }
            Interlocked.Decrement(ref job.Remaining);
        }
    }

    void WorkerLoop(int id)
    {
        int seen = Volatile.Read(ref _generation);
        while (true)
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            int spins = 0;
            while (Volatile.Read(ref _generation) == seen)
            {
                if (++spins < 64 || System.Diagnostics.Stopwatch.GetTimestamp() - start < SpinTicks)
                {
                    Thread.SpinWait(16);
                    continue;
                }
                // Block: announce it, then re-check so a job published meanwhile is not missed.
                _wake[id].Reset();
                Volatile.Write(ref _sleeping[id], 1);
                Interlocked.MemoryBarrier();
                if (Volatile.Read(ref _generation) == seen) _wake[id].Wait();
                Volatile.Write(ref _sleeping[id], 0);
                start = System.Diagnostics.Stopwatch.GetTimestamp();
                spins = 0;
            }
            seen = Volatile.Read(ref _generation);
            if (Volatile.Read(ref _current) is { } job) Drain(job);
        }
    }
}
