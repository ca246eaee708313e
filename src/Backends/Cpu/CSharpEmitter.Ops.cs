using ModelCompiler.IR;
using ModelCompiler.Runtime;
using static ModelCompiler.Backends.Cpu.CSharpText;

namespace ModelCompiler.Backends.Cpu;

/// <summary>How each op becomes a kernel call (the result buffer <c>y</c> is already declared).</summary>
public sealed partial class CSharpEmitter
{
    private IEnumerable<string> Compute(Node n, string y)
    {
        var a = n.Attrs;
        var x = n.Inputs.Select(Ref).ToArray();
        var t = n.Inputs.Select(i => i.Type).ToArray();
        string where = Literal(Describe(n));
        switch (n.Op)
        {
            case var op when op.IsElementwiseUnary():
                return [$"Elementwise.Unary(UnaryOp.{op}, {x[0]}, {y});"];
            case var op when op.IsElementwiseBinary():
                return [Binary(n, x, t, y, where)];

            case OpKind.Linear when !_static.Contains(n) && _packed.Contains(_canonical[n.Inputs[1]]):
                return [$"Gemm.Linear({x[0]}, {Product(t[0].Shape.Take(t[0].Rank - 1))}, {PackedVar(n.Inputs[1])}, {y}, {(x.Length > 2 ? x[2] : "default")});"];
            case OpKind.Linear:
                return [$"LinearAlgebra.Linear({x[0]}, {Product(t[0].Shape.Take(t[0].Rank - 1))}, {DimExpr(t[0][-1])}, {x[1]}, {DimExpr(t[1][0])}, {(x.Length > 2 ? x[2] : "null")}, {y});"];
            case OpKind.FusedLinear:
            {
                int normInputs = (int)a.Int("norm_inputs", 0), at = 2;
                string normW = normInputs > 0 ? x[at++] : "null", normB = normInputs > 1 ? x[at++] : "null";
                string bias = a.Bool("bias", false) ? x[at++] : "null";
                string residual = a.Bool("residual", false) ? x[at] : "null";
                string prologue = a.Str("prologue", "none") switch
                {
                    "none" => "None", "rms_norm" => "RmsNorm", "layer_norm" => "LayerNorm",
                    var p => throw Unsupported(n, $"fused linear prologue '{p}'"),
                };
                string act = a.Str("activation", "none") switch
                {
                    "none" => "null", "relu" => "UnaryOp.Relu", "gelu" => "UnaryOp.Gelu", "gelu_tanh" => "UnaryOp.GeluTanh",
                    "silu" => "UnaryOp.Silu", "sigmoid" => "UnaryOp.Sigmoid", "tanh" => "UnaryOp.Tanh",
                    var p => throw Unsupported(n, $"fused linear activation '{p}'"),
                };
                string packed = !_static.Contains(n) && _packed.Contains(_canonical[n.Inputs[1]])
                    ? PackedVar(n.Inputs[1]) : $"PackedWeight.Pack({x[1]}, {DimExpr(t[1][0])}, {DimExpr(t[1][1])})";
                return [$"FusedLinearKernel.Forward({x[0]}, {Product(t[0].Shape.Take(t[0].Rank - 1))}, {packed}, LinearPrologue.{prologue}, {normW}, {normB}, " +
                        $"offset: {Double(a.Float("offset", 0.0))}, eps: {Double(a.Float("eps", 0.0))}, {bias}, {act}, gate: {(a.Bool("gate", false) ? "true" : "false")}, {residual}, {y});"];
            }
            case OpKind.QuantizedLinear:
                return [$"QuantizedGemm.Linear({x[0]}, {Product(t[0].Shape.Take(t[0].Rank - 1))}, {QuantizedVar(n)}, {(a.Bool("bias", false) ? x[^1] : "null")}, {y});"];
            case OpKind.MatMul:
            {
                if (!n.Type.DType.IsFloat()) throw Unsupported(n, "integer matmul");
                var batch = n.Type.Shape.Take(n.Type.Rank - 2).ToList();
                return [$"LinearAlgebra.MatMul({x[0]}, {x[1]}, {y}, {DimExpr(t[0][-2])}, {DimExpr(t[0][-1])}, {DimExpr(t[1][-1])}, " +
                        $"[{string.Join(", ", batch.Select(DimExpr))}], {BatchStrides(t[0], batch)}, {BatchStrides(t[1], batch)});"];
            }

            case OpKind.RmsNorm:
                return [$"Normalization.RmsNorm({x[0]}, {Product(t[0].Shape.Take(t[0].Rank - 1))}, {DimExpr(t[0][-1])}, " +
                        $"{(x.Length > 1 ? x[1] : "null")}, offset: {Double(a.Float("offset", 0.0))}, {(x.Length > 2 ? x[2] : "null")}, eps: {Double(a.Float("eps"))}, {y});"];
            case OpKind.LayerNorm:
                return [$"Normalization.LayerNorm({x[0]}, {Product(t[0].Shape.Take(t[0].Rank - 1))}, {DimExpr(t[0][-1])}, " +
                        $"{(x.Length > 1 ? x[1] : "null")}, {(x.Length > 2 ? x[2] : "null")}, eps: {Double(a.Float("eps"))}, {y});"];
            case OpKind.Softmax:
            case OpKind.ReduceMean:
            {
                int axis = Axis(t[0], a.Int("axis"));
                string kernel = n.Op == OpKind.Softmax ? "Softmax" : "ReduceMean";
                return [$"Normalization.{kernel}({x[0]}, {Product(t[0].Shape.Take(axis))}, {DimExpr(t[0][axis])}, {Product(t[0].Shape.Skip(axis + 1))}, {y});"];
            }

            case OpKind.Transpose:
                return [$"Layout.Transpose<{Storage(n)}>({x[0]}, {ShapeList(t[0])}, {IntList(a.Ints("perm"))}, {y});"];
            case OpKind.Slice:
            {
                int axis = Axis(t[0], a.Int("axis"));
                return [$"Layout.Slice<{Storage(n)}>({x[0]}, {Product(t[0].Shape.Take(axis))}, {DimExpr(t[0][axis])}, {Product(t[0].Shape.Skip(axis + 1))}, " +
                        $"{SmallInt(n, a.Int("start"))}, {SmallInt(n, a.Int("end"))}, {y}, {where});"];
            }
            case OpKind.Concat:
            {
                int axis = Axis(n.Type, a.Int("axis"));
                return [$"Layout.Concat<{Storage(n)}>([{string.Join(", ", x)}], [{string.Join(", ", t.Select(p => DimExpr(p[axis])))}], " +
                        $"{Product(n.Type.Shape.Take(axis))}, {Product(n.Type.Shape.Skip(axis + 1))}, {y});"];
            }
            case OpKind.Cast:
            {
                bool from = t[0].DType.IsFloat(), to = n.Type.DType.IsFloat();
                return [from && !to ? $"IntKernels.CastToInt({x[0]}, {y}, DType.{n.Type.DType});"
                    : !from && to ? $"IntKernels.CastToFloat({x[0]}, {y});"
                    : $"IntKernels.CastInt({x[0]}, {y}, DType.{n.Type.DType});"];
            }

            case OpKind.Embedding when a.Has("offset"):
                return [$"Positional.EmbeddingShard({x[0]}, {x[1]}, {DimExpr(t[1][0])}, {DimExpr(t[1][1])}, offset: {Int(a.Int("offset"))}, vocab: {Int(a.Int("vocab"))}, {y}, {where});"];
            case OpKind.AllReduce:
                return [$"Collectives.AllReduce(Communicator, {x[0]}, {y}, {CountExpr(n.Type)}, ranks: {SmallInt(n, a.Int("ranks"))}, {where});"];
            case OpKind.AllGather:
            {
                int axis = Axis(t[0], a.Int("axis"));
                return [$"Collectives.AllGather(Communicator, {x[0]}, {Product(t[0].Shape.Take(axis))}, {Product(t[0].Shape.Skip(axis))}, {y}, ranks: {SmallInt(n, a.Int("ranks"))}, {where});"];
            }
            case OpKind.GatherRows:
                return [$"Layout.GatherRows({x[0]}, {x[1]}, {DimExpr(t[0][-1])}, {y}, {where});"];
            case OpKind.Embedding:
                return [$"Positional.Embedding({x[0]}, {x[1]}, {DimExpr(t[1][0])}, {DimExpr(t[1][1])}, {y}, {where});"];
            case OpKind.Positions:
                return [x.Length > 1
                    ? $"IntKernels.Positions({Int(a.Int("offset", 0))} + {DimExpr(t[1][Axis(t[1], a.Int("axis"))])}, {y});"   // offset + past length
                    : $"IntKernels.Positions({Int(a.Int("offset", 0))}, {y});"];
            case OpKind.CacheAppend:
            {
                int axis = Axis(n.Type, a.Int("axis", 1));
                return [$"Layout.Concat<{Storage(n)}>([{string.Join(", ", x)}], [{string.Join(", ", t.Select(p => DimExpr(p[axis])))}], " +
                        $"{Product(n.Type.Shape.Take(axis))}, {Product(n.Type.Shape.Skip(axis + 1))}, {y});"];
            }
            case OpKind.SinusoidalPositions:
                return [$"Positional.SinusoidalPositions({x[0]}, {SmallInt(n, a.Int("dim"))}, baseFrequency: {Double(a.Float("base", 10000.0))}, interleaved: {Bool(a.Bool("interleaved", true))}, {y});"];
            case OpKind.Rope:
            {
                var scaling = a.Str("scaling", "none") switch
                {
                    "none" => "None",
                    "linear" => "Linear",
                    "dynamic" => "Dynamic",
                    var s => throw Unsupported(n, $"rope scaling '{s}'"),
                };
                return [$"Positional.Rope({x[0]}, {x[1]}, {DimExpr(t[0][0])}, {DimExpr(t[0][1])}, {DimExpr(t[0][2])}, {DimExpr(t[0][3])}, " +
                        $"theta: {Double(a.Float("theta"))}, rotaryDim: {SmallInt(n, a.Int("rotary_dim"))}, interleaved: {Bool(a.Bool("interleaved", false))}, " +
                        $"scaling: RopeScaling.{scaling}, factor: {Double(a.Float("factor", 1.0))}, originalMaxPositions: {Int(a.Int("original_max_positions", 0))}, " +
                        $"cachedPrefixLength, {y}, {where});"];
            }
            case OpKind.AlibiBias:
                return [$"Positional.AlibiBias({x[0]}, {x[1]}, heads: {SmallInt(n, a.Int("heads"))}, {y});"];
            case OpKind.RelativePositionBias:
                return [$"Positional.RelativePositionBias({x[0]}, heads: {DimExpr(t[0][1])}, {x[1]}, {x[2]}, bidirectional: {Bool(a.Bool("bidirectional"))}, " +
                        $"numBuckets: {Int(a.Int("num_buckets"))}, maxDistance: {Int(a.Int("max_distance"))}, {y});"];
            case OpKind.Attention:
                return [Attention(n, x, t, y, where)];
            case OpKind.PagedAttention:
                return [PagedAttention(n, x, t, y, where)];
            case OpKind.MoeCombine:
                return [$"Attention.MoeCombine({x[0]}, [{string.Join(", ", x.Skip(1))}], {Product(t[0].Shape.Take(t[0].Rank - 1))}, {DimExpr(t[1][-1])}, " +
                        $"topK: {SmallInt(n, a.Int("top_k"))}, normalize: {Bool(a.Bool("normalize", true))}, {y}, {where});"];
            case OpKind.Xpos:
                return [$"Positional.Xpos({x[0]}, {x[1]}, {DimExpr(t[0][0])}, {DimExpr(t[0][1])}, {DimExpr(t[0][2])}, {DimExpr(t[0][3])}, " +
                        $"theta: {Double(a.Float("theta", 10000.0))}, scaleBase: {Double(a.Float("scale_base", 512.0))}, downscale: {Bool(a.Bool("downscale", false))}, " +
                        $"interleaved: {Bool(a.Bool("interleaved", true))}, {y}, {where});"];
            case OpKind.RelativeScores:
                return [$"Positional.RelativeScores({x[0]}, {x[1]}, {x[2]}, {x[3]}, {DimExpr(t[0][0])}, {DimExpr(t[0][1])}, {DimExpr(t[0][2])}, {DimExpr(t[0][3])}, {DimExpr(t[1][0])}, {y});"];
            default:
                throw Unsupported(n, "this op");
        }
    }

