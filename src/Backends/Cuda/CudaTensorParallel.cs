using System.Collections.Concurrent;
using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Cuda;

/// <summary>
/// The devices of <c>--target cuda|cuda-sim --tp N</c>: one <see cref="GpuDevice"/> per rank and the collectives
/// between them: NCCL on GPUs, the in-process communicator through the host on the simulator (how CI runs it).
/// Each rank is driven by its own host thread, so the ranks' kernel launches overlap; the ranks stay in lockstep
/// through their collectives, which every rank issues in the same order (NCCL's one-device-per-thread use).
/// </summary>
public sealed class CudaRankGroup : IDisposable
{
    private readonly IReadOnlyList<GpuDevice> _devices;

    private CudaRankGroup(IReadOnlyList<GpuDevice> devices, NcclGroup? nccl)
    {
        _devices = devices;
        Nccl = nccl;
    }

    public int Ranks => _devices.Count;

    public IReadOnlyList<GpuDevice> Devices => _devices;

    /// <summary>NCCL's communicators (null on the simulator and for one rank).</summary>
    public NcclGroup? Nccl { get; }

    public bool IsSimulated => _devices[0].IsSimulated;

    public string Description => Nccl is null
        ? $"{Ranks} × {_devices[0].Description}{(Ranks > 1 ? ", in-process communicator" : "")}"
        : $"{Ranks} × {_devices[0].Description}, NCCL {NcclVersion(Nccl.Library.Version)} ({Nccl.Library.Path})";

    private static string NcclVersion(int code) => code >= 10000 ? $"{code / 10000}.{code / 100 % 100}.{code % 100}" : $"{code / 1000}.{code / 100 % 10}.{code % 100}";

    /// <summary><paramref name="ranks"/> devices and their communicators; NCCL is loaded only for real GPUs, after they were found.</summary>
    public static CudaRankGroup Open(int ranks, bool simulate)
    {
        var devices = GpuDevice.OpenGroup(ranks, simulate);
        try
        {
            return new CudaRankGroup(devices, simulate || ranks == 1 ? null : new NcclGroup(NcclLibrary.Shared, devices));
        }
        catch
        {
            for (int r = devices.Count - 1; r >= 0; r--) devices[r].Dispose();
            throw;
        }
    }

    /// <summary>
    /// Runs <paramref name="body"/> once per rank, each on its own thread with its device's context current and the
    /// rank's communicator; returns the results in rank order. A failing rank aborts NCCL's pending collectives (so
    /// the others do not wait for it forever), and its error is rethrown.
    /// </summary>
    public T[] Run<T>(Func<int, IDeviceCommunicator, T> body) =>
        TensorParallel.RunRanks(Ranks, (rank, host) =>
        {
            _devices[rank].RestoreContext();
            IDeviceCommunicator comm = Nccl is null ? new HostStagedCommunicator(host) : Nccl.Ranks[rank];
            try { return body(rank, comm); }
            catch { Nccl?.Abort(); throw; }
        });

    /// <summary>One model per rank, each loading its weights (and keeping only its slices) on its own thread.</summary>
    public CudaModel[] Load(IReadOnlyList<Graph> rankGraphs, Func<string, float[]> load)
    {
        if (rankGraphs.Count != Ranks) throw new McException($"{rankGraphs.Count} rank programs for a group of {Ranks}");
        // Ranks read the same whole weights: read each once, and let go of it when every rank has it.
        var pending = new ConcurrentDictionary<string, (Lazy<float[]> Data, int Left)>(StringComparer.Ordinal);
        var gate = new object();
        float[] Shared(string name)
        {
            Lazy<float[]> data;
            lock (gate)
            {
                (Lazy<float[]> Data, int Left) entry = pending.TryGetValue(name, out var e) ? e : (new Lazy<float[]>(() => load(name)), Ranks);
                entry.Left--;
                if (entry.Left == 0) pending.TryRemove(name, out _); else pending[name] = entry;
                data = entry.Data;
            }
            return data.Value;
        }
        var models = Run((rank, _) =>
        {
            var model = new CudaModel(rankGraphs[rank], _devices[rank]);
            try { model.LoadWeights(Shared); }
            catch { model.Dispose(); throw; }
            return model;
        });
        return models;
    }

