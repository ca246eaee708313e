using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Backends.Cuda.Kernels;
using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Cuda;

public sealed partial class CudaModel
{
    private readonly List<MemoryBuffer1D<int, Stride1D.Dense>> _intTemps = new();
    private readonly Dictionary<Node, DeviceValue> _consts = new();

    private DeviceValue Compute(Node node, DeviceValue[] x, Dictionary<string, long> bindings, long? cachedPrefixLength)
    {
        var a = node.Attrs;
        switch (node.Op)
        {
            case OpKind.Const when node.Type.DType.IsFloat():
                if (!_consts.TryGetValue(node, out var constant))
                {
                    var buffer = _device.Accelerator.Allocate1D<float>(1);
                    CopyIn(buffer.View, [(float)a.Float("value")]);
                    _consts[node] = constant = new DeviceValue(node.Type.DType, [], buffer);
                }
                return constant;
            case var op when op.IsElementwiseBinary() && x[0].IsFloat && x[1].IsFloat:
                return Binary(node, x[0], x[1]);
            case var op when op.IsElementwiseUnary():
            {
                var y = Allocate(node.Type.DType, x[0].Shape);
                _launch.Unary(Elements(y.Count), x[0].View, y.View, (int)y.Count, UnaryCode(op));
                return y;
            }
            case OpKind.Linear:
                return Linear(node, x[0], x[1], x.Length > 2 ? x[2] : null, null, ActivationCode.None);
            case OpKind.FusedLinear:
                return FusedLinear(node, x);
            case OpKind.MatMul when x[0].IsFloat && x[1].IsFloat:
                return MatMul(node, x[0], x[1]);
            case OpKind.RmsNorm or OpKind.LayerNorm:
                return Norm(node, x[0], x.Length > 1 ? x[1] : null, x.Length > 2 ? x[2] : null, node.Op == OpKind.LayerNorm, node.Op == OpKind.RmsNorm ? a.Float("offset", 0.0) : 0.0);
            case OpKind.Softmax or OpKind.ReduceMean:
                return Line(node, x[0]);
            case OpKind.Reshape:
                return x[0].Reshaped(node.Type.DType, Resolve(node, bindings));
            case OpKind.Transpose when x[0].IsFloat:
            {
                var perm = a.Ints("perm");
                var inStrides = Strides(x[0].Shape);
                var shape = perm.Select(p => x[0].Shape[p]).ToArray();
                var y = Allocate(node.Type.DType, shape);
                Copy(x[0], y, shape, perm.Select(p => inStrides[p]).ToArray(), 0, Strides(shape), 0);
                return y;
            }
            case OpKind.Slice when x[0].IsFloat:
            {
                int axis = Axis(a.Int("axis"), x[0].Shape.Length);
                long start = a.Int("start"), end = a.Int("end");
                if (start < 0 || end < start || end > x[0].Shape[axis])
                    throw new McException($"{Interpreter.Describe(node)}: slice [{start}:{end}] is out of range for axis {axis} of [{string.Join(",", x[0].Shape)}]");
                var inStrides = Strides(x[0].Shape);
                var shape = x[0].Shape.ToArray();
                shape[axis] = end - start;
                // One outer row (decode's q/k/v of a fused projection): the slice is a contiguous range, viewed in place.
                if (x[0].Buffer is not null && x[0].Shape[..axis].All(d => d == 1))
                    return new DeviceValue(node.Type.DType, shape, x[0].Buffer!, x[0].Offset + start * inStrides[axis]);
                var y = Allocate(node.Type.DType, shape);
                Copy(x[0], y, shape, inStrides, start * inStrides[axis], Strides(shape), 0);
                return y;
            }
            case OpKind.Concat or OpKind.CacheAppend when x.All(v => v.IsFloat):
            {
                if (node.Op == OpKind.CacheAppend && x.Length == 2 && AppendInPlace(node, x[0], x[1]) is { } appended) return appended;
                int axis = Axis(a.Int("axis", 1), x[0].Shape.Length);
                var shape = x[0].Shape.ToArray();
                shape[axis] = x.Sum(t => t.Shape[axis]);
                foreach (var t in x)
                    for (int d = 0; d < shape.Length; d++)
                        if (t.Shape.Length != shape.Length || (d != axis && t.Shape[d] != shape[d]))
                            throw new McException($"{Interpreter.Describe(node)}: cannot concatenate [{string.Join(",", x[0].Shape)}] and [{string.Join(",", t.Shape)}] along axis {axis}");
                var y = Allocate(node.Type.DType, shape);
                var outStrides = Strides(shape);
                long at = 0;
                foreach (var t in x)
                {
                    if (t.Count > 0) Copy(t, y, t.Shape, Strides(t.Shape), 0, outStrides, at * outStrides[axis]);
                    at += t.Shape[axis];
                }
                return y;
            }
            case OpKind.Cast when node.Type.DType.IsFloat() && x[0].IsFloat:
                return x[0].Reshaped(node.Type.DType, x[0].Shape);
            case OpKind.Embedding when a.Has("offset"):
                return EmbeddingShard(node, x[0], x[1]);
            case OpKind.Embedding:
                return Embedding(node, x[0], x[1]);
            case OpKind.Positions:
                return Positions(node, x);
            case OpKind.AllReduce or OpKind.AllGather when x[0].IsFloat:
                return Collective(node, x[0]);
            case OpKind.Rope when x[0].IsFloat && !x[1].IsFloat:
                return Rope(node, x[0], x[1], cachedPrefixLength);
            case OpKind.AlibiBias when !x[0].IsFloat && !x[1].IsFloat:
                return Alibi(node, x[0], x[1]);
            case OpKind.RelativePositionBias when x[0].IsFloat && !x[1].IsFloat && !x[2].IsFloat:
                return RelativeBias(node, x[0], x[1], x[2]);
            case OpKind.Attention when x.All(v => v.IsFloat):
                return Attention(node, x[0], x[1], x[2], x.Length > 3 ? x[3] : null);
            case OpKind.MoeCombine when x.All(v => v.IsFloat):
                return Moe(node, x[0], x[1..]);
            case OpKind.QuantizedLinear when node.Attrs.Str("scheme") != "sparse24":
                return QuantizedLinear(node, x);
            default:
                return OnHost(node, x, bindings, cachedPrefixLength);
        }
    }

