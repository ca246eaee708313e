using System.Collections.Immutable;
using ModelCompiler.Runtime;

namespace ModelCompiler.IR;

/// <summary>A shape or type rule of an op was violated; the message says which and how.</summary>
public sealed class ShapeError(string message) : Exception(message);

/// <summary>
/// The typing rule of every op: from input types and attributes to the result type. The builder
/// uses it to type new nodes and the verifier to re-check every node after each pass.
/// </summary>
public static class ShapeInference
{
    /// <summary>
    /// The result type of <paramref name="op"/>. Leaves and <see cref="OpKind.Reshape"/>/<see cref="OpKind.Cast"/>
    /// carry their type explicitly (<paramref name="declared"/>); for them this checks it instead.
    /// </summary>
    public static TensorType Infer(OpKind op, IReadOnlyList<TensorType> ins, Attrs attrs, TensorType? declared = null)
    {
        switch (op)
        {
            case OpKind.Input:
            case OpKind.Weight:
                Arity(op, ins, 0);
                return declared ?? throw new ShapeError($"{op.Mnemonic()} needs a declared type");
            case OpKind.Const:
                Arity(op, ins, 0);
                if (declared is null || declared.Rank != 0) throw new ShapeError("const is a scalar");
                return declared;

            case var _ when op.IsElementwiseBinary():
                Arity(op, ins, 2);
                SameDType(op, ins[0], ins[1]);
                return ins[0].WithShape(Broadcast(op, ins[0].Shape, ins[1].Shape));
            case var _ when op.IsElementwiseUnary():
                Arity(op, ins, 1);
                Float(op, ins[0]);
                return ins[0];

            case OpKind.Linear:
            {
                if (ins.Count is not (2 or 3)) throw new ShapeError($"linear takes (x, weight[, bias]), got {ins.Count} inputs");
                var (x, w) = (ins[0], ins[1]);
                Float(op, x);
                if (w.Rank != 2) throw new ShapeError($"linear weight must be [out, in], got {w}");
                if (x.Rank < 1 || !Same(x[-1], w[1]))
                    throw new ShapeError($"linear: input {x} has last dimension {Last(x)} but weight {w} expects {w[1]}");
                if (ins.Count == 3 && (ins[2].Rank != 1 || !Same(ins[2][0], w[0])))
                    throw new ShapeError($"linear: bias {ins[2]} does not match weight's {w[0]} outputs");
                return x.WithShape(x.Shape.SetItem(x.Rank - 1, w[0]));
            }
            case OpKind.FusedLinear:
            {
                long normInputs = attrs.Int("norm_inputs", 0);
                bool bias = attrs.Bool("bias", false), residual = attrs.Bool("residual", false), gate = attrs.Bool("gate", false);
                var prologue = attrs.Str("prologue", "none");
                if (prologue is not ("none" or "rms_norm" or "layer_norm") || normInputs is < 0 or > 2 || (prologue == "none" && normInputs > 0)
                    || (prologue == "rms_norm" && normInputs > 1))
                    throw new ShapeError($"fused_linear: prologue '{prologue}' with {normInputs} norm inputs");
                if (attrs.Str("activation", "none") is not ("none" or "relu" or "gelu" or "gelu_tanh" or "silu" or "sigmoid" or "tanh"))
                    throw new ShapeError($"fused_linear: unknown activation '{attrs.Str("activation")}'");
                int expected = 2 + (int)normInputs + (bias ? 1 : 0) + (residual ? 1 : 0);
                if (ins.Count != expected) throw new ShapeError($"fused_linear: attributes call for {expected} inputs, got {ins.Count}");
                var (x, w) = (ins[0], ins[1]);
                Float(op, x);
                if (w.Rank != 2 || x.Rank < 1 || !Same(x[-1], w[1]) || !w[0].IsKnown)
                    throw new ShapeError($"fused_linear: input {x} does not match weight {w}");
                for (int i = 0; i < normInputs; i++)
                    if (ins[2 + i].Rank != 1 || !Same(ins[2 + i][0], x[-1])) throw new ShapeError($"fused_linear: norm parameter {ins[2 + i]} does not match {x}");
                if (bias && (ins[2 + (int)normInputs].Rank != 1 || !Same(ins[2 + (int)normInputs][0], w[0])))
                    throw new ShapeError($"fused_linear: bias {ins[2 + (int)normInputs]} does not match weight {w}");
                long n = w[0].Size;
                if (gate && n % 2 != 0) throw new ShapeError($"fused_linear: a gated epilogue needs an even number of outputs, got {n}");
                var result = x.WithShape(x.Shape.SetItem(x.Rank - 1, gate ? n / 2 : n));
                if (residual && !ins[^1].Equals(result)) throw new ShapeError($"fused_linear: residual {ins[^1]} does not match the result {result}");
                return result;
            }
            case OpKind.QuantizedLinear:
                return QuantizedLinearType(ins, attrs);
            case OpKind.MatMul:
            {
                Arity(op, ins, 2);
                var (a, b) = (ins[0], ins[1]);
                SameDType(op, a, b);
                if (a.Rank < 2 || b.Rank < 2) throw new ShapeError($"matmul needs rank >= 2 operands, got {a} and {b}");
                if (!Same(a[-1], b[-2])) throw new ShapeError($"matmul: {a} @ {b}: inner dimensions {a[-1]} and {b[-2]} differ");
                var batch = Broadcast(op, a.Shape.RemoveRange(a.Rank - 2, 2), b.Shape.RemoveRange(b.Rank - 2, 2));
                return a.WithShape(batch.Add(a[-2]).Add(b[-1]));
            }

            case OpKind.RmsNorm:
            case OpKind.LayerNorm:
            {
                int most = op == OpKind.RmsNorm ? 2 : 3;
                if (ins.Count < 1 || ins.Count > most)
                    throw new ShapeError(op == OpKind.RmsNorm ? "rms_norm takes (x[, weight])" : "layer_norm takes (x[, weight[, bias]])");
                Float(op, ins[0]);
                for (int i = 1; i < ins.Count; i++)
                    if (ins[i].Rank != 1 || !Same(ins[i][0], ins[0][-1]))
                        throw new ShapeError($"{op.Mnemonic()}: parameter {ins[i]} does not match normalized dimension {Last(ins[0])} of {ins[0]}");
                return ins[0];
            }
            case OpKind.Softmax:
                Arity(op, ins, 1);
                Float(op, ins[0]);
                Axis(op, ins[0], attrs.Int("axis"));
                return ins[0];
            case OpKind.ReduceMean:
            {
                Arity(op, ins, 1);
                Float(op, ins[0]);
                int axis = Axis(op, ins[0], attrs.Int("axis"));
                return ins[0].WithShape(ins[0].Shape.SetItem(axis, 1));
            }

            case OpKind.Reshape:
            {
                Arity(op, ins, 1);
                if (declared is null) throw new ShapeError("reshape needs a target shape");
                if (declared.DType != ins[0].DType) throw new ShapeError("reshape cannot change the dtype");
                if (!SameElementCount(ins[0].Shape, declared.Shape))
                    throw new ShapeError($"reshape: cannot view {ins[0]} as [{string.Join(",", declared.Shape)}]: element counts differ");
                return declared;
            }
            case OpKind.Cast:
                Arity(op, ins, 1);
                if (declared is null || !declared.Shape.SequenceEqual(ins[0].Shape)) throw new ShapeError("cast keeps the shape");
                return declared;
            case OpKind.Transpose:
            {
                Arity(op, ins, 1);
                var perm = attrs.Ints("perm");
                if (perm.Length != ins[0].Rank || perm.Distinct().Count() != perm.Length || perm.Any(p => p < 0 || p >= perm.Length))
                    throw new ShapeError($"transpose: [{string.Join(",", perm)}] is not a permutation of the {ins[0].Rank} axes of {ins[0]}");
                return ins[0].WithShape(perm.Select(p => ins[0].Shape[(int)p]));
            }
            case OpKind.Slice:
            {
                Arity(op, ins, 1);
                int axis = Axis(op, ins[0], attrs.Int("axis"));
                long start = attrs.Int("start"), end = attrs.Int("end");
                var d = ins[0].Shape[axis];
                if (start < 0 || end < start || (d.IsKnown && end > d.Size))
                    throw new ShapeError($"slice [{start}:{end}] out of range for axis {axis} of {ins[0]}");
                return ins[0].WithShape(ins[0].Shape.SetItem(axis, end - start));
            }
            case OpKind.Concat:
            {
                if (ins.Count < 1) throw new ShapeError("concat needs at least one input");
                int axis = Axis(op, ins[0], attrs.Int("axis"));
                long total = 0;
                foreach (var t in ins)
                {
                    SameDType(op, ins[0], t);
                    if (t.Rank != ins[0].Rank) throw new ShapeError($"concat: ranks differ ({ins[0]} and {t})");
                    for (int i = 0; i < t.Rank; i++)
                        if (i != axis && !Same(t.Shape[i], ins[0].Shape[i]))
                            throw new ShapeError($"concat along axis {axis}: {ins[0]} and {t} differ on axis {i}");
                    if (!t.Shape[axis].IsKnown) throw new ShapeError($"concat along symbolic axis {axis} of {t}");
                    total += t.Shape[axis].Size;
                }
                return ins[0].WithShape(ins[0].Shape.SetItem(axis, total));
            }

            case OpKind.AllReduce:
                Arity(op, ins, 1);
                if (attrs.Int("ranks") < 1) throw new ShapeError($"all_reduce needs ranks >= 1, got {attrs.Int("ranks")}");
                return ins[0];
            case OpKind.AllGather:
            {
                Arity(op, ins, 1);
                long ranks = attrs.Int("ranks");
                if (ranks < 1) throw new ShapeError($"all_gather needs ranks >= 1, got {ranks}");
                int axis = Axis(op, ins[0], attrs.Int("axis"));
                var d = ins[0].Shape[axis];
                if (!d.IsKnown) throw new ShapeError($"all_gather along symbolic axis {axis} of {ins[0]}");
                return ins[0].WithShape(ins[0].Shape.SetItem(axis, checked(d.Size * ranks)));
            }
            case OpKind.GatherRows:
                Arity(op, ins, 2);
                if (ins[0].Rank < 2) throw new ShapeError($"gather_rows needs rows of a [..., dim] tensor, got {ins[0]}");
                if (!ins[1].DType.IsInteger() || ins[1].Rank != 2 || !ins[1][0].IsKnown || ins[1][0].Size != 1)
                    throw new ShapeError($"gather_rows indices must be integers [1, rows], got {ins[1]}");
                return new TensorType(ins[0].DType, ins[1][0], ins[1][1], ins[0][-1]);
            case OpKind.Embedding:
                Arity(op, ins, 2);
                if (!ins[0].DType.IsInteger()) throw new ShapeError($"embedding ids must be integers, got {ins[0]}");
                if (ins[1].Rank != 2) throw new ShapeError($"embedding table must be [vocab, dim], got {ins[1]}");
                if (attrs.Has("offset") && (attrs.Int("offset") < 0 || !ins[1][0].IsKnown || attrs.Int("offset") + ins[1][0].Size > attrs.Int("vocab")))
                    throw new ShapeError($"embedding shard: rows {attrs.Int("offset")}.. of {ins[1]} do not fit a vocabulary of {attrs.Int("vocab", -1)}");
                return new TensorType(ins[1].DType, ins[0].Shape.Add(ins[1][1]));
            case OpKind.Positions:
            {
                if (ins.Count is not (1 or 2)) throw new ShapeError($"positions takes (x[, past]), got {ins.Count} inputs");
                int axis = Axis(op, ins[0], attrs.Int("axis"));
                if (ins.Count == 2) Axis(op, ins[1], attrs.Int("axis"));
                return new TensorType(DType.I64, ins[0].Shape[axis]);
            }
            case OpKind.CacheAppend:
            {
                Arity(op, ins, 2);
                SameDType(op, ins[0], ins[1]);
                int axis = Axis(op, ins[0], attrs.Int("axis"));
                if (ins[0].Rank != ins[1].Rank) throw new ShapeError($"cache_append: ranks differ ({ins[0]} and {ins[1]})");
                for (int i = 0; i < ins[0].Rank; i++)
                    if (i != axis && ins[0].Shape[i] != ins[1].Shape[i])
                        throw new ShapeError($"cache_append: {ins[0]} and {ins[1]} differ on axis {i}");
                return ins[0].WithShape(ins[0].Shape.SetItem(axis, Dim.Sym(attrs.Str("length"))));
            }
            case OpKind.SinusoidalPositions:
                Arity(op, ins, 1);
                Positions(op, ins[0]);
                return new TensorType(DType.F32, ins[0][0], Positive(op, "dim", attrs.Int("dim")));
            case OpKind.Rope:
            {
                Arity(op, ins, 2);
                Float(op, ins[0]);
                if (ins[0].Rank != 4) throw new ShapeError($"rope expects [batch, seq, heads, head_dim], got {ins[0]}");
                Positions(op, ins[1]);
                if (!Same(ins[1][0], ins[0][1])) throw new ShapeError($"rope: positions {ins[1]} do not match sequence of {ins[0]}");
                long rd = attrs.Int("rotary_dim");
                if (rd <= 0 || rd % 2 != 0 || (ins[0][3].IsKnown && rd > ins[0][3].Size))
                    throw new ShapeError($"rope: rotary_dim {rd} must be even and at most head_dim {ins[0][3]}");
                var scaling = attrs.Str("scaling", "none");
                if (scaling is not ("none" or "linear" or "dynamic"))
                    throw new ShapeError($"rope: unknown scaling '{scaling}' (expected none, linear or dynamic)");
                if (scaling == "dynamic" && (attrs.Int("original_max_positions", 0) <= 0 || rd <= 2))
                    throw new ShapeError("rope: dynamic scaling needs original_max_positions > 0 and rotary_dim > 2");
                return ins[0];
            }
            case OpKind.AlibiBias:
                Arity(op, ins, 2);
                Positions(op, ins[0]);
                Positions(op, ins[1]);
                return new TensorType(DType.F32, 1, Positive(op, "heads", attrs.Int("heads")), ins[0][0], ins[1][0]);
            case OpKind.RelativePositionBias:
                Arity(op, ins, 3);
                if (ins[0].Rank != 2 || !ins[0][0].IsKnown || ins[0][0].Size != attrs.Int("num_buckets"))
                    throw new ShapeError($"relative_position_bias: table must be [num_buckets={attrs.Int("num_buckets")}, heads], got {ins[0]}");
                Positions(op, ins[1]);
                Positions(op, ins[2]);
                return new TensorType(ins[0].DType, 1, ins[0][1], ins[1][0], ins[2][0]);
            case OpKind.Attention:
            {
                if (ins.Count is not (3 or 4)) throw new ShapeError($"attention takes (q, k, v[, bias]), got {ins.Count} inputs");
                var (q, k, v) = (ins[0], ins[1], ins[2]);
                foreach (var t in new[] { q, k, v })
                    if (t.Rank != 4) throw new ShapeError($"attention expects [batch, seq, heads, head_dim] operands, got {t}");
                SameDType(op, q, k);
                SameDType(op, q, v);
                if (!Same(q[0], k[0]) || !Same(k[0], v[0])) throw new ShapeError($"attention: batch sizes differ ({q}, {k}, {v})");
                if (!Same(k[1], v[1]) || !Same(k[2], v[2])) throw new ShapeError($"attention: keys {k} and values {v} differ in length or heads");
                if (!Same(q[3], k[3])) throw new ShapeError($"attention: query head_dim {q[3]} differs from key head_dim {k[3]}");
                if (q[2].IsKnown && k[2].IsKnown && (k[2].Size == 0 || q[2].Size % k[2].Size != 0))
                    throw new ShapeError($"attention: {q[2]} query heads are not a multiple of {k[2]} key/value heads");
                var result = new TensorType(q.DType, q[0], q[1], q[2], v[3]);
                if (ins.Count == 4)
                {
                    var full = ImmutableArray.Create(q[0], q[2], q[1], k[1]);
                    var b = Broadcast(op, full, ins[3].Shape);
                    if (!b.SequenceEqual(full)) throw new ShapeError($"attention: bias {ins[3]} does not broadcast to [batch, heads, seq, keys] = [{string.Join(",", full)}]");
                }
                var mask = attrs.Str("mask", "none");
                if (mask is not ("none" or "causal" or "prefix"))
                    throw new ShapeError($"attention: unknown mask '{mask}' (expected none, causal or prefix)");
                return result;
            }
            case OpKind.PagedAttention:
            {
                Arity(op, ins, 3);
                var (q, k, v) = (ins[0], ins[1], ins[2]);
                foreach (var t in new[] { q, k, v })
                    if (t.Rank != 4) throw new ShapeError($"paged_attention expects [1, tokens, heads, head_dim] operands, got {t}");
                SameDType(op, q, k);
                SameDType(op, q, v);
                if (!Same(q[0], k[0]) || !Same(q[1], k[1]) || !Same(k[0], v[0]) || !Same(k[1], v[1]) || !Same(k[2], v[2]))
                    throw new ShapeError($"paged_attention: q {q}, k {k} and v {v} must cover the same tokens");
                if (!Same(q[3], k[3])) throw new ShapeError($"paged_attention: query head_dim {q[3]} differs from key head_dim {k[3]}");
                if (!q[2].IsKnown || !k[2].IsKnown || !k[3].IsKnown || !v[3].IsKnown || k[2].Size == 0 || q[2].Size % k[2].Size != 0)
                    throw new ShapeError($"paged_attention: heads and head dims must be known, query heads a multiple of key/value heads ({q}, {k}, {v})");
                if (attrs.Int("layer", -1) < 0) throw new ShapeError("paged_attention needs attr layer >= 0");
                var mask = attrs.Str("mask", "none");
                if (mask is not ("none" or "causal" or "prefix"))
                    throw new ShapeError($"paged_attention: unknown mask '{mask}' (expected none, causal or prefix)");
                return new TensorType(q.DType, q[0], q[1], q[2], v[3]);
            }
            case OpKind.MoeCombine:
            {
                if (ins.Count < 2) throw new ShapeError("moe_combine takes (router_logits, expert outputs...)");
                var logits = ins[0];
                if (logits.Rank < 1 || ins[1].Rank < 1) throw new ShapeError($"moe_combine: router logits {logits} and expert outputs {ins[1]} need at least one axis");
                int experts = ins.Count - 1;
                if (!logits[-1].IsKnown || logits[-1].Size != experts)
                    throw new ShapeError($"moe_combine: router logits {logits} score {logits[-1]} experts but {experts} expert outputs were given");
                long k = attrs.Int("top_k");
                if (k < 1 || k > experts) throw new ShapeError($"moe_combine: top_k {k} must be within 1..{experts}");
                for (int i = 2; i < ins.Count; i++)
                    if (!ins[i].Equals(ins[1])) throw new ShapeError($"moe_combine: expert outputs differ in type ({ins[1]} and {ins[i]})");
                var prefix = logits.Shape.RemoveAt(logits.Rank - 1);
                if (!ins[1].Shape.RemoveAt(ins[1].Rank - 1).SequenceEqual(prefix))
                    throw new ShapeError($"moe_combine: expert output {ins[1]} does not match router logits {logits}");
                return ins[1];
            }
            case OpKind.Xpos:
            {
                Arity(op, ins, 2);
                Float(op, ins[0]);
                if (ins[0].Rank != 4) throw new ShapeError($"xpos expects [batch, seq, heads, head_dim], got {ins[0]}");
                Positions(op, ins[1]);
                if (!Same(ins[1][0], ins[0][1])) throw new ShapeError($"xpos: positions {ins[1]} do not match sequence of {ins[0]}");
                if (!ins[0][3].IsKnown || ins[0][3].Size % 2 != 0) throw new ShapeError($"xpos: head_dim {ins[0][3]} must be known and even");
                if (!(attrs.Float("scale_base", 512) > 0)) throw new ShapeError($"xpos: scale_base must be positive, got {attrs.Float("scale_base", 512)}");
                if (!(attrs.Float("theta", 10000) > 0)) throw new ShapeError($"xpos: theta must be positive, got {attrs.Float("theta", 10000)}");
                return ins[0];
            }
            case OpKind.RelativeScores:
            {
                Arity(op, ins, 4);
                var (x, table) = (ins[0], ins[1]);
                Float(op, x);
                SameDType(op, x, table);
                if (x.Rank != 4) throw new ShapeError($"relative_scores expects x as [batch, seq, heads, head_dim], got {x}");
                if (table.Rank != 3 || !Same(table[1], x[2]) || !Same(table[2], x[3]))
                    throw new ShapeError($"relative_scores: table must be [distances, {x[2]}, {x[3]}] to match {x}, got {table}");
                Positions(op, ins[2]);
                Positions(op, ins[3]);
                if (!Same(ins[2][0], x[1])) throw new ShapeError($"relative_scores: query positions {ins[2]} do not match sequence of {x}");
                return new TensorType(x.DType, x[0], x[2], x[1], ins[3][0]);
            }
            default:
                throw new ShapeError($"no typing rule for {op.Mnemonic()}");
        }
    }

