using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Backends.Cuda.Kernels;
using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Runtime;
using K = ModelCompiler.Backends.Cuda.Kernels;

namespace ModelCompiler.Backends.Cuda;

/// <summary>
/// A graph run on a <see cref="GpuDevice"/>, node by node: weights uploaded once, activations kept on the device between
/// kernels (buffers pooled across runs), only the requested outputs copied back. Every float op of the fused IR has a
/// kernel; integer index arithmetic (positions, id casts) and the two literature-only position ops (xpos,
/// relative_scores) and sinusoidal tables are computed on the host by the reference interpreter's own op code and
/// uploaded (<see cref="HostFallbacks"/> counts them).
/// </summary>
public sealed partial class CudaModel : ICompiledModel, IDisposable
{
    private readonly Graph _graph;
    private readonly GpuDevice _device;
    private readonly Interpreter _host;
    private readonly Dictionary<Node, DeviceValue> _weights = new();
    private readonly Dictionary<long, Stack<MemoryBuffer1D<float, Stride1D.Dense>>> _pool = new();
    private readonly List<MemoryBuffer1D<float, Stride1D.Dense>> _inUse = new();
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _dummy;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _dummyInts;
    private readonly Launchers _launch;

    public CudaModel(Graph graph, GpuDevice device)
    {
        _graph = graph;
        _device = device;
        _host = new Interpreter(graph);
        _dummy = device.Accelerator.Allocate1D<float>(1);
        _dummyInts = device.Accelerator.Allocate1D<int>(1);
        _launch = new Launchers(device);
        Inputs = graph.Inputs.Select(n => Spec(n.Attrs.Str("name"), n.Type)).ToList();
        Outputs = graph.Outputs.Select(o => Spec(o.Key, o.Value.Type)).ToList();
        Weights = graph.Weights.GroupBy(n => n.Attrs.Str("name")).Select(g => Spec(g.Key, g.First().Type)).ToList();
    }

    public string Name => _graph.Name;
    public IReadOnlyList<TensorSpec> Inputs { get; }
    public IReadOnlyList<TensorSpec> Outputs { get; }
    public IReadOnlyList<TensorSpec> Weights { get; }
    public bool WeightsLoaded { get; private set; }
    public GpuDevice Device => _device;

    /// <summary>Nodes of the last run computed on the host (see the class summary), by op.</summary>
    public Dictionary<OpKind, int> HostFallbacks { get; } = new();

    /// <summary>Kernel launches in the last run.</summary>
    public int Launches => _launch.Count;

    private static TensorSpec Spec(string name, TensorType type) =>
        new(name, type.DType, type.Shape.Select(d => d.IsKnown ? TensorDim.Of(d.Size) : TensorDim.Sym(d.Symbol!)).ToList());

    public void LoadWeights(Func<string, float[]> load)
    {
        var byName = new Dictionary<string, DeviceValue>(StringComparer.Ordinal);
        foreach (var node in _graph.Weights)
        {
            var name = node.Attrs.Str("name");
            if (!byName.TryGetValue(name, out var value))
            {
                var shape = node.Type.Shape.Select(d => d.IsKnown ? d.Size : throw new McException($"weight '{name}' has a symbolic shape {node.Type}")).ToArray();
                var data = load(name);
                if (node.Type.DType.IsFloat())
                {
                    var buffer = _device.Accelerator.Allocate1D<float>(Math.Max(1, data.Length));
                    buffer.View.SubView(0, data.Length).CopyFromCPU(data);
                    value = new DeviceValue(node.Type.DType, shape, buffer);
                }
                else value = new DeviceValue(node.Type.DType, shape, Array.ConvertAll(data, v => (long)v));
                byName[name] = value;
            }
            _weights[node] = value;
        }
        FoldStaticWeights();
        WeightsLoaded = true;
    }

    public IReadOnlyDictionary<string, HostTensor> Run(IReadOnlyDictionary<string, HostTensor> inputs, long? cachedPrefixLength = null)
    {
        var feeds = inputs.ToDictionary(kv => kv.Key, kv => Upload(kv.Value), StringComparer.Ordinal);
        var outputs = RunDevice(feeds, cachedPrefixLength);
        var result = outputs.ToDictionary(kv => kv.Key, kv => Download(kv.Value), StringComparer.Ordinal);
        ReleaseAll();
        return result;
    }

    /// <summary>
    /// One forward with device-resident inputs and outputs (a decoder feeds presents back as pasts without copies).
    /// Buffers stay valid until <see cref="ReleaseAll"/>, except those handed to <see cref="Keep"/>.
    /// </summary>
    public IReadOnlyDictionary<string, DeviceValue> RunDevice(IReadOnlyDictionary<string, DeviceValue> inputs, long? cachedPrefixLength = null)
    {
        if (!WeightsLoaded) throw new McException($"{Name}: load the weights before running");
        HostFallbacks.Clear();
        _launch.Count = 0;
        var bindings = new Dictionary<string, long>(StringComparer.Ordinal);
        var values = new Dictionary<Node, DeviceValue>();
        foreach (var node in _graph.Inputs)
        {
            var name = node.Attrs.Str("name");
            if (!inputs.TryGetValue(name, out var given)) throw new McException($"missing input '{name}' (the model declares {node.Type})");
            Bind(node, given.Shape, bindings, $"input '{name}'");
            values[node] = given;
        }
        foreach (var node in _graph.Nodes)
        {
            if (node.Op == OpKind.Input) continue;
            var result = _weights.TryGetValue(node, out var held) ? held : Compute(node, node.Inputs.Select(i => values[i]).ToArray(), bindings, cachedPrefixLength);
            Bind(node, result.Shape, bindings, Interpreter.Describe(node));
            values[node] = result;
        }
        return _graph.Outputs.ToDictionary(o => o.Key, o => values[o.Value], StringComparer.Ordinal);
    }