    /// <summary>The reference interpreter's own code for this node, on downloaded operands; float results go back to the device.</summary>
    private DeviceValue OnHost(Node node, DeviceValue[] x, Dictionary<string, long> bindings, long? cachedPrefixLength)
    {
        bool onlyInts = x.All(v => !v.IsFloat) && !node.Type.DType.IsFloat();
        if (!onlyInts) HostFallbacks[node.Op] = HostFallbacks.GetValueOrDefault(node.Op) + 1;
        var operands = x.Select(v => v.IsFloat
            ? RefTensor.FromFloats(v.Shape, Array.ConvertAll(Download(v).Floats!, f => (double)f), v.DType)
            : RefTensor.FromInts(v.Shape, v.Ints!, v.DType)).ToArray();
        var r = _host.Evaluate(node, operands, bindings, cachedPrefixLength);
        if (!r.IsFloat) return new DeviceValue(r.DType, r.Shape, r.I!);
        var y = Allocate(r.DType, r.Shape);
        if (y.Count > 0) CopyIn(y.View, r.ToFloat32());
        return y;
    }

    private DeviceValue Binary(Node node, DeviceValue a, DeviceValue b)
    {
        var shape = BroadcastShape(node, a.Shape, b.Shape);
        var y = Allocate(node.Type.DType, shape);
        var map = StridedMap.Create(shape, BroadcastStrides(shape, a.Shape), 0, BroadcastStrides(shape, b.Shape), 0);
        if (y.Count > 0) _launch.Binary(Elements(y.Count), a.View, b.View, y.View, map, (int)y.Count, node.Op switch
        {
            OpKind.Add => BinaryCode.Add, OpKind.Sub => BinaryCode.Sub, OpKind.Mul => BinaryCode.Mul, OpKind.Div => BinaryCode.Div,
            OpKind.Maximum => BinaryCode.Maximum, OpKind.Minimum => BinaryCode.Minimum, _ => BinaryCode.Pow,
        });
        return y;
    }