    /// <summary>Numpy-style broadcasting of two shapes (right-aligned; 1 stretches).</summary>
    public static ImmutableArray<Dim> Broadcast(OpKind op, ImmutableArray<Dim> a, ImmutableArray<Dim> b)
    {
        int rank = Math.Max(a.Length, b.Length);
        var result = new Dim[rank];
        for (int i = 0; i < rank; i++)
        {
            var da = i < rank - a.Length ? Dim.Of(1) : a[i - (rank - a.Length)];
            var db = i < rank - b.Length ? Dim.Of(1) : b[i - (rank - b.Length)];
            if (Same(da, db)) result[i] = da;
            else if (da.IsKnown && da.Size == 1) result[i] = db;
            else if (db.IsKnown && db.Size == 1) result[i] = da;
            else throw new ShapeError($"{op.Mnemonic()}: shapes [{string.Join(",", a)}] and [{string.Join(",", b)}] do not broadcast (axis {i}: {da} vs {db})");
        }
        return result.ToImmutableArray();
    }

    /// <summary>Whether two shapes certainly hold the same number of elements (symbols must match as a multiset).</summary>
    public static bool SameElementCount(ImmutableArray<Dim> a, ImmutableArray<Dim> b)
    {
        static (long, List<string>) Split(ImmutableArray<Dim> s)
        {
            long known = 1;
            var syms = new List<string>();
            foreach (var d in s)
            {
                if (d.IsKnown) known = checked(known * d.Size);
                else syms.Add(d.Symbol!);
            }
            syms.Sort(StringComparer.Ordinal);
            return (known, syms);
        }
        var (ka, sa) = Split(a);
        var (kb, sb) = Split(b);
        return ka == kb && sa.SequenceEqual(sb);
    }

