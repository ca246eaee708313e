using System.Collections.Immutable;
using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Frontend;

/// <summary>A parameter of a built-in function: a kind (tensor, tensor?, int, float, bool, string, list, ints, any) and a default (null = required).</summary>
internal sealed record BuiltinParam(string Name, string Kind, Value? Default = null);

internal sealed record Builtin(string Name, BuiltinParam[] Params, string Doc, Func<Elaborator, IReadOnlyDictionary<string, Value>, Value> Lower);

/// <summary>
/// The DSL's built-in functions: each binds its arguments like a block call and lowers to IR ops
/// (or, for scalar math like <c>sqrt(head_dim)</c>, computes the value during elaboration).
/// </summary>
internal static class Builtins
{
    private static BuiltinParam T(string name) => new(name, "tensor");
    private static BuiltinParam OptT(string name) => new(name, "tensor?", NoneValue.Instance);
    private static BuiltinParam I(string name, long? d = null) => new(name, "int", d is null ? null : new IntValue(d.Value));
    private static BuiltinParam F(string name, double? d = null) => new(name, "float", d is null ? null : new FloatValue(d.Value));
    private static BuiltinParam B(string name, bool? d = null) => new(name, "bool", d is null ? null : new BoolValue(d.Value));
    private static BuiltinParam S(string name, string? d = null) => new(name, "string", d is null ? null : new StringValue(d));

    public static readonly IReadOnlyDictionary<string, Builtin> All = Create().ToDictionary(b => b.Name, StringComparer.Ordinal);