    /// <summary>
    /// NCCL's own all-reduce over float32 buffers of <paramref name="counts"/> elements, driven from one thread inside
    /// ncclGroupStart/End: median microseconds per call over <paramref name="iterations"/> back-to-back calls (three
    /// timed batches), and the bus bandwidth NCCL's tests report (bytes × 2(N−1)/N per second).
    /// </summary>
    public IReadOnlyList<(long Bytes, double Microseconds, double BusGBps)> AllReduceSweep(IEnumerable<long> counts, int iterations)
    {
        if (Nccl is null) throw new McException("the all-reduce sweep measures NCCL: it runs on --target cuda");
        var results = new List<(long, double, double)>();
        foreach (var count in counts)
        {
            var buffers = _devices.Select(d => { d.RestoreContext(); return d.Accelerator.Allocate1D<float>(count); }).ToArray();
            try
            {
                for (int r = 0; r < Ranks; r++) { _devices[r].RestoreContext(); buffers[r].MemSetToZero(); _devices[r].Accelerator.Synchronize(); }
                var views = buffers.Select(b => (ArrayView<float>)b.View).ToArray();
                void Batch(int n)
                {
                    for (int i = 0; i < n; i++) Nccl.AllReduceSumAll(views);
                    for (int r = 0; r < Ranks; r++) { _devices[r].RestoreContext(); _devices[r].Accelerator.Synchronize(); }
                }
                Batch(5);
                var times = new List<double>();
                for (int rep = 0; rep < 3; rep++)
                {
                    var clock = Stopwatch.StartNew();
                    Batch(iterations);
                    times.Add(clock.Elapsed.TotalSeconds * 1e6 / iterations);
                }
                double us = times.Order().ElementAt(1);
                long bytes = count * sizeof(float);
                results.Add((bytes, us, bytes * 2.0 * (Ranks - 1) / Ranks / (us * 1e-6) / 1e9));
            }
            finally
            {
                for (int r = Ranks - 1; r >= 0; r--) { _devices[r].RestoreContext(); buffers[r].Dispose(); }
                _devices[0].RestoreContext();
            }
        }
        return results;
    }

    public void Dispose()
    {
        Nccl?.Dispose();
        for (int r = _devices.Count - 1; r >= 0; r--) _devices[r].Dispose();
    }
}

/// <summary>A model sharded over a <see cref="CudaRankGroup"/>: one <see cref="CudaModel"/> per rank, driven in lockstep.</summary>
public sealed class CudaShardedModel : IDisposable
{
    private readonly CudaRankGroup _group;
    private readonly CudaModel[] _models;
    private readonly IReadOnlyList<Graph> _graphs;

    private CudaShardedModel(CudaRankGroup group, IReadOnlyList<Graph> graphs, CudaModel[] models)
    {
        _group = group;
        _graphs = graphs;
        _models = models;
    }

    /// <summary>
    /// Shards fresh graphs (<paramref name="elaborate"/>; <see cref="TensorParallel.ShardGraphs"/> checks that the
    /// ranks divide the heads and FFN widths), runs <paramref name="pipeline"/> on each rank's, and loads each rank's
    /// weight slices on its device.
    /// </summary>
    public static CudaShardedModel Create(CudaRankGroup group, Func<Graph> elaborate, IReadOnlyList<string> pipeline, Func<string, float[]> load)
    {
        var graphs = TensorParallel.ShardGraphs(elaborate, group.Ranks);
        foreach (var g in graphs) new PassManager(pipeline).Run(g);
        return new CudaShardedModel(group, graphs, group.Load(graphs, load));
    }

    public CudaRankGroup Group => _group;

    public IReadOnlyList<CudaModel> Ranks => _models;

    /// <summary>Each rank's program, after the pipeline.</summary>
    public IReadOnlyList<Graph> Graphs => _graphs;

    /// <summary>One forward on every rank; rank 0's outputs (all ranks hold the same).</summary>
    public IReadOnlyDictionary<string, HostTensor> Run(IReadOnlyDictionary<string, HostTensor> inputs, long? cachedPrefixLength = null) =>
        _group.Run((rank, comm) =>
        {
            _models[rank].Communicator = comm;
            return _models[rank].Run(inputs, cachedPrefixLength);
        })[0];

