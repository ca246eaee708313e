using System.Numerics;
using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Backends.Cuda.Kernels;
using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Cuda;

/// <summary>
/// The decode path: 16-bit weight storage (<c>--dtype fp16|bf16</c>), linears of few rows as GEMV with the norm prologue
/// and gate/residual epilogue fused, a KV cache of fixed capacity appended in place, rope angles from a device table
/// (no per-step upload), split decode attention, and pooled int buffers. A decode step then transfers only the token id
/// in and the sampled id out (<see cref="Transfers"/> counts them).
/// </summary>
public sealed partial class CudaModel
{
    /// <summary>Linears of at most this many rows run as GEMV when their weight is fp32 (16-bit weights always do).</summary>
    public const int GemvMaxRows = 8;

    private readonly Dictionary<int, Stack<MemoryBuffer1D<int, Stride1D.Dense>>> _intPool = new();
    private readonly Dictionary<string, MemoryBuffer1D<int, Stride1D.Dense>> _intConstants = new(StringComparer.Ordinal);
    private readonly HashSet<MemoryBuffer1D<float, Stride1D.Dense>> _caches = new();
    private readonly Dictionary<string, (MemoryBuffer1D<float, Stride1D.Dense> Cos, MemoryBuffer1D<float, Stride1D.Dense> Sin, long Positions)> _ropeTables = new(StringComparer.Ordinal);
    private MemoryBuffer1D<uint, Stride1D.Dense>? _noPacked;
    private readonly HashSet<Node> _folded = new();

    /// <summary><see cref="WeightFormat"/> of the linears' weights on the device.</summary>
    public int WeightFormatOnDevice { get; }

    /// <summary>Host↔device copies in the last run (each one waits for the device), the decoder's argmax read-back included.</summary>
    public int Transfers { get; private set; }

    /// <summary>Bytes of linear weights on the device (what one decode step reads).</summary>
    public long LinearWeightBytes { get; private set; }

    /// <summary>Parses <c>--dtype</c>: fp32, fp16 or bf16.</summary>
    public static int ParseDType(string dtype) => dtype switch
    {
        "fp32" => WeightFormat.F32, "fp16" => WeightFormat.F16, "bf16" => WeightFormat.Bf16,
        _ => throw new McException($"--dtype {UserText.Quote(dtype)}: expected fp32, fp16 or bf16"),
    };

    private void CopyIn<T>(ArrayView<T> view, T[] data) where T : unmanaged
    {
        Transfers++;
        view.CopyFromCPU(data);
    }

    private void CopyOut<T>(ArrayView<T> view, T[] data) where T : unmanaged
    {
        Transfers++;
        view.CopyToCPU(data);
    }

    // ---- weights ----

    /// <summary>Ops that, on weights alone, are evaluated once at load time (the concatenated QKV and gate/up weights).</summary>
    private static bool FoldsAtLoad(OpKind op) => op is OpKind.Concat or OpKind.Reshape or OpKind.Transpose or OpKind.Slice or OpKind.Cast;