    private static IEnumerable<Builtin> Create()
    {
        yield return new("embedding", [T("ids"), T("table")], "rows of table[vocab, dim] for integer ids",
            (e, a) => e.Op(OpKind.Embedding, [a["ids"], a["table"]]));
        yield return new("linear", [T("x"), T("weight"), OptT("bias")], "x @ weightᵀ (+ bias), weight [out, in]",
            (e, a) => e.Op(OpKind.Linear, [a["x"], a["weight"], a["bias"]]));
        yield return new("matmul", [T("a"), T("b")], "batched matrix product",
            (e, a) => e.Op(OpKind.MatMul, [a["a"], a["b"]]));
        yield return new("rms_norm", [T("x"), OptT("weight"), F("eps", 1e-6), F("offset", 0)], "x / rms(x) * (offset + weight)",
            (e, a) => e.Op(OpKind.RmsNorm, [a["x"], a["weight"]], Attrs.Empty.With("eps", e.Float(a["eps"])).With("offset", e.Float(a["offset"]))));
        yield return new("layer_norm", [T("x"), OptT("weight"), OptT("bias"), F("eps", 1e-5)], "(x - mean) / std * weight + bias",
            (e, a) =>
            {
                if (a["weight"] is NoneValue && a["bias"] is not NoneValue) throw e.Error(Codes.BadArguments, "layer_norm: a bias needs a weight");
                return e.Op(OpKind.LayerNorm, [a["x"], a["weight"], a["bias"]], Attrs.Empty.With("eps", e.Float(a["eps"])));
            });
        yield return new("softmax", [T("x"), I("axis", -1)], "softmax along an axis",
            (e, a) => e.Op(OpKind.Softmax, [a["x"]], Attrs.Empty.With("axis", e.Int(a["axis"]))));
        yield return new("mean", [T("x"), I("axis", -1)], "mean along an axis (kept as size 1)",
            (e, a) => e.Op(OpKind.ReduceMean, [a["x"]], Attrs.Empty.With("axis", e.Int(a["axis"]))));

        foreach (var (name, op) in new[] { ("relu", OpKind.Relu), ("gelu", OpKind.Gelu), ("gelu_tanh", OpKind.GeluTanh), ("silu", OpKind.Silu), ("sigmoid", OpKind.Sigmoid) })
            yield return new(name, [T("x")], $"elementwise {name}", (e, a) => e.Op(op, [a["x"]]));

        foreach (var (name, op, f) in new (string, OpKind, Func<double, double>)[]
                 {
                     ("tanh", OpKind.Tanh, Math.Tanh), ("exp", OpKind.Exp, Math.Exp), ("log", OpKind.Log, Math.Log),
                     ("sqrt", OpKind.Sqrt, Math.Sqrt), ("rsqrt", OpKind.Rsqrt, x => 1 / Math.Sqrt(x)), ("abs", OpKind.Abs, Math.Abs),
                 })
            yield return new(name, [new BuiltinParam("x", "any")], $"elementwise {name} of a tensor, or of a number during elaboration",
                (e, a) => a["x"] is TensorValue ? e.Op(op, [a["x"]]) : new FloatValue(f(e.Float(a["x"]))));

        foreach (var (name, op, f) in new (string, OpKind, Func<double, double, double>)[]
                 { ("maximum", OpKind.Maximum, Math.Max), ("minimum", OpKind.Minimum, Math.Min), ("pow", OpKind.Pow, Math.Pow) })
            yield return new(name, [new BuiltinParam("a", "any"), new BuiltinParam("b", "any")], $"elementwise {name}",
                (e, a) => a["a"] is TensorValue || a["b"] is TensorValue
                    ? e.BinaryOp(op, a["a"], a["b"])
                    : a["a"] is IntValue x && a["b"] is IntValue y && op != OpKind.Pow ? new IntValue((long)f(x.V, y.V)) : new FloatValue(f(e.Float(a["a"]), e.Float(a["b"]))));

        yield return new("reshape", [T("x"), new BuiltinParam("shape", "list")], "view with a new shape (same element count)",
            (e, a) => e.Reshape(a["x"], e.Dims(a["shape"])));
        yield return new("split_heads", [T("x"), I("heads")], "[..., heads*d] -> [..., heads, d]",
            (e, a) =>
            {
                var t = e.Tensor(a["x"]).Type;
                long heads = e.Int(a["heads"]);
                if (t.Rank == 0) throw e.Error(Codes.ShapeMismatch, "split_heads needs a tensor with at least one axis");
                var last = t[-1];
                if (!last.IsKnown || heads <= 0 || last.Size % heads != 0)
                    throw e.Error(Codes.ShapeMismatch, $"split_heads: last dimension {last} of {t} does not split into {heads} heads");
                return e.Reshape(a["x"], t.Shape.RemoveAt(t.Rank - 1).Add(heads).Add(last.Size / heads));
            });
        yield return new("merge_heads", [T("x")], "[..., heads, d] -> [..., heads*d]",
            (e, a) =>
            {
                var t = e.Tensor(a["x"]).Type;
                if (t.Rank < 2 || !t[-1].IsKnown || !t[-2].IsKnown) throw e.Error(Codes.ShapeMismatch, $"merge_heads: needs known trailing dimensions, got {t}");
                return e.Reshape(a["x"], t.Shape.RemoveRange(t.Rank - 2, 2).Add(t[-1].Size * t[-2].Size));
            });
        yield return new("transpose", [T("x"), new BuiltinParam("perm", "ints")], "permute axes",
            (e, a) => e.Op(OpKind.Transpose, [a["x"]], Attrs.Empty.With("perm", e.Ints(a["perm"]))));
        yield return new("slice", [T("x"), I("axis"), I("start"), I("end")], "x[start:end] along an axis",
            (e, a) => e.Slice(a["x"], e.Int(a["axis"]), e.Int(a["start"]), e.Int(a["end"])));
        yield return new("split", [T("x"), new BuiltinParam("sizes", "ints"), I("axis", -1)], "consecutive pieces of the given sizes (a list)",
            (e, a) =>
            {
                var sizes = e.Ints(a["sizes"]);
                var t = e.Tensor(a["x"]).Type;
                long axis = e.Axis(t, e.Int(a["axis"]));
                if (!t.Shape[(int)axis].IsKnown || sizes.Sum() != t.Shape[(int)axis].Size)
                    throw e.Error(Codes.ShapeMismatch, $"split: sizes [{string.Join(",", sizes)}] do not add up to axis {axis} of {t}");
                var parts = ImmutableArray.CreateBuilder<Value>();
                long start = 0;
                foreach (var s in sizes) { parts.Add(e.Slice(a["x"], axis, start, start + s)); start += s; }
                return new ListValue(parts.ToImmutable());
            });
        yield return new("chunk", [T("x"), I("parts"), I("axis", -1)], "equal pieces (a list)",
            (e, a) =>
            {
                var t = e.Tensor(a["x"]).Type;
                long axis = e.Axis(t, e.Int(a["axis"])), parts = e.Int(a["parts"]);
                var d = t.Shape[(int)axis];
                if (!d.IsKnown || parts <= 0 || d.Size % parts != 0)
                    throw e.Error(Codes.ShapeMismatch, $"chunk: axis {axis} of {t} does not split into {parts} equal parts");
                long size = d.Size / parts;
                return new ListValue(Enumerable.Range(0, (int)parts).Select(k => e.Slice(a["x"], axis, k * size, (k + 1) * size)).ToImmutableArray());
            });
        yield return new("concat", [new BuiltinParam("xs", "list"), I("axis", -1)], "join tensors along an axis",
            (e, a) => e.Op(OpKind.Concat, ((ListValue)a["xs"]).Items.ToArray(), Attrs.Empty.With("axis", e.Int(a["axis"]))));
        yield return new("cast", [T("x"), S("dtype")], "convert the element type",
            (e, a) =>
            {
                if (!DTypes.TryParseShortName(e.Str(a["dtype"]), out var dt)) throw e.Error(Codes.UnknownType, $"unknown element type '{e.Str(a["dtype"])}'");
                var x = e.Tensor(a["x"]);
                return e.OpTyped(OpKind.Cast, [a["x"]], Attrs.Empty, x.Type.WithDType(dt));
            });

        yield return new("positions", [T("x"), I("axis", 1), I("offset", 0)], "i64[n]: offset, offset+1, ... along x's axis",
            (e, a) => e.Op(OpKind.Positions, [a["x"]], Attrs.Empty.With("axis", e.Int(a["axis"])).With("offset", e.Int(a["offset"]))));
        yield return new("sinusoidal_positions", [T("pos"), I("dim"), F("base", 10000), B("interleaved", true)], "sin/cos position encodings [seq, dim]",
            (e, a) => e.Op(OpKind.SinusoidalPositions, [a["pos"]],
                Attrs.Empty.With("dim", e.Int(a["dim"])).With("base", e.Float(a["base"])).With("interleaved", e.Bool(a["interleaved"]))));
        yield return new("rope", [T("x"), T("pos"), F("theta", 10000), I("rotary_dim", 0), B("interleaved", false), S("scaling", "none"), F("factor", 1), I("original_max_positions", 0)],
            "rotary position embedding of x[batch, seq, heads, head_dim]",
            (e, a) =>
            {
                var x = e.Tensor(a["x"]).Type;
                long rd = e.Int(a["rotary_dim"]);
                if (rd == 0 && x.Rank == 4 && x[3].IsKnown) rd = x[3].Size;
                var scaling = e.Str(a["scaling"]);
                if (scaling is not ("none" or "linear" or "dynamic"))
                    throw e.Error(Codes.BadArguments, $"rope: unknown scaling '{scaling}' (expected none, linear or dynamic)");
                return e.Op(OpKind.Rope, [a["x"], a["pos"]], Attrs.Empty.With("theta", e.Float(a["theta"])).With("rotary_dim", rd)
                    .With("interleaved", e.Bool(a["interleaved"])).With("scaling", scaling).With("factor", e.Float(a["factor"]))
                    .With("original_max_positions", e.Int(a["original_max_positions"])));
            });
        yield return new("alibi_bias", [T("qpos"), T("kpos"), I("heads")], "ALiBi bias [1, heads, q, k]",
            (e, a) => e.Op(OpKind.AlibiBias, [a["qpos"], a["kpos"]], Attrs.Empty.With("heads", e.Int(a["heads"]))));
        yield return new("relative_position_bias", [T("table"), T("qpos"), T("kpos"), B("bidirectional"), I("num_buckets"), I("max_distance")],
            "T5 bucketed relative position bias [1, heads, q, k]",
            (e, a) => e.Op(OpKind.RelativePositionBias, [a["table"], a["qpos"], a["kpos"]],
                Attrs.Empty.With("bidirectional", e.Bool(a["bidirectional"])).With("num_buckets", e.Int(a["num_buckets"])).With("max_distance", e.Int(a["max_distance"]))));
        yield return new("xpos", [T("x"), T("pos"), F("theta", 10000), F("scale_base", 512), B("downscale", false), B("interleaved", true)],
            "xPos (Sun et al. 2022): rotary embedding of x[batch, seq, heads, head_dim] times ζ_i^(pos/scale_base), ζ_i^(−pos/scale_base) with downscale (keys)",
            (e, a) =>
            {
                double gamma = e.Float(a["scale_base"]), theta = e.Float(a["theta"]);
                if (!(gamma > 0) || !(theta > 0)) throw e.Error(Codes.BadArguments, $"xpos: theta and scale_base must be positive (got {theta}, {gamma})");
                return e.Op(OpKind.Xpos, [a["x"], a["pos"]], Attrs.Empty.With("theta", theta).With("scale_base", gamma)
                    .With("downscale", e.Bool(a["downscale"])).With("interleaved", e.Bool(a["interleaved"])));
            });
        yield return new("relative_scores", [T("x"), T("table"), T("qpos"), T("kpos")],
            "[batch, heads, q, k]: x[b, i, h]·table[qpos_i − kpos_j, h] with table [distances, heads, head_dim] (Transformer-XL's position terms); 0 for distances without a row",
            (e, a) => e.Op(OpKind.RelativeScores, [a["x"], a["table"], a["qpos"], a["kpos"]]));
        yield return new("attention", [T("q"), T("k"), T("v"), OptT("bias"), S("mask", "none"), F("scale", 0), I("window", 0), I("sinks", 0), I("prefix", 0)],
            "scaled dot-product attention over [batch, seq, heads, head_dim]; GQA when k/v have fewer heads",
            (e, a) =>
            {
                var q = e.Tensor(a["q"]).Type;
                if (q.Rank != 4) throw e.Error(Codes.ShapeMismatch, $"attention expects q as [batch, seq, heads, head_dim], got {q}");
                double scale = e.Float(a["scale"]);
                if (scale == 0)
                {
                    if (!q[3].IsKnown) throw e.Error(Codes.ShapeMismatch, "attention: head_dim must be known to derive the scale");
                    scale = 1 / Math.Sqrt(q[3].Size);
                }
                var mask = e.Str(a["mask"]);
                if (mask is not ("none" or "causal" or "prefix"))
                    throw e.Error(Codes.BadArguments, $"attention: unknown mask '{mask}' (expected none, causal or prefix)");
                return e.Op(OpKind.Attention, [a["q"], a["k"], a["v"], a["bias"]], Attrs.Empty.With("scale", scale).With("mask", mask)
                    .With("window", e.Int(a["window"])).With("sinks", e.Int(a["sinks"])).With("prefix", e.Int(a["prefix"])));
            });
        yield return new("moe_combine", [T("router_logits"), new BuiltinParam("experts", "list"), I("top_k"), B("normalize", true)],
            "mixture of experts: softmax router, top-k experts, weighted sum of their outputs",
            (e, a) => e.Op(OpKind.MoeCombine, ((ListValue)a["experts"]).Items.Prepend(a["router_logits"]).ToArray(),
                Attrs.Empty.With("top_k", e.Int(a["top_k"])).With("normalize", e.Bool(a["normalize"]))));

        // Elaboration-time helpers.
        yield return new("dim", [T("x"), I("axis")], "the size of an axis (a number, or a symbol like seq)",
            (e, a) =>
            {
                var t = e.Tensor(a["x"]).Type;
                var d = t.Shape[(int)e.Axis(t, e.Int(a["axis"]))];
                return d.IsKnown ? new IntValue(d.Size) : new DimValue(d);
            });
        yield return new("len", [new BuiltinParam("xs", "list")], "the length of a list", (e, a) => new IntValue(((ListValue)a["xs"]).Items.Length));
        yield return new("float", [new BuiltinParam("x", "any")], "a number as a float", (e, a) => new FloatValue(e.Float(a["x"])));
        yield return new("int", [new BuiltinParam("x", "any")], "a number truncated to an int", (e, a) => new IntValue(a["x"] is IntValue i ? i.V : checked((long)e.Float(a["x"]))));
        yield return new("require", [B("condition"), S("message")], "stop with an error (MC0214) when the condition is false",
            (e, a) =>
            {
                if (!e.Bool(a["condition"])) throw e.Error(Codes.UnsupportedConfig, e.Str(a["message"]));
                return NoneValue.Instance;
            });
    }
}
