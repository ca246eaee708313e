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

    public static CudaModel Load(Graph graph, WeightStore store, GpuDevice device)
    {
        var model = new CudaModel(graph, device);
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

    public long[] Generate(long[] start, int steps, IReadOnlyCollection<long> eosIds, Action<int>? progress = null, Action<int, TimeSpan>? stepTime = null)
    {
        var ids = new List<long>(start);
        var accelerator = _model.Device.Accelerator;
        var past = _pasts.ToDictionary(p => p.Name, p => _model.Upload(HostTensor.FromFloats(
            p.Type.Shape.Select((d, i) => i == 0 ? 1 : i == 1 ? 0 : d.Size).ToArray(), [], p.Type.DType)), StringComparer.Ordinal);
        foreach (var p in past.Values) _model.Keep(p);
        MemoryBuffer1D<int, Stride1D.Dense>? mask = null;
        using var result = accelerator.Allocate1D<int>(1);
        long[] feed = start;
        var clock = new System.Diagnostics.Stopwatch();
        try
        {
            for (int step = 0; step < steps; step++)
            {
                clock.Restart();
                var inputs = new Dictionary<string, DeviceValue>(past, StringComparer.Ordinal)
                {
                    [_generated] = new DeviceValue(DType.I64, [1, feed.Length], feed),
                };
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
                foreach (var key in past.Keys.ToList())
                {
                    _model.Release(past[key]);
                    var present = outputs["present" + key["past".Length..]];
                    _model.Keep(present);
                    past[key] = present;
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
            foreach (var p in past.Values) _model.Release(p);
            mask?.Dispose();
        }
        return ids.ToArray();
    }
}