    /// <summary>The quantized linear's rule: codes, scales, zeros, input scale and bias all agree with x's K, the group size and N.</summary>
    private static TensorType QuantizedLinearType(IReadOnlyList<TensorType> ins, Attrs attrs)
    {
        var scheme = attrs.Str("scheme");
        bool zeros = attrs.Bool("zeros", false), inputScale = attrs.Bool("input_scale", false), bias = attrs.Bool("bias", false);
        long group = attrs.Int("group_size");
        int expected = 3 + (zeros ? 1 : 0) + (inputScale ? 1 : 0) + (bias ? 1 : 0);
        if (ins.Count != expected) throw new ShapeError($"quantized_linear: attributes call for {expected} inputs, got {ins.Count}");
        var (x, q, scales) = (ins[0], ins[1], ins[2]);
        Float(OpKind.QuantizedLinear, x);
        if (x.Rank < 1 || !x[-1].IsKnown) throw new ShapeError($"quantized_linear: input {x} needs a known last dimension");
        long k = x[-1].Size;
        if (group <= 0 || k % group != 0) throw new ShapeError($"quantized_linear: group size {group} does not divide the input width {k}");
        if (q.Rank != 2 || !q[0].IsKnown) throw new ShapeError($"quantized_linear: codes {q} must be [out, ...]");
        long n = q[0].Size;
        if (scheme == "sparse24") return Sparse24Linear(x, q, scales, ins, k, group, zeros, inputScale, bias);
        var (codeType, codeWidth) = scheme switch
        {
            "int8" or "w8a8" => (DType.I8, k),
            "int4" => (DType.U8, k / 2),
            _ => throw new ShapeError($"quantized_linear: unknown scheme '{scheme}' (int8, int4, w8a8, sparse24)"),
        };
        if (scheme == "int4" && group % 32 != 0) throw new ShapeError($"quantized_linear: int4 needs a group size that is a multiple of 32, got {group}");
        if (q.DType != codeType || q[1] != Dim.Of(codeWidth))
            throw new ShapeError($"quantized_linear: {scheme} codes must be {codeType.ShortName()}[{n},{codeWidth}] for input {x}, got {q}");
        var perGroup = new TensorType(DType.F32, Dim.Of(n), Dim.Of(k / group));
        if (!scales.Equals(perGroup)) throw new ShapeError($"quantized_linear: scales must be {perGroup}, got {scales}");
        int at = 3;
        if (zeros && !ins[at++].Equals(perGroup.WithDType(DType.U8))) throw new ShapeError($"quantized_linear: zeros must be {perGroup.WithDType(DType.U8)}, got {ins[at - 1]}");
        if (zeros != (scheme == "int4")) throw new ShapeError($"quantized_linear: {scheme} {(zeros ? "takes no" : "needs")} zero points");
        if (inputScale && !ins[at++].Equals(new TensorType(DType.F32, Dim.Of(k)))) throw new ShapeError($"quantized_linear: input scale must be f32[{k}], got {ins[at - 1]}");
        if (bias && !ins[at].Equals(new TensorType(x.DType, Dim.Of(n)))) throw new ShapeError($"quantized_linear: bias must be {x.DType.ShortName()}[{n}], got {ins[at]}");
        return x.WithShape(x.Shape.SetItem(x.Rank - 1, Dim.Of(n)));
    }