    /// <summary>
    /// A binary op in the cheapest form its static shapes allow: same shape, a scalar side, a trailing vector
    /// repeated over rows, or the general strided broadcast.
    /// </summary>
    private string Binary(Node n, string[] x, TensorType[] t, string y, string where)
    {
        var op = $"BinaryOp.{n.Op}";
        var shape = n.Type.Shape;
        if (!n.Type.DType.IsFloat())
            return $"IntKernels.BinaryStrided({op}, {x[0]}, {x[1]}, {y}, {ShapeList(n.Type)}, {Strides(t[0], n.Type)}, {Strides(t[1], n.Type)}, DType.{n.Type.DType}, {where});";
        bool full0 = t[0].Shape.SequenceEqual(shape), full1 = t[1].Shape.SequenceEqual(shape);
        if (full0 && full1) return $"Elementwise.Binary({op}, {x[0]}, {x[1]}, {y});";
        if (full0 && IsScalar(t[1])) return $"Elementwise.BinaryScalar({op}, {x[0]}, {x[1]}[0], {y});";
        if (full1 && IsScalar(t[0])) return $"Elementwise.ScalarBinary({op}, {x[0]}[0], {x[1]}, {y});";
        if (full0 && IsSuffix(t[1], n.Type)) return $"Elementwise.BinaryRows({op}, {x[0]}, {x[1]}, {y});";
        if (full1 && IsSuffix(t[0], n.Type)) return $"Elementwise.RowsBinary({op}, {x[0]}, {x[1]}, {y});";
        return $"Elementwise.BinaryStrided({op}, {x[0]}, {x[1]}, {y}, {ShapeList(n.Type)}, {Strides(t[0], n.Type)}, {Strides(t[1], n.Type)});";
    }