    private void Copy(DeviceValue src, DeviceValue dst, long[] shape, long[] srcStrides, long srcBase, long[] dstStrides, long dstBase)
    {
        long n = shape.Aggregate(1L, (p, d) => p * d);
        if (n == 0) return;
        _launch.Copy(Elements(n), src.View, dst.View, StridedMap.Create(shape, srcStrides, srcBase, dstStrides, dstBase), (int)n);
    }

    private DeviceValue Linear(Node node, DeviceValue x, DeviceValue w, DeviceValue? bias, DeviceValue? residual, int activation)
    {
        if (Gemv(node, x, w, bias, residual, activation, gate: false, prologue: 0, null, null, 0f, 0f) is { } gemv) return gemv;
        w = FloatWeight(w);
        int n = (int)w.Shape[0], k = (int)w.Shape[1];
        if (x.Shape.Length < 1 || x.Shape[^1] != k) throw new McException($"{Interpreter.Describe(node)}: [{string.Join(",", x.Shape)}] does not match weight [{n},{k}]");
        int rows = (int)(x.Count / Math.Max(1, k));
        var shape = x.Shape.ToArray();
        shape[^1] = n;
        var y = Allocate(DType.F32, shape);
        var s = new GemmShape { M = rows, N = n, K = k, Lda = k, Sbk = 1, Sbn = k, HasBias = bias is null ? 0 : 1, Activation = activation, HasResidual = residual is null ? 0 : 1 };
        Gemm(x.View, w.View, y.View, bias, residual, [0], [0], s);
        return y;
    }

    private void Gemm(ArrayView<float> a, ArrayView<float> b, ArrayView<float> y, DeviceValue? bias, DeviceValue? residual, int[] aOffsets, int[] bOffsets, GemmShape s)
    {
        if ((long)s.M * s.N == 0) return;
        var ao = Ints(aOffsets);
        var bo = Ints(bOffsets);
        var grid = new Index3D((s.N + GemmKernels.Tile - 1) / GemmKernels.Tile, (s.M + GemmKernels.Tile - 1) / GemmKernels.Tile, aOffsets.Length);
        _launch.Gemm(new KernelConfig(grid, new Index3D(GemmKernels.Threads, 1, 1)), a, b, y,
            bias?.View ?? _dummy.View, residual?.View ?? _dummy.View, ao, bo, s);
    }

    private DeviceValue FusedLinear(Node node, DeviceValue[] ins)
    {
        if (FusedGemv(node, ins) is { } gemv) return gemv;
        var a = node.Attrs;
        int normInputs = (int)a.Int("norm_inputs", 0), at = 2;
        DeviceValue? normW = normInputs > 0 ? ins[at++] : null, normB = normInputs > 1 ? ins[at++] : null;
        DeviceValue? bias = a.Bool("bias", false) ? ins[at++] : null;
        DeviceValue? residual = a.Bool("residual", false) ? ins[at] : null;
        var x = a.Str("prologue", "none") switch
        {
            "rms_norm" => Norm(node, ins[0], normW, null, layer: false, a.Float("offset", 0.0)),
            "layer_norm" => Norm(node, ins[0], normW, normB, layer: true, 0.0),
            _ => ins[0],
        };
        int activation = ActivationOf(a.Str("activation", "none"));
        bool gate = a.Bool("gate", false);
        if (!gate) return Linear(node, x, ins[1], bias, residual, activation);
        var y = Linear(node, x, ins[1], bias, null, ActivationCode.None);
        int n = (int)y.Shape[^1] / 2, rows = (int)(y.Count / Math.Max(1, y.Shape[^1]));
        var shape = y.Shape.ToArray();
        shape[^1] = n;
        var output = Allocate(node.Type.DType, shape);
        if (output.Count > 0)
            _launch.GateEpilogue(Elements(output.Count), y.View, residual?.View ?? _dummy.View, output.View, rows, n, activation, 1, residual is null ? 0 : 1);
        return output;
    }