    /// <summary>2:4 sparse: the two kept values of every 4 weights f32[N, K/2] and their positions, two groups a byte u8[N, K/8].</summary>
    private static TensorType Sparse24Linear(TensorType x, TensorType values, TensorType positions, IReadOnlyList<TensorType> ins, long k, long group, bool zeros, bool inputScale, bool bias)
    {
        if (group != 4) throw new ShapeError($"quantized_linear: sparse24 keeps 2 of every 4 weights, so its group size is 4, got {group}");
        if (k % 8 != 0) throw new ShapeError($"quantized_linear: sparse24 needs an input width that is a multiple of 8, got {k}");
        if (zeros || inputScale) throw new ShapeError("quantized_linear: sparse24 takes no zero points and no input scale");
        if (values.Rank != 2 || !values[0].IsKnown || values.DType != DType.F32 || values[1] != Dim.Of(k / 2))
            throw new ShapeError($"quantized_linear: sparse24 values must be f32[N,{k / 2}] for input {x}, got {values}");
        long n = values[0].Size;
        var expected = new TensorType(DType.U8, Dim.Of(n), Dim.Of(k / 8));
        if (!positions.Equals(expected)) throw new ShapeError($"quantized_linear: sparse24 positions must be {expected}, got {positions}");
        if (bias && !ins[3].Equals(new TensorType(x.DType, Dim.Of(n)))) throw new ShapeError($"quantized_linear: bias must be {x.DType.ShortName()}[{n}], got {ins[3]}");
        return x.WithShape(x.Shape.SetItem(x.Rank - 1, Dim.Of(n)));
    }