    /// <summary>
    /// Uploads the weights, once. A node computed from weights alone (the concat-linears pass's fused QKV and gate/up
    /// weights) is evaluated here on the host by the interpreter's own op code and uploaded as a weight of its own, so a
    /// run never copies weights; raw weights that only such nodes read stay on the host. A linear's weight (operand 1)
    /// is stored in the model's <see cref="WeightFormatOnDevice"/>.
    /// </summary>
    public void LoadWeights(Func<string, float[]> load)
    {
        var raw = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var host = new Dictionary<Node, RefTensor>();
        var folded = _folded;
        foreach (var node in _graph.Nodes)
        {
            if (node.Op == OpKind.Weight)
            {
                var name = node.Attrs.Str("name");
                if (!raw.ContainsKey(name)) raw[name] = load(name);
                folded.Add(node);
            }
            else if (FoldsAtLoad(node.Op) && node.Inputs.Length > 0 && node.Inputs.All(folded.Contains) && node.Type.DType.IsFloat())
                folded.Add(node);
        }
        long[] Shape(Node node) => node.Type.Shape.Select(d => d.IsKnown ? d.Size : throw new McException($"{Interpreter.Describe(node)} has a symbolic shape {node.Type}")).ToArray();
        RefTensor Host(Node node)
        {
            if (host.TryGetValue(node, out var t)) return t;
            t = node.Op == OpKind.Weight
                ? node.Type.DType.IsFloat() ? RefTensor.FromFloats(Shape(node), raw[node.Attrs.Str("name")]) : RefTensor.FromInts(Shape(node), Array.ConvertAll(raw[node.Attrs.Str("name")], v => (long)v), node.Type.DType)
                : _host.Evaluate(node, node.Inputs.Select(Host).ToArray(), new Dictionary<string, long>(StringComparer.Ordinal));
            return host[node] = t;
        }
        // What reads each folded node from outside the folded set: a linear as its weight, or anything else.
        var uses = new Dictionary<Node, (bool Linear, bool Other)>();
        foreach (var node in _graph.Nodes.Where(n => !folded.Contains(n)))
            for (int i = 0; i < node.Inputs.Length; i++)
            {
                var input = node.Inputs[i];
                if (!folded.Contains(input)) continue;
                var u = uses.GetValueOrDefault(input);
                if (i == 1 && node.Op is OpKind.Linear or OpKind.FusedLinear) u.Linear = true; else u.Other = true;
                uses[input] = u;
            }
        foreach (var output in _graph.Outputs.Select(o => o.Value).Where(folded.Contains))
            uses[output] = uses.GetValueOrDefault(output) with { Other = true };
        var byName = new Dictionary<string, DeviceValue>(StringComparer.Ordinal);
        foreach (var (node, use) in uses)
        {
            string? name = node.Op == OpKind.Weight ? node.Attrs.Str("name") : null;
            if (name is not null && byName.TryGetValue(name, out var shared)) { _weights[node] = shared; continue; }
            var value = Host(node);
            var shape = Shape(node);
            _weights[node] = value.IsFloat
                ? UploadWeight(node.Type.DType, shape, name is not null ? (float[])raw[name].Clone() : value.ToFloat32(), name is not null ? NameUse(uses, name) : use)
                : new DeviceValue(node.Type.DType, shape, value.I!);
            if (name is not null) byName[name] = _weights[node];
        }
        WeightsLoaded = true;
    }

    /// <summary>The uses of every weight node of a name together (one upload serves them all).</summary>
    private static (bool Linear, bool Other) NameUse(Dictionary<Node, (bool Linear, bool Other)> uses, string name) =>
        uses.Where(kv => kv.Key.Op == OpKind.Weight && kv.Key.Attrs.Str("name") == name)
            .Aggregate((Linear: false, Other: false), (acc, kv) => (acc.Linear || kv.Value.Linear, acc.Other || kv.Value.Other));

    /// <summary>
    /// An fp32 buffer, or under fp16/bf16 the values rounded to that type: a linear's weight [N, K] (K even, at most
    /// <see cref="GemvKernels.MaxK"/>) packed in 16 bits, with an fp32 copy only when another op (a tied embedding) reads it.
    /// </summary>
    private DeviceValue UploadWeight(DType dtype, long[] shape, float[] data, (bool Linear, bool Other) use)
    {
        if (WeightFormatOnDevice == WeightFormat.F32)
        {
            if (use.Linear) LinearWeightBytes += data.LongLength * sizeof(float);
            return new DeviceValue(dtype, shape, FloatBuffer(data));
        }
        var bits = new ushort[data.Length];
        for (long i = 0; i < data.LongLength; i++) bits[i] = ToBits(data[i], WeightFormatOnDevice);
        bool pack = use.Linear && shape.Length == 2 && shape[1] % 2 == 0 && shape[1] <= GemvKernels.MaxK && data.Length > 0;
        if (!pack || use.Other)
            for (long i = 0; i < data.LongLength; i++) data[i] = GemvKernels.ToFloat(bits[i], WeightFormatOnDevice);
        if (!pack)
        {
            if (use.Linear) LinearWeightBytes += data.LongLength * sizeof(float);
            return new DeviceValue(dtype, shape, FloatBuffer(data));
        }
        var pairs = new uint[data.Length / 2];
        for (long i = 0; i < pairs.LongLength; i++) pairs[i] = bits[2 * i] | (uint)bits[2 * i + 1] << 16;
        var packed = _device.Accelerator.Allocate1D<uint>(pairs.Length);
        CopyIn(packed.View, pairs);
        LinearWeightBytes += pairs.LongLength * 4;
        return new DeviceValue(dtype, shape, packed, WeightFormatOnDevice, use.Other ? FloatBuffer(data) : null);
    }

