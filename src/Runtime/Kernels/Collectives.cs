using ModelCompiler.Runtime.Distributed;

namespace ModelCompiler.Runtime.Kernels;

/// <summary>The collectives of a sharded program, over pooled buffers (which may be longer than the tensor).</summary>
public static class Collectives
{
    /// <summary>y[..count] = Σ over ranks of x[..count].</summary>
    public static void AllReduce(ICommunicator? comm, float[] x, float[] y, int count, int ranks, string where)
    {
        var group = Check(comm, ranks, where);
        var sum = x.AsSpan(0, count).ToArray();
        group.AllReduceSum(sum);
        sum.CopyTo(y, 0);
    }

    /// <summary>
    /// y = every rank's x concatenated along an axis: x is [outer, chunk] with chunk = (local extent of the axis) ×
    /// (everything after it); y is [outer, ranks × chunk], rank r's chunk of each outer row at r × chunk.
    /// </summary>
    public static void AllGather(ICommunicator? comm, float[] x, int outer, int chunk, float[] y, int ranks, string where)
    {
        var group = Check(comm, ranks, where);
        int count = checked(outer * chunk);
        var local = x.AsSpan(0, count).ToArray();
        var gathered = new float[checked(count * ranks)];
        group.AllGather(local, gathered);
        for (int o = 0; o < outer; o++)
            for (int r = 0; r < ranks; r++)
                Array.Copy(gathered, r * count + o * chunk, y, (o * ranks + r) * chunk, chunk);
    }

    private static ICommunicator Check(ICommunicator? comm, int ranks, string where)
    {
        if (comm is null) throw new McException($"{where}: this model is one rank of a tensor-parallel group; set its Communicator (--tp) before running it");
        if (comm.Size != ranks) throw new McException($"{where}: the model was sharded for {ranks} ranks but its group has {comm.Size}");
        return comm;
    }
}
