using System.Numerics;

namespace ModelCompiler.Runtime.Distributed;

/// <summary>
/// A communicator for ranks that are threads of one process (how CI runs sharded programs, and the CPU target's
/// <c>--tp N</c>). Each collective publishes every rank's buffer, waits at a barrier, lets each rank read the others,
/// and waits again before anyone reuses a buffer. Sums run in rank order on every rank, so all ranks get the same bits.
/// A failing rank cancels the group's token: the others leave their barrier with an error instead of waiting forever.
/// </summary>
public sealed class InProcessCommunicator : ICommunicator
{
    private sealed class Group(int size, CancellationToken cancel)
    {
        public readonly Barrier Barrier = new(size);
        public readonly object?[] Slots = new object?[size];
        public readonly CancellationToken Cancel = cancel;
    }

    private readonly Group _group;

    private InProcessCommunicator(Group group, int rank)
    {
        _group = group;
        Rank = rank;
    }

    public int Rank { get; }

    public int Size => _group.Slots.Length;

    /// <summary>One communicator per rank of a new group of <paramref name="size"/> ranks.</summary>
    public static IReadOnlyList<InProcessCommunicator> CreateGroup(int size, CancellationToken cancel = default)
    {
        if (size < 1) throw new McException($"a communicator group needs at least one rank, got {size}");
        var group = new Group(size, cancel);
        return Enumerable.Range(0, size).Select(r => new InProcessCommunicator(group, r)).ToArray();
    }

    public void AllReduceSum(float[] data) => AllReduce(data);

    public void AllReduceSum(double[] data) => AllReduce(data);

    public void AllGather(float[] local, float[] gathered) => Gather(local, gathered);

    public void AllGather(double[] local, double[] gathered) => Gather(local, gathered);

    private void AllReduce<T>(T[] data) where T : INumber<T>
    {
        var others = Exchange(data);
        var sum = new T[data.Length];
        foreach (var o in others)
        {
            var src = (T[])o;
            if (src.Length != data.Length) throw Mismatch("all_reduce", data.Length, src.Length);
            for (int i = 0; i < sum.Length; i++) sum[i] += src[i];
        }
        Wait();  // every rank has read every buffer: now each may overwrite its own
        sum.CopyTo(data, 0);
    }

    private void Gather<T>(T[] local, T[] gathered)
    {
        if (gathered.Length != (long)local.Length * Size)
            throw new McException($"all_gather: rank {Rank} needs room for {Size} × {local.Length} elements, got {gathered.Length}");
        var all = Exchange(local);
        for (int r = 0; r < all.Length; r++)
        {
            var src = (T[])all[r];
            if (src.Length != local.Length) throw Mismatch("all_gather", local.Length, src.Length);
            src.CopyTo(gathered, r * local.Length);
        }
        Wait();
    }

    /// <summary>Publishes this rank's buffer and returns every rank's, in rank order.</summary>
    private object[] Exchange(object buffer)
    {
        _group.Slots[Rank] = buffer;
        Wait();
        return _group.Slots.Select(s => s!).ToArray();
    }

    private void Wait()
    {
        try
        {
            _group.Barrier.SignalAndWait(_group.Cancel);
        }
        catch (OperationCanceledException)
        {
            throw new McException($"rank {Rank} of {Size}: another rank failed, so the collective was abandoned");
        }
    }

    private McException Mismatch(string op, int mine, int theirs) =>
        new($"{op}: rank {Rank} has {mine} elements but another rank has {theirs} (the ranks run different programs)");
}
