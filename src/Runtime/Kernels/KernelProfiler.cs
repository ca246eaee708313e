using System.Diagnostics;

namespace ModelCompiler.Runtime.Kernels;

/// <summary>
/// Wall time per kernel kind, summed over the forwards run while a profile is active (<c>mc bench</c>'s per-kernel
/// table). Generated code brackets every kernel call with <see cref="Start"/> and <see cref="Stop"/>; with no
/// profile active (the default) that costs one async-local read per call. A profile sees the kernels of the logical flow
/// (thread, and the tasks it awaits) that began it, so forwards run elsewhere in the process at the same time are not
/// counted; one profile at a time per flow.
/// </summary>
public static class KernelProfiler
{
    private static readonly AsyncLocal<Profile?> s_active = new();

    /// <summary>Starts collecting into a new profile; dispose it to stop.</summary>
    public static Profile Begin()
    {
        var profile = new Profile();
        if (s_active.Value is not null) throw new InvalidOperationException("a kernel profile is already active");
        s_active.Value = profile;
        return profile;
    }

    /// <summary>A timestamp when profiling, else 0.</summary>
    public static long Start() => s_active.Value is null ? 0 : Stopwatch.GetTimestamp();

    /// <summary>Adds the time since <paramref name="start"/> to <paramref name="kernel"/>'s total (no-op when not profiling).</summary>
    public static void Stop(string kernel, long start)
    {
        if (start == 0 || s_active.Value is not { } profile) return;
        profile.Add(kernel, Stopwatch.GetTimestamp() - start);
    }

    /// <summary>Per-kernel totals; <see cref="Phase"/> labels the calls that follow (e.g. "pp", "tg").</summary>
    public sealed class Profile : IDisposable
    {
        private readonly Dictionary<(string Phase, string Kernel), (long Ticks, long Calls)> _totals = new();
        private readonly Lock _lock = new();

        /// <summary>The label recorded with each call from now on (null: calls are not recorded).</summary>
        public string? Phase { get; set; }

        internal void Add(string kernel, long ticks)
        {
            if (Phase is not { } phase) return;
            lock (_lock)
            {
                _totals.TryGetValue((phase, kernel), out var t);
                _totals[(phase, kernel)] = (t.Ticks + ticks, t.Calls + 1);
            }
        }

        /// <summary>(phase, kernel, calls, seconds), largest total first within each phase.</summary>
        public IReadOnlyList<(string Phase, string Kernel, long Calls, double Seconds)> Totals()
        {
            lock (_lock)
                return _totals.Select(kv => (kv.Key.Phase, kv.Key.Kernel, kv.Value.Calls, kv.Value.Ticks / (double)Stopwatch.Frequency))
                    .OrderBy(t => t.Phase, StringComparer.Ordinal).ThenByDescending(t => t.Item4).ToList();
        }

        public void Dispose()
        {
            if (s_active.Value == this) s_active.Value = null;
        }
    }
}
