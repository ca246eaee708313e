using ModelCompiler.Backends;
using ModelCompiler.Backends.Cpu;
using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Cli;

/// <summary>Where <c>mc eval</c> runs a graph: one forward from named inputs to float32 outputs.</summary>
internal interface IEvalTarget
{
    string Name { get; }

    /// <param name="cachedPrefixLength">the prompt length when decoding by recomputation (see <see cref="Interpreter.Run"/>)</param>
    IReadOnlyDictionary<string, (long[] Shape, float[] Data)> Run(IReadOnlyDictionary<string, RefTensor> inputs, long? cachedPrefixLength = null);
}

internal static class EvalTargets
{
    public const string Interpreter = "interpreter", Cpu = "cpu", Cuda = "cuda", CudaSim = "cuda-sim";

    public static readonly string[] Names = [Interpreter, Cpu, Cuda, CudaSim];

    /// <summary>The passes a target runs before it sees the graph.</summary>
    public static IReadOnlyList<string> Pipeline(string target) =>
        target == Cpu ? CpuBackend.Pipeline : target is Cuda or CudaSim ? Backends.Cuda.CudaBackend.Pipeline : Passes.PassManager.InterpreterPipeline;

    /// <summary>A target for a graph whose weights <see cref="WeightBinding.Validate"/> has already checked against <paramref name="store"/>.</summary>
    public static IEvalTarget Create(string target, Graph graph, WeightStore store, Precision precision, string cudaDType = "fp32") => target switch
    {
        Cpu => CpuEvalTarget.Create(graph, store),
        Cuda or CudaSim => CudaEvalTarget.Create(target, graph, store, Backends.Cuda.CudaModel.ParseDType(cudaDType)),
        _ => new InterpreterEvalTarget(graph, precision, store),
    };
}

/// <summary>The reference interpreter, loading each weight once on first use.</summary>
internal sealed class InterpreterEvalTarget(Graph graph, Precision precision, WeightStore store) : IEvalTarget
{
    private readonly Interpreter _interpreter = new(graph, precision);
    private readonly Func<string, TensorType, RefTensor> _load = WeightBinding.Loader(store);
    private readonly Dictionary<string, RefTensor> _cache = new(StringComparer.Ordinal);

    public string Name => EvalTargets.Interpreter;

    public IReadOnlyDictionary<string, (long[] Shape, float[] Data)> Run(IReadOnlyDictionary<string, RefTensor> inputs, long? cachedPrefixLength = null)
    {
        RefTensor Weight(string name, TensorType type) => _cache.TryGetValue(name, out var t) ? t : _cache[name] = _load(name, type);
        return _interpreter.Run(inputs, Weight, cachedPrefixLength: cachedPrefixLength)
            .ToDictionary(kv => kv.Key, kv => (kv.Value.Shape, kv.Value.ToFloat32()), StringComparer.Ordinal);
    }
}

/// <summary>
/// The graph compiled to C# and loaded in-process. Set MC_CPU_CACHE to a folder to keep the compiled assemblies
/// there between runs (keyed by a hash of the generated source).
/// </summary>
internal sealed class CpuEvalTarget : IEvalTarget
{
    private readonly ICompiledModel _model;

    private CpuEvalTarget(ICompiledModel model) => _model = model;

    public static CpuEvalTarget Create(Graph graph, WeightStore store)
    {
        var cache = Environment.GetEnvironmentVariable("MC_CPU_CACHE");
        var model = CpuBackend.Instantiate(CpuBackend.Compile(graph, string.IsNullOrEmpty(cache) ? null : cache));
        model.LoadWeights(store);
        return new CpuEvalTarget(model);
    }

    public string Name => EvalTargets.Cpu;

