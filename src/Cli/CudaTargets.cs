using ModelCompiler.Backends;
using ModelCompiler.Backends.Cuda;
using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;

namespace ModelCompiler.Cli;

/// <summary>
/// <c>--target cuda</c> (an NVIDIA GPU through ILGPU) and <c>--target cuda-sim</c> (the same kernels on ILGPU's CPU
/// accelerator): one forward with the weights on the device.
/// </summary>
internal sealed class CudaEvalTarget : IEvalTarget, IDisposable
{
    private readonly GpuDevice _device;
    private readonly CudaModel _model;

    private readonly int _weightFormat;

    private CudaEvalTarget(string name, GpuDevice device, CudaModel model, int weightFormat)
    {
        _weightFormat = weightFormat;
        Name = name;
        _device = device;
        _model = model;
    }

    public string Name { get; }

    public static CudaEvalTarget Create(string target, Graph graph, WeightStore store, int weightFormat)
    {
        var device = GpuDevice.Open(simulate: target == CudaBackend.SimulatedTarget);
        try
        {
            return new CudaEvalTarget(target, device, CudaBackend.Load(graph, store, device, weightFormat), weightFormat);
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }

    public IReadOnlyDictionary<string, (long[] Shape, float[] Data)> Run(IReadOnlyDictionary<string, RefTensor> inputs, long? cachedPrefixLength = null)
    {
        var feeds = inputs.ToDictionary(kv => kv.Key, kv => kv.Value.IsFloat
            ? HostTensor.FromFloats(kv.Value.Shape, kv.Value.ToFloat32(), kv.Value.DType)
            : HostTensor.FromInts(kv.Value.Shape, kv.Value.I!, kv.Value.DType), StringComparer.Ordinal);
        return _model.Run(feeds, cachedPrefixLength).ToDictionary(
            kv => kv.Key, kv => (kv.Value.Shape, kv.Value.Floats ?? Array.ConvertAll(kv.Value.Ints!, v => (float)v)), StringComparer.Ordinal);
    }

    /// <summary>Greedy decoding of input_ids row 0 through the KV-cached graph on the device (presents never leave it).</summary>
    public long[] GenerateCached(Graph freshGraph, WeightStore store, Dictionary<string, RefTensor> feeds, int steps, Action<int>? progress = null)
    {
        if (!feeds.TryGetValue("input_ids", out var inputIds) || inputIds.Shape.Length != 2)
            throw new McException("--generate needs an input_ids input of shape [batch, seq]");
        var others = feeds.Keys.Except(["input_ids"]).ToList();
        if (others.Count > 0) throw new McException($"--generate supports models whose inputs are input_ids; this one also takes {string.Join(", ", others)}");
        new PassManager(CudaBackend.CachedPipeline).Run(freshGraph);
        using var cached = CudaBackend.Load(freshGraph, store, _device, _weightFormat);
        var row0 = inputIds.I!.Take((int)inputIds.Shape[1]).ToArray();
        return new CudaCachedDecoder(freshGraph, cached).Generate(row0, steps, GreedyDecoder.EosIds(freshGraph), progress);
    }

    public void Dispose()
    {
        _model.Dispose();
        _device.Dispose();
    }
}
