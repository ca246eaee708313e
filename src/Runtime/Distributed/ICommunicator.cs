namespace ModelCompiler.Runtime.Distributed;

/// <summary>
/// The collectives a tensor-parallel program needs, seen from one rank of a group. Every rank of the group must
/// call the same collectives in the same order (a sharded program does: all ranks run the same graph).
/// Results are bit-identical on every rank, so the ranks never drift apart.
/// </summary>
public interface ICommunicator
{
    /// <summary>This rank's index, 0 ≤ Rank &lt; Size.</summary>
    int Rank { get; }

    /// <summary>The number of ranks in the group.</summary>
    int Size { get; }

    /// <summary>Replaces <paramref name="data"/> on every rank by the element-wise sum over the ranks.</summary>
    void AllReduceSum(float[] data);

    /// <inheritdoc cref="AllReduceSum(float[])"/>
    void AllReduceSum(double[] data);

    /// <summary>
    /// Concatenates every rank's <paramref name="local"/> (all of one length) rank by rank into <paramref name="gathered"/>,
    /// which holds <see cref="Size"/> × local.Length elements.
    /// </summary>
    void AllGather(float[] local, float[] gathered);

    /// <inheritdoc cref="AllGather(float[], float[])"/>
    void AllGather(double[] local, double[] gathered);
}