    /// <summary>Greedy decoding of input_ids row 0 through the compiled KV-cached graph (prefill, then one token per step).</summary>
    public static long[] GenerateCached(Graph freshGraph, WeightStore store, Dictionary<string, RefTensor> feeds, int steps, Action<int>? progress = null)
    {
        if (!feeds.TryGetValue("input_ids", out var inputIds) || inputIds.Shape.Length != 2)
            throw new McException("--generate needs an input_ids input of shape [batch, seq]");
        var others = feeds.Keys.Except(["input_ids"]).ToList();
        if (others.Count > 0) throw new McException($"--generate supports models whose inputs are input_ids (and decoder_input_ids); this one also takes {string.Join(", ", others)}");
        new Passes.PassManager(CpuBackend.CachedPipeline).Run(freshGraph);
        var cache = Environment.GetEnvironmentVariable("MC_CPU_CACHE");
        var model = CpuBackend.Instantiate(CpuBackend.Compile(freshGraph, string.IsNullOrEmpty(cache) ? null : cache));
        model.LoadWeights(store);
        var row0 = inputIds.I!.Take((int)inputIds.Shape[1]).ToArray();
        return new CompiledCachedDecoder(freshGraph, model).Generate(row0, steps, GreedyDecoder.EosIds(freshGraph), progress: progress);
    }

    /// <summary>Interpreter tensors as the compiled models' host tensors.</summary>
    public static Dictionary<string, HostTensor> ToHost(IReadOnlyDictionary<string, RefTensor> inputs) =>
        inputs.ToDictionary(kv => kv.Key, kv => kv.Value.IsFloat
            ? HostTensor.FromFloats(kv.Value.Shape, kv.Value.ToFloat32(), kv.Value.DType)
            : HostTensor.FromInts(kv.Value.Shape, kv.Value.I!, kv.Value.DType), StringComparer.Ordinal);

    public IReadOnlyDictionary<string, (long[] Shape, float[] Data)> Run(IReadOnlyDictionary<string, RefTensor> inputs, long? cachedPrefixLength = null)
    {
        var feeds = ToHost(inputs);
        return _model.Run(feeds, cachedPrefixLength).ToDictionary(
            kv => kv.Key, kv => (kv.Value.Shape, kv.Value.Floats ?? Array.ConvertAll(kv.Value.Ints!, v => (float)v)), StringComparer.Ordinal);
    }
}

/// <summary>
/// <c>--tp N</c>: the model sharded by the tensor-parallel pass, one rank per thread of this process, talking through
/// the in-process communicator, on the interpreter or the cpu target. Rank 0's outputs (all ranks agree).
/// </summary>
internal sealed class TensorParallelEvalTarget : IEvalTarget
{
    private readonly Func<IReadOnlyDictionary<string, RefTensor>, long?, IReadOnlyDictionary<string, (long[] Shape, float[] Data)>> _run;

    public TensorParallelEvalTarget(string target, IReadOnlyList<Graph> rankGraphs, WeightStore store, Precision precision)
    {
        Name = $"{target} --tp {rankGraphs.Count}";
        if (target == EvalTargets.Cpu)   // CpuGroup runs the cpu target's passes on each rank
        {
            var cache = Environment.GetEnvironmentVariable("MC_CPU_CACHE");
            var group = new TensorParallel.CpuGroup(rankGraphs, store, string.IsNullOrEmpty(cache) ? null : cache);
            _run = (inputs, prefix) => group.Run(CpuEvalTarget.ToHost(inputs), prefix).ToDictionary(
                kv => kv.Key, kv => (kv.Value.Shape, kv.Value.Floats ?? Array.ConvertAll(kv.Value.Ints!, v => (float)v)), StringComparer.Ordinal);
        }
        else
        {
            foreach (var g in rankGraphs) new Passes.PassManager(EvalTargets.Pipeline(target)).Run(g);
            var load = WeightBinding.Loader(store);
            var cache = new System.Collections.Concurrent.ConcurrentDictionary<string, RefTensor>(StringComparer.Ordinal);
            RefTensor Weight(string name, TensorType type) => cache.GetOrAdd(name, n => load(n, type));
            _run = (inputs, prefix) => TensorParallel.RunRanks(rankGraphs.Count, (rank, comm) =>
                    new Interpreter(rankGraphs[rank], precision, comm).Run(inputs, Weight, cachedPrefixLength: prefix))[0]
                .ToDictionary(kv => kv.Key, kv => (kv.Value.Shape, kv.Value.ToFloat32()), StringComparer.Ordinal);
        }
    }

    public string Name { get; }

    public IReadOnlyDictionary<string, (long[] Shape, float[] Data)> Run(IReadOnlyDictionary<string, RefTensor> inputs, long? cachedPrefixLength = null) =>
        _run(inputs, cachedPrefixLength);
}
