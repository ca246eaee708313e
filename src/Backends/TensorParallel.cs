using ModelCompiler.Backends.Cpu;
using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Distributed;

namespace ModelCompiler.Backends;

/// <summary>
/// Runs a model over N ranks (<c>--tp N</c>): each rank gets its own graph from the tensor-parallel pass and runs it on
/// its own thread, talking to the others through an <see cref="ICommunicator"/>. Here the ranks are threads of one
/// process (<see cref="InProcessCommunicator"/>), on the interpreter or the CPU target; every rank ends with the same
/// outputs, and rank 0's are returned.
/// </summary>
public static class TensorParallel
{
    /// <summary>
    /// The program of every rank: <paramref name="elaborate"/> makes a fresh graph per rank, which is cleaned up, checked
    /// for divisibility and sharded. Ranks of one are the graph itself, cleaned up.
    /// </summary>
    public static IReadOnlyList<Graph> ShardGraphs(Func<Graph> elaborate, int ranks)
    {
        if (ranks < 1) throw new McException($"--tp needs at least 1 rank, got {ranks}");
        var graphs = new List<Graph>();
        for (int rank = 0; rank < ranks; rank++)
        {
            var graph = elaborate();
            new PassManager(PassManager.CleanupPipeline).Run(graph);
            if (rank == 0) TensorParallelShard.CheckDivisible(graph, ranks);
            new PassManager(new IPass[] { new TensorParallelShard(ranks, rank) }).Run(graph);
            graphs.Add(graph);
        }
        return graphs;
    }

    /// <summary>
    /// Runs <paramref name="body"/> once per rank, each on its own thread with its own communicator, and returns the
    /// ranks' results in rank order. When a rank fails the others are released from their collectives, and the first
    /// failure is rethrown.
    /// </summary>
    public static T[] RunRanks<T>(int ranks, Func<int, ICommunicator, T> body)
    {
        using var cancel = new CancellationTokenSource();
        var group = InProcessCommunicator.CreateGroup(ranks, cancel.Token);
        var results = new T[ranks];
        var errors = new Exception?[ranks];
        var threads = Enumerable.Range(0, ranks).Select(rank => new Thread(() =>
        {
            try { results[rank] = body(rank, group[rank]); }
            catch (Exception e) { errors[rank] = e; cancel.Cancel(); }
        }, maxStackSize: 16 << 20) { IsBackground = true, Name = $"mc tp rank {rank}" }).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        // The first real failure, not a rank released because another failed.
        static bool Released(Exception e) => e is McException && e.Message.Contains("another rank failed", StringComparison.Ordinal);
        var first = errors.FirstOrDefault(e => e is not null && !Released(e)) ?? errors.FirstOrDefault(e => e is not null);
        if (first is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
        return results;
    }

    /// <summary>One forward of a sharded model on the reference interpreter (every rank loads its own weights through <paramref name="weights"/>).</summary>
    public static IReadOnlyDictionary<string, RefTensor> RunInterpreter(IReadOnlyList<Graph> rankGraphs,
        IReadOnlyDictionary<string, RefTensor> inputs, Func<string, TensorType, RefTensor> weights, Precision precision = Precision.F32)
        => RunRanks(rankGraphs.Count, (rank, comm) => new Interpreter(rankGraphs[rank], precision, comm).Run(inputs, weights))[0];

    /// <summary>
    /// The sharded program compiled for the CPU, one model per rank, weights loaded (each rank keeps its slices) and
    /// communicators attached. Run it with <see cref="Run"/>.
    /// </summary>
    public sealed class CpuGroup
    {
        private readonly ICompiledModel[] _ranks;

        public CpuGroup(IReadOnlyList<Graph> rankGraphs, WeightStore store, string? cacheDirectory = null)
        {
            _ranks = rankGraphs.Select(g =>
            {
                new PassManager(CpuBackend.Pipeline).Run(g);
                return CpuBackend.Instantiate(CpuBackend.Compile(g, cacheDirectory));
            }).ToArray();
            foreach (var model in _ranks) model.LoadWeights(store);
        }

        public IReadOnlyList<ICompiledModel> Ranks => _ranks;

        /// <summary>One forward on every rank at once; rank 0's outputs (every rank has the same).</summary>
        public IReadOnlyDictionary<string, HostTensor> Run(IReadOnlyDictionary<string, HostTensor> inputs, long? cachedPrefixLength = null) =>
            RunRanks(_ranks.Length, (rank, comm) =>
            {
                var model = _ranks[rank];
                if (model is IShardedModel sharded) sharded.Communicator = comm;
                return model.Run(inputs, cachedPrefixLength);
            })[0];
    }
}