    private static bool IsScalar(TensorType t) => t.Shape.All(d => d.IsKnown && d.Size == 1);

    /// <summary>Whether t, without its leading size-1 axes, is the trailing axes of the result (so it repeats over rows).</summary>
    private static bool IsSuffix(TensorType t, TensorType result)
    {
        var trimmed = t.Shape.SkipWhile(d => d.IsKnown && d.Size == 1).ToList();
        return trimmed.Count <= result.Rank && trimmed.SequenceEqual(result.Shape.Skip(result.Rank - trimmed.Count));
    }

    /// <summary>The strides (in elements) with which an operand is read along each axis of the result: 0 where it is stretched.</summary>
    private string Strides(TensorType operand, TensorType result)
    {
        int offset = result.Rank - operand.Rank;
        var strides = new List<string>();
        for (int d = 0; d < result.Rank; d++)
        {
            int k = d - offset;
            bool stretched = k < 0 || (operand[k].IsKnown && operand[k].Size == 1);
            strides.Add(stretched ? "0" : Product(operand.Shape.Skip(k + 1)));
        }
        return "[" + string.Join(", ", strides) + "]";
    }

    /// <summary>For matmul: which matrix of the operand each batch index reads (strides in matrices, 0 where broadcast).</summary>
    private string BatchStrides(TensorType operand, List<Dim> batch)
    {
        var own = operand.Shape.Take(operand.Rank - 2).ToList();
        int offset = batch.Count - own.Count;
        var strides = new List<string>();
        for (int d = 0; d < batch.Count; d++)
        {
            int k = d - offset;
            bool stretched = k < 0 || (own[k].IsKnown && own[k].Size == 1);
            strides.Add(stretched ? "0" : Product(own.Skip(k + 1)));
        }
        return "[" + string.Join(", ", strides) + "]";
    }