    private MemoryBuffer1D<float, Stride1D.Dense> FloatBuffer(float[] data)
    {
        var buffer = _device.Accelerator.Allocate1D<float>(Math.Max(1, data.Length));
        if (data.Length > 0) CopyIn(buffer.View.SubView(0, data.Length), data);
        return buffer;
    }

    /// <summary>fp32 → fp16 (IEEE, round to nearest even) or bf16 (round to nearest even, NaN kept quiet) bits.</summary>
    public static ushort ToBits(float v, int format)
    {
        if (format == WeightFormat.F16) return BitConverter.HalfToUInt16Bits((System.Half)v);
        uint u = BitConverter.SingleToUInt32Bits(v);
        if (float.IsNaN(v)) return (ushort)((u >> 16) | 0x40);
        return (ushort)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
    }

    // ---- GEMV ----

    /// <summary>A fused linear as one GEMV launch (norm prologue, gate, bias, activation, residual), or null when it does not qualify.</summary>
    private DeviceValue? FusedGemv(Node node, DeviceValue[] ins)
    {
        var a = node.Attrs;
        int normInputs = (int)a.Int("norm_inputs", 0), at = 2;
        DeviceValue? normW = normInputs > 0 ? ins[at++] : null, normB = normInputs > 1 ? ins[at++] : null;
        DeviceValue? bias = a.Bool("bias", false) ? ins[at++] : null;
        DeviceValue? residual = a.Bool("residual", false) ? ins[at] : null;
        int prologue = a.Str("prologue", "none") switch { "rms_norm" => 1, "layer_norm" => 2, _ => 0 };
        return Gemv(node, ins[0], ins[1], bias, residual, ActivationOf(a.Str("activation", "none")), a.Bool("gate", false),
            prologue, normW, prologue == 2 ? normB : null, prologue == 0 ? 0f : (float)a.Float("eps"), prologue == 1 ? (float)a.Float("offset", 0.0) : 0f);
    }

    private DeviceValue? Gemv(Node node, DeviceValue x, DeviceValue w, DeviceValue? bias, DeviceValue? residual, int activation, bool gate,
        int prologue, DeviceValue? normW, DeviceValue? normB, float eps, float offset)
    {
        if (w.Shape.Length != 2 || x.Shape.Length < 1) return null;
        int rows2 = (int)w.Shape[0], k = (int)w.Shape[1];
        if (x.Shape[^1] != k || k == 0 || k > GemvKernels.MaxK || (gate && rows2 % 2 != 0)) return null;
        int rows = (int)(x.Count / k);
        if (rows > GemvMaxRows || (w.Packed is null && w.Buffer is null)) return null;
        int n = gate ? rows2 / 2 : rows2;
        var shape = x.Shape.ToArray();
        shape[^1] = n;
        var y = Allocate(node.Type.DType.IsFloat() ? node.Type.DType : DType.F32, shape);
        if (rows == 0 || n == 0) return y;
        var s = new GemvShape
        {
            M = rows, N = n, K = k, Format = w.Packed is null ? WeightFormat.F32 : w.Format,
            Prologue = prologue, HasNormW = normW is null ? 0 : 1, HasNormB = normB is null ? 0 : 1, Eps = eps, Offset = offset,
            HasBias = bias is null ? 0 : 1, Activation = activation, Gate = gate ? 1 : 0, HasResidual = residual is null ? 0 : 1,
        };
        // A group of warps stages x once and shares it. The simulator runs each GPU thread as a CPU thread and a barrier
        // costs there: one warp per group and a few groups, each striding over many columns and rows.
        int warps = _device.IsSimulated ? 1 : 8;
        int columnGroups = (int)Math.Min((n + warps - 1) / warps, _device.IsSimulated ? 4 : 65535);
        var config = new KernelConfig(new Index3D(columnGroups, Math.Min(rows, _device.IsSimulated ? 2 : 65535), 1), new Index3D(warps * GemvKernels.Lanes, 1, 1));
        _noPacked ??= _device.Accelerator.Allocate1D<uint>(1);
        _launch.Gemv(config, x.View, w.Packed is null ? w.View : _dummy.View, w.Packed?.View ?? _noPacked.View,
            normW?.View ?? _dummy.View, normB?.View ?? _dummy.View, bias?.View ?? _dummy.View, residual?.View ?? _dummy.View, y.View, s);
        return y;
    }