    /// <summary>
    /// Greedy decoding through the ranks' KV-cached graphs (this model must have been made with
    /// <see cref="CudaBackend.CachedPipeline"/>): every rank decodes on its own thread, its KV cache (its heads) on
    /// its device; the gathered logits are the same on every rank, so every rank picks the same token, which is checked.
    /// </summary>
    public long[] Generate(long[] start, int steps, IReadOnlyCollection<long> eosIds, Action<int>? progress = null, Action<int, TimeSpan>? stepTime = null)
    {
        var decoders = _graphs.Select((g, r) => new CudaCachedDecoder(g, _models[r])).ToArray();
        var ids = _group.Run((rank, comm) =>
        {
            _models[rank].Communicator = comm;
            return decoders[rank].Generate(start, steps, eosIds, rank == 0 ? progress : null, rank == 0 ? stepTime : null);
        });
        for (int r = 1; r < ids.Length; r++)
            if (!ids[r].SequenceEqual(ids[0]))
                throw new McException($"tensor-parallel decoding: rank {r} chose other tokens than rank 0 (the ranks' logits differ)");
        LastStepLaunches = decoders.Max(d => d.LastStepLaunches);
        return ids[0];
    }

    /// <summary>Kernel launches of the busiest rank's last decode step.</summary>
    public int LastStepLaunches { get; private set; }

    public void Dispose()
    {
        for (int r = _models.Length - 1; r >= 0; r--)
        {
            _group.Devices[r].RestoreContext();
            _models[r].Dispose();
        }
    }
}

/// <summary>
/// <see cref="ITokenStepper"/> over a <see cref="CudaShardedModel"/> made with <see cref="CudaBackend.CachedPipeline"/>
/// (<c>mc run --target cuda|cuda-sim [--tp N]</c>): each rank keeps its KV cache (its heads) on its device, presents fed
/// back as pasts without copies; every <see cref="Append"/> runs all ranks at once and returns rank 0's last logits row.
/// </summary>
public sealed class CudaShardedStepper : Runtime.Generation.ITokenStepper, IDisposable
{
    private readonly CudaShardedModel _model;
    private readonly string _generated;
    private readonly List<(string Name, TensorType Type)> _pasts;
    private readonly Dictionary<string, DeviceValue>?[] _cache;

    public CudaShardedStepper(CudaShardedModel model, Graph cachedGraph, long? contextLength)
    {
        _model = model;
        ContextLength = contextLength;
        _generated = KvCacheRewrite.GeneratedInput(cachedGraph)?.Attrs.Str("name") ?? throw new McException($"graph {cachedGraph.Name} has no input_ids");
        _pasts = cachedGraph.Inputs.Where(i => i.Attrs.Str("name").StartsWith("past.", StringComparison.Ordinal))
            .Select(i => (i.Attrs.Str("name"), i.Type)).ToList();
        if (_pasts.Count == 0) throw new McException($"graph {cachedGraph.Name} has no KV cache (run the kv-cache pass first)");
        _cache = new Dictionary<string, DeviceValue>?[model.Ranks.Count];
    }

    public int Position { get; private set; }

    public long? ContextLength { get; }

    public void Reset()
    {
        _model.Group.Run((rank, _) => { Drop(rank); return 0; });
        Position = 0;
    }

    public float[] Append(ReadOnlySpan<int> tokens)
    {
        var feed = Array.ConvertAll(tokens.ToArray(), t => (long)t);
        var rows = _model.Group.Run((rank, comm) =>
        {
            var model = _model.Ranks[rank];
            model.Communicator = comm;
            var past = _cache[rank] ??= _pasts.ToDictionary(p => p.Name, p =>
            {
                var empty = model.Upload(HostTensor.FromFloats(p.Type.Shape.Select((d, i) => i == 0 ? 1 : i == 1 ? 0 : d.Size).ToArray(), [], p.Type.DType));
                model.Keep(empty);
                return empty;
            }, StringComparer.Ordinal);
            var inputs = new Dictionary<string, DeviceValue>(past, StringComparer.Ordinal) { [_generated] = new DeviceValue(DType.I64, [1, feed.Length], feed) };
            var outputs = model.RunDevice(inputs);
            float[]? row = null;
            if (rank == 0)
            {
                var logits = model.Download(outputs["logits"]).Floats!;
                long vocab = outputs["logits"].Shape[^1];
                row = logits.AsSpan((int)(logits.Length - vocab), (int)vocab).ToArray();
            }
            foreach (var key in past.Keys.ToList())
            {
                model.Release(past[key]);
                var present = outputs["present" + key["past".Length..]];
                model.Keep(present);
                past[key] = present;
            }
            model.ReleaseAll();
            return row;
        });
        Position += feed.Length;
        return rows[0]!;
    }

    private void Drop(int rank)
    {
        if (_cache[rank] is not { } past) return;
        foreach (var value in past.Values) _model.Ranks[rank].Release(value);
        _cache[rank] = null;
    }

    public void Dispose()
    {
        _model.Dispose();
        _model.Group.Dispose();
    }
}