    private string AttentionScale(Node n)
    {
        var q = n.Inputs[0].Type;
        return n.Attrs.Has("scale") ? Double(n.Attrs.Float("scale"))
            : q[3].IsKnown ? Double(1.0 / Math.Sqrt(q[3].Size)) : $"1.0 / Math.Sqrt({DimExpr(q[3])})";
    }

    private string AttentionMaskName(Node n) => n.Attrs.Str("mask", "none") switch
    {
        "none" => "None",
        "causal" => "Causal",
        "prefix" => "Prefix",
        var m => throw Unsupported(n, $"attention mask '{m}'"),
    };

    /// <summary>Attention over the paged KV cache of the <c>paged</c> batch Run was given (layer, masks and ALiBi as attributes).</summary>
    private string PagedAttention(Node n, string[] x, TensorType[] t, string y, string where)
    {
        var a = n.Attrs;
        var (q, k, v) = (t[0], t[1], t[2]);
        return $"Attention.Paged({x[0]}, {x[1]}, {x[2]}, {y}, tokens: {Product([q[0], q[1]])}, {DimExpr(q[2])}, {DimExpr(k[2])}, {DimExpr(q[3])}, {DimExpr(v[3])}, " +
               $"scale: {AttentionScale(n)}, mask: AttentionMask.{AttentionMaskName(n)}, window: {Int(a.Int("window", 0))}, sinks: {Int(a.Int("sinks", 0))}, " +
               $"prefix: {Int(a.Int("prefix", 0))}, alibi: {Bool(a.Bool("alibi", false))}, paged, layer: {SmallInt(n, a.Int("layer"))}, {where}{CacheRope(n)});";
    }