    private DeviceValue MatMul(Node node, DeviceValue a, DeviceValue b)
    {
        long m = a.Shape[^2], k = a.Shape[^1], n = b.Shape[^1];
        if (b.Shape[^2] != k) throw new McException($"{Interpreter.Describe(node)}: inner dimensions of [{string.Join(",", a.Shape)}] and [{string.Join(",", b.Shape)}] differ");
        var batch = BroadcastShape(node, a.Shape[..^2], b.Shape[..^2]);
        long count = batch.Aggregate(1L, (p, d) => p * d);
        var aMap = BatchOffsets(batch, a.Shape[..^2], m * k);
        var bMap = BatchOffsets(batch, b.Shape[..^2], k * n);
        var y = Allocate(node.Type.DType, [.. batch, m, n]);
        if (count == 0) return y;
        Gemm(a.View, b.View, y.View, null, null, aMap, bMap,
            new GemmShape { M = (int)m, N = (int)n, K = (int)k, Lda = (int)k, Sbk = (int)n, Sbn = 1, Activation = ActivationCode.None });
        return y;
    }

    /// <summary>For each batch entry (row-major over the broadcast batch shape), the element offset of its matrix in an operand.</summary>
    private static int[] BatchOffsets(long[] batch, long[] operandBatch, long matrixSize)
    {
        var strides = BroadcastStrides(batch, operandBatch);
        long count = batch.Aggregate(1L, (p, d) => p * d);
        var offsets = new int[count];
        for (long e = 0; e < count; e++)
        {
            long rest = e, off = 0;
            for (int d = batch.Length - 1; d >= 0; d--)
            {
                off += rest % batch[d] * strides[d];
                rest /= batch[d];
            }
            offsets[e] = checked((int)(off * matrixSize));
        }
        return offsets;
    }

    private DeviceValue Norm(Node node, DeviceValue x, DeviceValue? w, DeviceValue? b, bool layer, double offset)
    {
        int d = (int)x.Shape[^1];
        int rows = d == 0 ? 0 : (int)(x.Count / d);
        var y = Allocate(DType.F32, x.Shape);
        if (rows > 0)
            _launch.Norm(Group(rows, _device.ReductionGroup), x.View, w?.View ?? _dummy.View, b?.View ?? _dummy.View, y.View, d,
                (float)node.Attrs.Float("eps"), (float)offset, layer ? 1 : 0, w is null ? 0 : 1, b is null ? 0 : 1);
        return y;
    }

    private DeviceValue Line(Node node, DeviceValue x)
    {
        int axis = Axis(node.Attrs.Int("axis"), x.Shape.Length);
        int length = (int)x.Shape[axis];
        int inner = (int)x.Shape[(axis + 1)..].Aggregate(1L, (p, d) => p * d);
        int outer = (int)x.Shape[..axis].Aggregate(1L, (p, d) => p * d);
        bool mean = node.Op == OpKind.ReduceMean;
        var shape = x.Shape.ToArray();
        if (mean) shape[axis] = 1;
        var y = Allocate(node.Type.DType, shape);
        if (outer * inner > 0 && length > 0)
            _launch.Line(Group(outer * inner, _device.ReductionGroup), x.View, y.View, length, inner, mean ? 1 : 0);
        return y;
    }

