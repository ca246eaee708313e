using ModelCompiler.Backends.Cpu;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Distributed;
using ModelCompiler.Runtime.Generation;

namespace ModelCompiler.Backends.Generation;

/// <summary>
/// <see cref="ITokenStepper"/> over a model sharded by <c>--tp N</c> on the cpu target: each rank is a compiled
/// KV-cached model holding its shard of the weights and of the KV cache (its heads), and every <see cref="Append"/>
/// runs all ranks at once, each on its own thread, joined by their collectives. All ranks return the same logits.
/// </summary>
public sealed class TensorParallelStepper : ITokenStepper
{
    private readonly CompiledCachedStepper[] _steppers;
    private readonly ICompiledModel[] _models;

    private TensorParallelStepper(CompiledCachedStepper[] steppers, ICompiledModel[] models)
    {
        _steppers = steppers;
        _models = models;
    }

    /// <summary>
    /// Shards a fresh graph per rank (<paramref name="elaborate"/>), rewrites each for the KV cache, compiles it, and
    /// loads each rank's weight slices from <paramref name="store"/>.
    /// </summary>
    public static TensorParallelStepper CompileCpu(Func<Graph> elaborate, int ranks, WeightStore store, long? contextLength, string? cacheDirectory = null)
    {
        var graphs = TensorParallel.ShardGraphs(elaborate, ranks);
        var models = new ICompiledModel[ranks];
        var steppers = new CompiledCachedStepper[ranks];
        for (int rank = 0; rank < ranks; rank++)
        {
            new PassManager(CpuBackend.CachedPipeline).Run(graphs[rank]);
            models[rank] = CpuBackend.Instantiate(CpuBackend.Compile(graphs[rank], cacheDirectory));
            models[rank].LoadWeights(store);
            steppers[rank] = new CompiledCachedStepper(graphs[rank], models[rank], contextLength);
        }
        return new TensorParallelStepper(steppers, models);
    }

    public int Ranks => _steppers.Length;

    public int Position => _steppers[0].Position;

    public long? ContextLength => _steppers[0].ContextLength;

    public void Reset()
    {
        foreach (var s in _steppers) s.Reset();
    }

    public float[] Append(ReadOnlySpan<int> tokens)
    {
        var feed = tokens.ToArray();
        return TensorParallel.RunRanks(_steppers.Length, (rank, comm) =>
        {
            if (_models[rank] is IShardedModel sharded) sharded.Communicator = comm;
            return _steppers[rank].Append(feed);
        })[0];
    }
}
