using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Cuda;

/// <summary>The cuda target in one place: the passes it runs, and a model on a device with its weights loaded.</summary>
public static class CudaBackend
{
    public const string Target = "cuda", SimulatedTarget = "cuda-sim";

    /// <summary>The fused IR of the CPU target (norm+matmul prologues, linear epilogues) feeds this backend too.</summary>
    public static IReadOnlyList<string> Pipeline => PassManager.FusionPipeline;

    public static IReadOnlyList<string> CachedPipeline { get; } = [.. PassManager.FusionPipeline, "kv-cache"];

    public static CudaModel Load(Graph graph, WeightStore store, GpuDevice device, int weightFormat = Kernels.WeightFormat.F32)
    {
        var model = new CudaModel(graph, device, weightFormat);
        model.LoadWeights(store.ReadFloat32);
        return model;
    }
}

/// <summary>
/// Greedy decoding on the device through the KV-cached graph: presents stay on the device as the next step's pasts, the
/// argmax runs on the device, and one token id per step comes back.
/// </summary>
public sealed class CudaCachedDecoder
{
    private readonly CudaModel _model;
    private readonly string _generated;
    private readonly List<(string Name, TensorType Type)> _pasts;

    public CudaCachedDecoder(Graph cachedGraph, CudaModel model)
    {
        _model = model;
        _generated = KvCacheRewrite.GeneratedInput(cachedGraph)?.Attrs.Str("name") ?? throw new McException($"graph {cachedGraph.Name} has no input_ids");
        _pasts = cachedGraph.Inputs.Where(i => i.Attrs.Str("name").StartsWith("past.", StringComparison.Ordinal))
            .Select(i => (i.Attrs.Str("name"), i.Type)).ToList();
        if (_pasts.Count == 0) throw new McException($"graph {cachedGraph.Name} has no KV cache (run the kv-cache pass first)");
    }

    /// <summary>Kernel launches of the last step.</summary>
    public int LastStepLaunches { get; private set; }

    /// <summary>Host↔device copies of the last step (the token id in, the sampled id out).</summary>
    public int LastStepTransfers { get; private set; }

    /// <summary>
    /// Greedy decoding of <paramref name="steps"/> tokens after <paramref name="start"/>. The caches are allocated once at
    /// their final length (prompt + steps) and appended in place; a step uploads the token id and reads back the argmax.
    /// </summary>
    public long[] Generate(long[] start, int steps, IReadOnlyCollection<long> eosIds, Action<int>? progress = null, Action<int, TimeSpan>? stepTime = null)
    {
        var ids = new List<long>(start);
        var accelerator = _model.Device.Accelerator;
        long capacity = start.Length + Math.Max(steps, 1);
        var past = _pasts.ToDictionary(p => p.Name, p => _model.AllocateCache(p.Type.DType,
            p.Type.Shape.Select((d, i) => i == 0 ? 1 : i == 1 ? 0 : d.Size).ToArray(), capacity), StringComparer.Ordinal);
        var caches = past.Values.ToList();
        MemoryBuffer1D<int, Stride1D.Dense>? mask = null;
        using var result = accelerator.Allocate1D<int>(1);
        long[] feed = start;
        var inputs = new Dictionary<string, DeviceValue>(past, StringComparer.Ordinal);
        var clock = new System.Diagnostics.Stopwatch();
        try
        {
            for (int step = 0; step < steps; step++)
            {
                clock.Restart();
                inputs[_generated] = new DeviceValue(DType.I64, [1, feed.Length], feed);
                var outputs = _model.RunDevice(inputs);
                var logits = outputs["logits"];
                if (mask is null)
                {
                    var flags = new int[logits.Shape[^1]];
                    foreach (var eos in eosIds) if (eos >= 0 && eos < flags.Length) flags[eos] = 1;
                    if (flags.All(f => f != 0)) throw new McException("greedy decoding: every token id is masked");
                    mask = accelerator.Allocate1D(flags);
                }
                long next = _model.ArgMaxLast(logits, mask, result);
                LastStepLaunches = _model.Launches + 1;
                LastStepTransfers = _model.Transfers;
                foreach (var (name, _) in _pasts)
                {
                    var present = outputs["present" + name["past".Length..]];
                    if (present.Buffer != past[name].Buffer)
                    {
                        // Not appended in place (a layout the cache does not cover): the present replaces the past.
                        _model.Keep(present);
                        if (!caches.Contains(past[name])) _model.Release(past[name]);
                    }
                    past[name] = present;
                    inputs[name] = present;
                }
                _model.ReleaseAll();
                ids.Add(next);
                feed = [next];
                stepTime?.Invoke(step, clock.Elapsed);
                progress?.Invoke(step + 1);
            }
        }
        finally
        {
            foreach (var (name, value) in past)
                if (!caches.Any(c => c.Buffer == value.Buffer)) _model.Release(value);
            foreach (var c in caches) _model.FreeCache(c);
            mask?.Dispose();
        }
        return ids.ToArray();
    }
}