    private DeviceValue Embedding(Node node, DeviceValue ids, DeviceValue table)
    {
        long vocab = table.Shape[0];
        int d = (int)table.Shape[1];
        var idv = ids.Ints ?? throw new McException($"{Interpreter.Describe(node)}: token ids must be integers");
        var index = new int[idv.Length];
        for (int t = 0; t < idv.Length; t++)
        {
            if (idv[t] < 0 || idv[t] >= vocab)
                throw new McException($"{Interpreter.Describe(node)}: token id {idv[t]} is outside the table's {vocab} rows");
            index[t] = (int)idv[t];
        }
        var y = Allocate(node.Type.DType, [.. ids.Shape, d]);
        if (y.Count > 0) _launch.Embedding(Elements(y.Count), Ints(index), table.View, y.View, (int)y.Count, d);
        return y;
    }

    private DeviceValue Rope(Node node, DeviceValue x, DeviceValue pos, long? cachedPrefixLength)
    {
        // The cos/sin tables come from the interpreter's rope on an identity input: the same angles, every scaling variant.
        long s = x.Shape[1], h = x.Shape[2], d = x.Shape[3];
        long rd = node.Attrs.Int("rotary_dim");
        if (rd <= 0 || rd % 2 != 0 || rd > d)
            throw new McException($"{Interpreter.Describe(node)}: rotary_dim {rd} must be even and at most head_dim {d}");
        if (RopeFromTable(node, x, pos, cachedPrefixLength) is { } fromTable) return fromTable;
        long half = rd / 2;
        var (cos, sin) = RopeTables(node, pos, s, d, half, cachedPrefixLength);
        var y = Allocate(node.Type.DType, x.Shape);
        if (y.Count > 0)
        {
            var cosBuffer = Allocate(DType.F32, [s, half]);
            var sinBuffer = Allocate(DType.F32, [s, half]);
            CopyIn(cosBuffer.View, cos);
            CopyIn(sinBuffer.View, sin);
            _launch.Rope(Elements(y.Count), x.View, cosBuffer.View, sinBuffer.View, y.View, (int)y.Count, (int)s, (int)h, (int)d, (int)half,
                node.Attrs.Bool("interleaved", false) ? 1 : 0);
        }
        return y;
    }

    /// <summary>cos and sin [S, half] of the rope's angles, read off the interpreter's rope of unit vectors (exact in double).</summary>
    private (float[] Cos, float[] Sin) RopeTables(Node node, DeviceValue pos, long s, long d, long half, long? cachedPrefixLength)
    {
        bool interleaved = node.Attrs.Bool("interleaved", false);
        // x[0, s, 0, :] = e_first(i) for pair i, in one batch of `half` heads: y's first slot = cos, partner slot = sin.
        var unit = new double[s * half * d];
        for (long t = 0; t < s; t++)
            for (long i = 0; i < half; i++)
                unit[(t * half + i) * d + (interleaved ? 2 * i : i)] = 1.0;
        var probe = RefTensor.FromFloats([1, s, half, d], unit, DType.F64);
        var r = Reference.Ops.Positional.Rope(node, probe, RefTensor.FromInts([s], pos.Ints!, pos.DType), cachedPrefixLength).F!;
        var cos = new float[s * half];
        var sin = new float[s * half];
        for (long t = 0; t < s; t++)
            for (long i = 0; i < half; i++)
            {
                long o = (t * half + i) * d;
                cos[t * half + i] = (float)r[o + (interleaved ? 2 * i : i)];
                sin[t * half + i] = (float)r[o + (interleaved ? 2 * i + 1 : i + half)];
            }
        return (cos, sin);
    }

    private DeviceValue Alibi(Node node, DeviceValue qpos, DeviceValue kpos)
    {
        long heads = node.Attrs.Int("heads");
        var slopes = Reference.Ops.Positional.AlibiSlopes(heads);
        long s = qpos.Count, t = kpos.Count;
        var y = Allocate(node.Type.DType, [1, heads, s, t]);
        if (y.Count == 0) return y;
        var sb = Allocate(DType.F32, [heads]);
        var qb = Allocate(DType.F32, [s]);
        var kb = Allocate(DType.F32, [t]);
        CopyIn(sb.View, Array.ConvertAll(slopes, v => (float)v));
        CopyIn(qb.View, Array.ConvertAll(qpos.Ints!, v => (float)v));
        CopyIn(kb.View, Array.ConvertAll(kpos.Ints!, v => (float)v));
        _launch.Alibi(Elements(y.Count), sb.View, qb.View, kb.View, y.View, (int)heads, (int)s, (int)t);
        return y;
    }