    private static bool Same(Dim a, Dim b) => a == b;

    private static long Positive(OpKind op, string attr, long value) =>
        value > 0 ? value : throw new ShapeError($"{op.Mnemonic()}: {attr} must be positive, got {value}");

    private static string Last(TensorType t) => t.Rank == 0 ? "(scalar)" : t[-1].ToString();

    private static void Arity(OpKind op, IReadOnlyList<TensorType> ins, int n)
    {
        if (ins.Count != n) throw new ShapeError($"{op.Mnemonic()} takes {n} input{(n == 1 ? "" : "s")}, got {ins.Count}");
    }

    private static void SameDType(OpKind op, TensorType a, TensorType b)
    {
        if (a.DType != b.DType) throw new ShapeError($"{op.Mnemonic()}: element types differ ({a} and {b})");
    }

    private static void Float(OpKind op, TensorType t)
    {
        if (!t.DType.IsFloat()) throw new ShapeError($"{op.Mnemonic()} needs a floating-point tensor, got {t}");
    }

    private static void Positions(OpKind op, TensorType t)
    {
        if (t.Rank != 1 || !t.DType.IsInteger()) throw new ShapeError($"{op.Mnemonic()}: positions must be a 1-d integer tensor, got {t}");
    }

    private static int Axis(OpKind op, TensorType t, long axis)
    {
        long a = axis < 0 ? axis + t.Rank : axis;
        if (a < 0 || a >= t.Rank) throw new ShapeError($"{op.Mnemonic()}: axis {axis} out of range for {t}");
        return (int)a;
    }
}