    /// <summary>StreamingLLM's rope inside the paged attention (attrs rope_*, set by the streaming-llm pass), or nothing.</summary>
    private string CacheRope(Node n)
    {
        var a = n.Attrs;
        if (!a.Has("rope_theta")) return "";
        return $", rope: new CacheRope({Double(a.Float("rope_theta"))}, {SmallInt(n, a.Int("rope_dim"))}, {Bool(a.Bool("rope_interleaved", false))}, {Double(a.Float("rope_divisor", 1.0))})";
    }

    private string Attention(Node n, string[] x, TensorType[] t, string y, string where)
    {
        var a = n.Attrs;
        var (q, k, v) = (t[0], t[1], t[2]);
        string scale = AttentionScale(n);
        string mask = AttentionMaskName(n);
        string bias = "null", biasStrides = "[]";
        if (x.Length > 3)
        {
            bias = x[3];
            // The bias read as if broadcast to [B, Hq, S, T].
            var full = new TensorType(t[3].DType, q[0], q[2], q[1], k[1]);
            biasStrides = Strides(t[3], full);
        }
        return $"Attention.Forward({x[0]}, {x[1]}, {x[2]}, {bias}, {y}, {DimExpr(q[0])}, {DimExpr(q[1])}, {DimExpr(k[1])}, {DimExpr(q[2])}, {DimExpr(k[2])}, " +
               $"{DimExpr(q[3])}, {DimExpr(v[3])}, scale: {scale}, mask: AttentionMask.{mask}, window: {Int(a.Int("window", 0))}, sinks: {Int(a.Int("sinks", 0))}, " +
               $"prefix: {Int(a.Int("prefix", 0))}, biasStrides: {biasStrides}, {where});";
    }

    private string SmallInt(Node n, long v) =>
        v is >= int.MinValue and <= int.MaxValue ? Int(v) : throw Unsupported(n, $"the attribute value {v} (beyond 32 bits)");
}