    private DeviceValue RelativeBias(Node node, DeviceValue table, DeviceValue qpos, DeviceValue kpos)
    {
        bool bidirectional = node.Attrs.Bool("bidirectional");
        long buckets = node.Attrs.Int("num_buckets"), maxDistance = node.Attrs.Int("max_distance");
        long heads = table.Shape[1];
        var q = qpos.Ints!;
        var k = kpos.Ints!;
        var bucket = new int[q.Length * k.Length];
        for (int i = 0; i < q.Length; i++)
            for (int j = 0; j < k.Length; j++)
                bucket[i * k.Length + j] = (int)Reference.Ops.Positional.RelativeBucket(k[j] - q[i], bidirectional, buckets, maxDistance);
        var y = Allocate(node.Type.DType, [1, heads, q.Length, k.Length]);
        if (y.Count > 0) _launch.BucketBias(Elements(y.Count), table.View, Ints(bucket), y.View, (int)heads, q.Length, k.Length);
        return y;
    }

    private DeviceValue Attention(Node node, DeviceValue q, DeviceValue k, DeviceValue v, DeviceValue? bias)
    {
        int B = (int)q.Shape[0], S = (int)q.Shape[1], Hq = (int)q.Shape[2], D = (int)q.Shape[3];
        int T = (int)k.Shape[1], Hkv = (int)k.Shape[2], Dv = (int)v.Shape[3];
        if (Hkv == 0 || Hq % Hkv != 0)
            throw new McException($"{Interpreter.Describe(node)}: {Hq} query heads are not a multiple of {Hkv} key/value heads");
        if (D > AttentionKernels.MaxHeadDim || Dv > AttentionKernels.MaxHeadDim)
            throw new McException($"{Interpreter.Describe(node)}: the cuda target's attention handles head dims up to {AttentionKernels.MaxHeadDim}, got {Math.Max(D, Dv)}");
        var a = node.Attrs;
        string mask = a.Str("mask", "none");
        var s = new AttentionShape
        {
            B = B, S = S, Hq = Hq, D = D, T = T, Hkv = Hkv, Dv = Dv,
            Scale = (float)a.Float("scale", 1.0 / Math.Sqrt(D)),
            Mask = mask switch { "none" => 0, "causal" => 1, "prefix" => 2, _ => throw new McException($"{Interpreter.Describe(node)}: unknown mask '{mask}'") },
            Window = (int)a.Int("window", 0), Sinks = (int)a.Int("sinks", 0), Prefix = (int)a.Int("prefix", 0),
        };
        if (bias is not null)
        {
            long[] full = [B, Hq, S, T];
            BroadcastShape(node, full, bias.Shape);
            var st = BroadcastStrides(full, bias.Shape);
            s.HasBias = 1;
            s.BiasB = (int)st[0]; s.BiasH = (int)st[1]; s.BiasI = (int)st[2]; s.BiasJ = (int)st[3];
        }
        var y = Allocate(node.Type.DType, [B, S, Hq, Dv]);
        if (y.Count > 0 && S == 1 && D <= DecodeAttentionKernels.MaxHeadDim && Dv <= DecodeAttentionKernels.MaxHeadDim)
            DecodeAttention(q, k, v, bias, y, s);
        else if (y.Count > 0)
            _launch.Attention(Group(B * Hq * S, AttentionKernels.Warp), q.View, k.View, v.View, bias?.View ?? _dummy.View, y.View, s);
        return y;
    }