    /// <summary>Takes a value's buffer out of this run's set, so that <see cref="ReleaseAll"/> leaves it alone.</summary>
    public void Keep(DeviceValue value)
    {
        if (value.Buffer is { } b) _inUse.Remove(b);
    }

    /// <summary>Gives a kept buffer back to the pool.</summary>
    public void Release(DeviceValue value)
    {
        if (value.Buffer is { } b && !_weights.Values.Any(w => w.Buffer == b)) Return(b);
    }

    /// <summary>Returns every buffer of the runs since the last call to the pool.</summary>
    public void ReleaseAll()
    {
        foreach (var b in _inUse) Return(b);
        _inUse.Clear();
        _device.Accelerator.Synchronize();
        foreach (var b in _intTemps) b.Dispose();
        _intTemps.Clear();
    }

    public DeviceValue Upload(HostTensor t)
    {
        if (!t.IsFloat) return new DeviceValue(t.DType, t.Shape, t.Ints!);
        var value = Allocate(t.DType, t.Shape);
        if (t.Floats!.Length > 0) value.View.CopyFromCPU(t.Floats);
        return value;
    }

    public HostTensor Download(DeviceValue v)
    {
        if (!v.IsFloat) return HostTensor.FromInts(v.Shape, (long[])v.Ints!.Clone(), v.DType);
        _device.Accelerator.Synchronize();
        var data = new float[v.Count];
        if (data.Length > 0) v.View.CopyToCPU(data);
        return HostTensor.FromFloats(v.Shape, data, v.DType);
    }

    /// <summary>The index of the largest of the last <paramref name="n"/> floats of <paramref name="logits"/>, masked ids skipped, computed on the device.</summary>
    public long ArgMaxLast(DeviceValue logits, MemoryBuffer1D<int, Stride1D.Dense> mask, MemoryBuffer1D<int, Stride1D.Dense> result)
    {
        int n = (int)logits.Shape[^1];
        _launch.ArgMax(Group(1, _device.ReductionGroup), logits.View, mask.View, result.View, (int)(logits.Count - n), n);
        var r = new int[1];
        result.View.CopyToCPU(r);
        return r[0];
    }

    public DeviceValue Allocate(DType dtype, long[] shape)
    {
        long count = Math.Max(1, shape.Aggregate(1L, (a, d) => checked(a * d)));
        if (count > int.MaxValue) throw new McException($"a tensor of shape [{string.Join(",", shape)}] is too large for the cuda target");
        MemoryBuffer1D<float, Stride1D.Dense> buffer = _pool.TryGetValue(count, out var stack) && stack.Count > 0
            ? stack.Pop()
            : _device.Accelerator.Allocate1D<float>(count);
        _inUse.Add(buffer);
        return new DeviceValue(dtype, shape, buffer);
    }

    private void Return(MemoryBuffer1D<float, Stride1D.Dense> buffer)
    {
        if (!_pool.TryGetValue(buffer.Length, out var stack)) _pool[buffer.Length] = stack = new();
        if (!stack.Contains(buffer)) stack.Push(buffer);
    }

    private static void Bind(Node node, long[] shape, Dictionary<string, long> bindings, string what)
    {
        if (shape.Length != node.Type.Rank)
            throw new McException($"{what} has shape [{string.Join(",", shape)}] but the model declares {node.Type}");
        for (int d = 0; d < shape.Length; d++)
        {
            var dim = node.Type.Shape[d];
            if (dim.IsKnown ? dim.Size != shape[d] : bindings.TryGetValue(dim.Symbol!, out var bound) && bound != shape[d])
                throw new McException($"{what} has shape [{string.Join(",", shape)}] but the model declares {node.Type}");
            if (!dim.IsKnown) bindings[dim.Symbol!] = shape[d];
        }
    }

    public void Dispose()
    {
        foreach (var b in _inUse) b.Dispose();
        foreach (var s in _pool.Values) foreach (var b in s) b.Dispose();
        foreach (var w in _weights.Values.Select(w => w.Buffer).Distinct()) w?.Dispose();
        foreach (var b in _intTemps) b.Dispose();
        foreach (var c in _consts.Values) c.Buffer?.Dispose();
        _dummy.Dispose();
        _dummyInts.Dispose();
    }

    private KernelConfig Group(int groups, int threads) => new(groups, threads);

    /// <summary>A grid-stride launch over n elements: full blocks on the GPU, a few warps on the simulator.</summary>
    private KernelConfig Elements(long n) => _device.IsSimulated
        ? new KernelConfig((int)Math.Clamp((n + 31) / 32, 1, 4), 32)
        : new KernelConfig((int)Math.Clamp((n + 255) / 256, 1, 65535), 256);
}