    /// <summary>A linear's weight as fp32 for the GEMM: its fp32 copy, or its 16 bits expanded into a pooled buffer of this run.</summary>
    private DeviceValue FloatWeight(DeviceValue w)
    {
        if (w.Packed is null || w.Buffer is not null) return w;
        var y = Allocate(DType.F32, w.Shape);
        int pairs = (int)(w.Count / 2);
        _launch.Unpack(Elements(pairs), w.Packed.View, y.View, pairs, w.Format);
        return y;
    }

    // ---- KV cache ----

    /// <summary>
    /// A cache of <paramref name="capacity"/> positions along axis 1 (batch 1), allocated once; a cache_append onto it
    /// writes the new rows after the old ones and returns a longer view of the same buffer (nothing is copied again).
    /// </summary>
    public DeviceValue AllocateCache(DType dtype, long[] emptyShape, long capacity)
    {
        if (emptyShape.Length < 2 || emptyShape[0] != 1) throw new McException("a device KV cache holds one sequence (batch 1)");
        long row = emptyShape[2..].Aggregate(1L, (p, d) => p * d);
        var buffer = _device.Accelerator.Allocate1D<float>(Math.Max(1, checked(capacity * row)));
        _caches.Add(buffer);
        return new DeviceValue(dtype, emptyShape, buffer);
    }

    public void FreeCache(DeviceValue cache)
    {
        if (cache.Buffer is { } b && _caches.Remove(b)) b.Dispose();
    }

    private DeviceValue? AppendInPlace(Node node, DeviceValue past, DeviceValue fresh)
    {
        int axis = Axis(node.Attrs.Int("axis", 1), past.Shape.Length);
        if (past.Buffer is not { } buffer || past.Offset != 0 || !_caches.Contains(buffer) || !fresh.IsFloat || fresh.Buffer is null) return null;
        if (fresh.Shape.Length != past.Shape.Length || past.Shape[..axis].Any(d => d != 1)) return null;
        for (int d = axis + 1; d < past.Shape.Length; d++)
            if (past.Shape[d] != fresh.Shape[d]) return null;
        var shape = past.Shape.ToArray();
        shape[axis] += fresh.Shape[axis];
        if (shape.Aggregate(1L, (p, d) => p * d) > buffer.Length) return null;
        var y = new DeviceValue(node.Type.DType, shape, buffer);
        if (fresh.Count > 0) Copy(fresh, y, [fresh.Count], [1], 0, [1], past.Count);
        return y;
    }

    // ---- rope ----

    /// <summary>
    /// Rope whose angles depend on the position alone (no dynamic NTK) at consecutive positions: the cos/sin rows are
    /// views of a device table built once per rope configuration (by the same interpreter probe), so a decode step
    /// uploads nothing.
    /// </summary>
    private DeviceValue? RopeFromTable(Node node, DeviceValue x, DeviceValue pos, long? cachedPrefixLength)
    {
        var a = node.Attrs;
        if (a.Str("scaling", "none") == "dynamic" || pos.Ints is not { Length: > 0 } p) return null;
        for (int i = 1; i < p.Length; i++) if (p[i] != p[0] + i) return null;
        long s = x.Shape[1], h = x.Shape[2], d = x.Shape[3], rd = a.Int("rotary_dim");
        if (p[0] < 0 || p.Length != s || rd <= 0 || rd % 2 != 0 || rd > d) return null;
        long half = rd / 2, last = p[^1] + 1;
        var key = FormattableString.Invariant($"{a.Float("theta")}|{rd}|{a.Str("scaling", "none")}|{a.Float("factor", 1.0)}|{d}|{a.Bool("interleaved", false)}");
        if (!_ropeTables.TryGetValue(key, out var table) || table.Positions < last)
        {
            if (table.Cos is not null) { table.Cos.Dispose(); table.Sin.Dispose(); }
            long positions = Math.Max(1024, (long)BitOperations.RoundUpToPowerOf2((ulong)last));
            var cos = new float[positions * half];
            var sin = new float[positions * half];
            const long Chunk = 128;
            for (long p0 = 0; p0 < positions; p0 += Chunk)
            {
                long count = Math.Min(Chunk, positions - p0);
                var chunkPos = new DeviceValue(DType.I64, [count], Enumerable.Range(0, (int)count).Select(i => p0 + i).ToArray());
                var (c, sn) = RopeTables(node, chunkPos, count, d, half, cachedPrefixLength);
                Array.Copy(c, 0, cos, p0 * half, c.Length);
                Array.Copy(sn, 0, sin, p0 * half, sn.Length);
            }
            table = (FloatBuffer(cos), FloatBuffer(sin), positions);
            _ropeTables[key] = table;
        }
        var y = Allocate(node.Type.DType, x.Shape);
        if (y.Count > 0)
            _launch.Rope(Elements(y.Count), x.View, table.Cos.View.SubView(p[0] * half, s * half), table.Sin.View.SubView(p[0] * half, s * half), y.View,
                (int)y.Count, (int)s, (int)h, (int)d, (int)half, a.Bool("interleaved", false) ? 1 : 0);
        return y;
    }