    private DeviceValue Moe(Node node, DeviceValue logits, DeviceValue[] experts)
    {
        int e = experts.Length;
        long topK = node.Attrs.Int("top_k");
        if (topK < 1 || topK > e) throw new McException($"{Interpreter.Describe(node)}: top_k {topK} must be within 1..{e}");
        int d = (int)experts[0].Shape[^1];
        long per = experts[0].Count;
        int rows = d == 0 ? 0 : (int)(per / d);
        var stacked = Allocate(DType.F32, [e, per]);
        for (int x = 0; x < e; x++)
            if (per > 0) Copy(experts[x], stacked, [per], [1], 0, [1], x * per);
        var y = Allocate(node.Type.DType, experts[0].Shape);
        if (y.Count > 0)
            _launch.Moe(Elements(y.Count), logits.View, stacked.View, y.View, rows, e, d, (int)topK, node.Attrs.Bool("normalize", true) ? 1 : 0);
        return y;
    }

    // ---- shapes ----

    private static int UnaryCode(OpKind op) => op switch
    {
        OpKind.Neg => ActivationCode.Neg, OpKind.Exp => ActivationCode.Exp, OpKind.Log => ActivationCode.Log,
        OpKind.Sqrt => ActivationCode.Sqrt, OpKind.Rsqrt => ActivationCode.Rsqrt, OpKind.Tanh => ActivationCode.Tanh,
        OpKind.Sigmoid => ActivationCode.Sigmoid, OpKind.Relu => ActivationCode.Relu, OpKind.Gelu => ActivationCode.Gelu,
        OpKind.GeluTanh => ActivationCode.GeluTanh, OpKind.Silu => ActivationCode.Silu, _ => ActivationCode.Abs,
    };

    private static int ActivationOf(string name) => name switch
    {
        "none" => ActivationCode.None, "relu" => ActivationCode.Relu, "gelu" => ActivationCode.Gelu, "gelu_tanh" => ActivationCode.GeluTanh,
        "silu" => ActivationCode.Silu, "sigmoid" => ActivationCode.Sigmoid, "tanh" => ActivationCode.Tanh,
        _ => throw new McException($"fused_linear: unknown activation '{name}'"),
    };

    private static long[] Resolve(Node node, Dictionary<string, long> bindings) =>
        node.Type.Shape.Select(d => d.IsKnown ? d.Size : bindings.TryGetValue(d.Symbol!, out var v) ? v
            : throw new McException($"{Interpreter.Describe(node)}: symbol '{d.Symbol}' of {node.Type} is not bound by any input")).ToArray();

    private static int Axis(long axis, int rank) => (int)(axis < 0 ? axis + rank : axis);

    private static long[] Strides(long[] shape)
    {
        var s = new long[shape.Length];
        long acc = 1;
        for (int d = shape.Length - 1; d >= 0; d--) { s[d] = acc; acc *= shape[d]; }
        return s;
    }

    private static long[] BroadcastShape(Node node, long[] a, long[] b)
    {
        int rank = Math.Max(a.Length, b.Length);
        var r = new long[rank];
        for (int i = 0; i < rank; i++)
        {
            long da = i < rank - a.Length ? 1 : a[i - (rank - a.Length)];
            long db = i < rank - b.Length ? 1 : b[i - (rank - b.Length)];
            r[i] = da == db || db == 1 ? da : da == 1 ? db
                : throw new McException($"{Interpreter.Describe(node)}: shapes [{string.Join(",", a)}] and [{string.Join(",", b)}] do not broadcast");
        }
        return r;
    }

    /// <summary>Strides of an operand along each axis of the broadcast shape: 0 where it is stretched or absent.</summary>
    private static long[] BroadcastStrides(long[] outShape, long[] inShape)
    {
        var inStrides = Strides(inShape);
        var s = new long[outShape.Length];
        for (int d = 0; d < outShape.Length; d++)
        {
            int k = d - (outShape.Length - inShape.Length);
            s[d] = k < 0 || inShape[k] == 1 ? 0 : inStrides[k];
        }
        return s;
    }
}
