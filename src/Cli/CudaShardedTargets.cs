using ModelCompiler.Backends;
using ModelCompiler.Backends.Cuda;
using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Cli;

/// <summary>
/// <c>--target cuda|cuda-sim --tp N</c> for <c>mc eval</c>: the model sharded by the tensor-parallel pass, one
/// <see cref="CudaModel"/> per rank on its own device (GPU r, or a simulated one), collectives through NCCL on GPUs
/// and through the in-process communicator on the simulator. Rank 0's outputs (all ranks agree).
/// </summary>
internal sealed class CudaShardedEvalTarget : IEvalTarget, IDisposable
{
    private readonly CudaRankGroup _group;
    private readonly CudaShardedModel _model;
    private readonly Func<Graph> _elaborate;
    private readonly WeightStore _store;

    private CudaShardedEvalTarget(string name, CudaRankGroup group, CudaShardedModel model, Func<Graph> elaborate, WeightStore store)
    {
        Name = name;
        _group = group;
        _model = model;
        _elaborate = elaborate;
        _store = store;
    }

    public string Name { get; }

    /// <summary>Checks the ranks divide the model before any device is opened, then opens N devices and loads each rank's shard.</summary>
    public static CudaShardedEvalTarget Create(string target, int ranks, Func<Graph> elaborate, WeightStore store)
    {
        TensorParallel.ShardGraphs(elaborate, ranks);   // the divisibility error comes first, whatever the machine
        var group = CudaRankGroup.Open(ranks, simulate: target == CudaBackend.SimulatedTarget);
        try
        {
            var model = CudaShardedModel.Create(group, elaborate, CudaBackend.Pipeline, store.ReadFloat32);
            return new CudaShardedEvalTarget($"{target} --tp {ranks}", group, model, elaborate, store);
        }
        catch
        {
            group.Dispose();
            throw;
        }
    }

    public IReadOnlyDictionary<string, (long[] Shape, float[] Data)> Run(IReadOnlyDictionary<string, RefTensor> inputs, long? cachedPrefixLength = null) =>
        _model.Run(CpuEvalTarget.ToHost(inputs), cachedPrefixLength).ToDictionary(
            kv => kv.Key, kv => (kv.Value.Shape, kv.Value.Floats ?? Array.ConvertAll(kv.Value.Ints!, v => (float)v)), StringComparer.Ordinal);

    /// <summary>Greedy decoding of input_ids row 0 through every rank's KV-cached shard, in lockstep.</summary>
    public long[] GenerateCached(Dictionary<string, RefTensor> feeds, int steps, Action<int>? progress = null)
    {
        if (!feeds.TryGetValue("input_ids", out var inputIds) || inputIds.Shape.Length != 2)
            throw new McException("--generate needs an input_ids input of shape [batch, seq]");
        var others = feeds.Keys.Except(["input_ids"]).ToList();
        if (others.Count > 0) throw new McException($"--generate supports models whose inputs are input_ids; this one also takes {string.Join(", ", others)}");
        using var cached = CudaShardedModel.Create(_group, _elaborate, CudaBackend.CachedPipeline, _store.ReadFloat32);
        var row0 = inputIds.I!.Take((int)inputIds.Shape[1]).ToArray();
        return cached.Generate(row0, steps, GreedyDecoder.EosIds(_elaborate()), progress);
    }

    public void Dispose()
    {
        _model.Dispose();
        _group.Dispose();
    }
}