    /// <summary>
    /// Positions read only their operands' shapes (as <c>Positional.Positions</c>): computed here, so the past (a whole
    /// cache layer) is never downloaded for them.
    /// </summary>
    private static DeviceValue Positions(Node node, DeviceValue[] x)
    {
        int axis = Axis(node.Attrs.Int("axis"), x[0].Shape.Length);
        if (axis < 0 || axis >= x[0].Shape.Length || (x.Length > 1 && axis >= x[1].Shape.Length))
            throw new McException($"{Interpreter.Describe(node)}: axis {node.Attrs.Int("axis")} is out of range");
        long offset = node.Attrs.Int("offset", 0) + (x.Length > 1 ? x[1].Shape[axis] : 0);
        var r = new long[x[0].Shape[axis]];
        for (int i = 0; i < r.Length; i++) r[i] = offset + i;
        return new DeviceValue(DType.I64, [r.Length], r);
    }

    // ---- attention ----

    /// <summary>One query row: the split (flash-decoding) kernel over key ranges of <c>chunk</c>, then the combine.</summary>
    private void DecodeAttention(DeviceValue q, DeviceValue k, DeviceValue v, DeviceValue? bias, DeviceValue y, AttentionShape s)
    {
        int chunk = Math.Max(64, (s.T + 127) / 128);
        chunk = (chunk + DecodeAttentionKernels.Lanes - 1) / DecodeAttentionKernels.Lanes * DecodeAttentionKernels.Lanes;
        int splits = Math.Max(1, (s.T + chunk - 1) / chunk);
        int rows = s.B * s.Hq;
        var scratch = Allocate(DType.F32, [rows, splits, s.Dv + 2]);
        _launch.DecodeAttention(new KernelConfig(new Index3D(rows, splits, 1), new Index3D(DecodeAttentionKernels.Lanes, 1, 1)),
            q.View, k.View, v.View, bias?.View ?? _dummy.View, scratch.View, s, chunk);
        _launch.DecodeCombine(new KernelConfig(rows, _device.IsSimulated ? 32 : 64), scratch.View, y.View, s.Dv, splits);
    }

    // ---- int buffers ----

    /// <summary>Int operands on the device: constant index lists (GEMM batch offsets) cached, others from a pool.</summary>
    private ArrayView<int> Ints(int[] data)
    {
        string? key = data.Length <= 64 && data.All(v => v == 0) ? $"zeros{data.Length}" : null;
        if (key is not null && _intConstants.TryGetValue(key, out var constant)) return constant.View;
        int length = Math.Max(1, data.Length);
        var buffer = key is null && _intPool.TryGetValue(length, out var stack) && stack.Count > 0 ? stack.Pop() : _device.Accelerator.Allocate1D<int>(length);
        if (data.Length > 0) CopyIn(buffer.View.SubView(0, data.Length), data);
        if (key is not null) _intConstants[key] = buffer;
        else _intTemps.Add(buffer);
        return buffer.View;
    }

    private void ReturnInts()
    {
        foreach (var b in _intTemps)
        {
            if (!_intPool.TryGetValue((int)b.Length, out var stack)) _intPool[(int)b.Length] = stack = new();
            stack.Push(b);
        }
        _intTemps.Clear();
    }

    private void DisposeDecodeState()
    {
        foreach (var s in _intPool.Values) foreach (var b in s) b.Dispose();
        foreach (var b in _intConstants.Values) b.Dispose();
        foreach (var b in _caches) b.Dispose();
        foreach (var t in _ropeTables.Values) { t.Cos.Dispose(); t.Sin.Dispose(); }
        _noPacked?.Dispose();
    }
}
