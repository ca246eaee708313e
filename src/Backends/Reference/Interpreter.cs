using ModelCompiler.Backends.Reference.Ops;
using ModelCompiler.IR;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Distributed;

namespace ModelCompiler.Backends.Reference;

/// <summary>
/// Evaluates a graph node by node on the host: the ground truth every other backend is tested
/// against, so it is written for obvious correctness rather than speed. Symbolic dims are bound from
/// the inputs' shapes, every result is checked against its node's type, and intermediates are freed
/// after their last use.
/// </summary>
public sealed class Interpreter
{
    private readonly Graph _graph;
    private readonly Precision _precision;
    private readonly ICommunicator? _communicator;

    /// <param name="communicator">this rank's group, for a graph the tensor-parallel pass sharded (its all_reduce and all_gather)</param>
    public Interpreter(Graph graph, Precision precision = Precision.F32, ICommunicator? communicator = null)
    {
        _graph = graph;
        _precision = precision;
        _communicator = communicator;
    }

    /// <summary>
    /// Runs the graph. <paramref name="inputs"/> are keyed by each Input node's attr "name";
    /// <paramref name="weights"/> is called once per Weight node with its checkpoint name and declared type;
    /// <paramref name="observe"/>, if given, sees every node's result as soon as it is computed.
    /// <paramref name="cachedPrefixLength"/>, when decoding by recomputation, is the prompt length: the
    /// positions a KV-cached run would have computed together in its prefill. Only dynamic-NTK rope
    /// depends on it (each key keeps the base in force when it entered the cache, as in Hugging Face).
    /// </summary>
    public IReadOnlyDictionary<string, RefTensor> Run(
        IReadOnlyDictionary<string, RefTensor> inputs,
        Func<string, TensorType, RefTensor> weights,
        Action<Node, RefTensor>? observe = null,
        long? cachedPrefixLength = null)
    {
        var bindings = new Dictionary<string, long>(StringComparer.Ordinal);
        // Inputs are bound before anything runs, so a wrong input fails before any weight is loaded.
        var given = BindInputs(inputs, bindings);

        var remainingUses = new Dictionary<Node, int>();
        foreach (var n in _graph.Nodes)
            foreach (var i in n.Inputs)
                remainingUses[i] = remainingUses.GetValueOrDefault(i) + 1;
        var outputs = _graph.Outputs.Select(o => o.Value).ToHashSet();

        var values = new Dictionary<Node, RefTensor>();
        foreach (var node in _graph.Nodes)
        {
            RefTensor result = node.Op switch
            {
                OpKind.Input => given[node],
                OpKind.Weight => LoadWeight(node, weights, bindings),
                OpKind.AllReduce or OpKind.AllGather => Finish(node, Collective(node, values[node.Inputs[0]])),
                _ => Finish(node, Compute(node, node.Inputs.Select(i => values[i]).ToArray(), bindings, cachedPrefixLength)),
            };
            CheckType(node, result, bindings);
            values[node] = result;
            observe?.Invoke(node, result);

            // Free what no later node needs (outputs are kept to the end).
            foreach (var i in node.Inputs.Distinct())
            {
                remainingUses[i] -= node.Inputs.Count(x => x == i);
                if (remainingUses[i] == 0 && !outputs.Contains(i)) values.Remove(i);
            }
            if (!remainingUses.ContainsKey(node) && !outputs.Contains(node)) values.Remove(node);
        }

        var results = new Dictionary<string, RefTensor>(StringComparer.Ordinal);
        foreach (var (name, node) in _graph.Outputs)
            results[name] = values.TryGetValue(node, out var t) ? t
                : throw new InvalidOperationException($"output '{name}' refers to %{node.Id}, which is not in graph {_graph.Name}");
        return results;
    }

    /// <summary>
    /// One node on given operands, rounded as <see cref="Run"/> rounds it: how another backend computes the few ops it
    /// has no kernel for. <paramref name="bindings"/> holds the symbols bound so far (a reshape's target needs them).
    /// </summary>
    public RefTensor Evaluate(Node node, RefTensor[] operands, Dictionary<string, long> bindings, long? cachedPrefixLength = null) =>
        Finish(node, Compute(node, operands, bindings, cachedPrefixLength));

    /// <summary>How errors name a node: <c>embedding 'embed' (llama.arch:3:5)</c>, or <c>embedding %7</c> when it has neither name nor span.</summary>
    public static string Describe(Node node)
    {
        var s = node.Op.Mnemonic();
        if (node.Name is not null) s += $" '{node.Name}'";
        if (node.Span is not null) s += $" ({node.Span})";
        if (node.Name is null && node.Span is null) s += $" %{node.Id}";
        return s;
    }

    // ---- collectives ----

    private RefTensor Collective(Node node, RefTensor x)
    {
        var comm = _communicator ?? throw new McException($"{Describe(node)}: this graph is one rank of a tensor-parallel group; run it with a communicator (--tp)");
        long ranks = node.Attrs.Int("ranks");
        if (ranks != comm.Size) throw new McException($"{Describe(node)}: the graph was sharded for {ranks} ranks but the group has {comm.Size}");
        if (!x.IsFloat) throw new McException($"{Describe(node)}: collectives move float tensors, got {x.DType.ShortName()}");
        if (node.Op == OpKind.AllReduce)
        {
            var sum = (double[])x.F!.Clone();
            comm.AllReduceSum(sum);
            return RefTensor.FromFloats(x.Shape, sum, x.DType);
        }
        int axis = (int)(node.Attrs.Int("axis") is var a && a < 0 ? a + x.Rank : a);
        var gathered = new double[x.F!.Length * ranks];
        comm.AllGather(x.F!, gathered);
        // gathered holds each rank's block whole; interleave them along the axis.
        long outer = x.Shape.Take(axis).Aggregate(1L, (p, d) => p * d);
        long chunk = x.Shape.Skip(axis).Aggregate(1L, (p, d) => p * d);
        var data = new double[gathered.Length];
        for (long o = 0; o < outer; o++)
            for (long r = 0; r < ranks; r++)
                Array.Copy(gathered, r * x.F!.Length + o * chunk, data, (o * ranks + r) * chunk, chunk);
        var shape = x.Shape.ToArray();
        shape[axis] *= ranks;
        return RefTensor.FromFloats(shape, data, x.DType);
    }

    // ---- inputs, weights and shapes ----

    private Dictionary<Node, RefTensor> BindInputs(IReadOnlyDictionary<string, RefTensor> inputs, Dictionary<string, long> bindings)
    {
        var inputNodes = _graph.Inputs.ToList();
        var declared = inputNodes.Select(n => n.Attrs.Str("name")).ToHashSet(StringComparer.Ordinal);
        foreach (var name in inputs.Keys)
            if (!declared.Contains(name))
                throw new McException($"unknown input '{name}' (the model's inputs are: {string.Join(", ", declared.Order(StringComparer.Ordinal))})");

        var given = new Dictionary<Node, RefTensor>();
        foreach (var node in inputNodes)
        {
            var name = node.Attrs.Str("name");
            if (!inputs.TryGetValue(name, out var t))
                throw new McException($"missing input '{name}' (the model declares {node.Type})");
            given[node] = Admit($"input '{name}'", t, node.Type, bindings);
        }
        return given;
    }

    private RefTensor LoadWeight(Node node, Func<string, TensorType, RefTensor> weights, Dictionary<string, long> bindings)
    {
        var name = node.Attrs.Str("name");
        var t = weights(name, node.Type) ?? throw new McException($"weight '{name}' was not provided");
        return Admit($"weight '{name}'", t, node.Type, bindings);
    }

    /// <summary>
    /// Checks a caller-supplied tensor against its declared type, binding the type's symbols, and returns it
    /// as a tensor of the declared dtype (rounded to float32 in F32 mode; the caller's arrays are never changed).
    /// </summary>
    private RefTensor Admit(string what, RefTensor t, TensorType type, Dictionary<string, long> bindings)
    {
        string Mismatch(string why = "") =>
            $"{what} has shape [{RefTensor.FormatShape(t.Shape)}] but the model declares {type}{why}";

        if (t.Rank != type.Rank) throw new McException(Mismatch());
        var newlyBound = new List<string>();
        for (int d = 0; d < type.Rank; d++)
        {
            var dim = type.Shape[d];
            long actual = t.Shape[d];
            if (dim.IsKnown)
            {
                if (dim.Size != actual) throw new McException(Mismatch());
            }
            else if (bindings.TryGetValue(dim.Symbol!, out var bound))
            {
                if (bound != actual)
                {
                    string where = newlyBound.Contains(dim.Symbol!) ? "earlier in this shape" : "by an earlier input";
                    throw new McException(Mismatch($" ({dim.Symbol} = {bound}, bound {where})"));
                }
            }
            else
            {
                bindings[dim.Symbol!] = actual;
                newlyBound.Add(dim.Symbol!);
            }
        }

        if (type.DType.IsFloat())
        {
            if (t.F is null) throw new McException($"{what} holds integers ({t}) but the model declares {type}");
            var data = t.F;
            if (_precision == Precision.F32 && data.Any(x => (double)(float)x != x && !double.IsNaN(x)))
                data = RoundToFloat32((double[])data.Clone());
            return new RefTensor(type.DType, t.Shape.ToArray(), data, null);
        }
        if (t.I is null) throw new McException($"{what} holds floats ({t}) but the model declares {type}");
        var ints = t.I;
        if (ints.Any(x => WrapInteger(type.DType, x) != x))
            throw new McException($"{what} holds values outside the range of {type.DType.ShortName()} ({type})");
        return new RefTensor(type.DType, t.Shape.ToArray(), null, ints);
    }

    /// <summary>The node's type with its symbols replaced by their bound sizes.</summary>
    private static long[] Resolve(Node node, Dictionary<string, long> bindings) =>
        node.Type.Shape.Select(d => d.IsKnown ? d.Size
            : bindings.TryGetValue(d.Symbol!, out var v) ? v
            : throw new InvalidOperationException($"{Describe(node)}: symbol '{d.Symbol}' of {node.Type} is not bound by any input")).ToArray();

    /// <summary>A result that disagrees with its node's type is an interpreter or typing-rule bug, not a user error.</summary>
    private static void CheckType(Node node, RefTensor result, Dictionary<string, long> bindings)
    {
        // A symbol no input binds (a KV cache's total length) is bound by the first result that has it.
        for (int i = 0; i < node.Type.Rank && i < result.Shape.Length; i++)
            if (node.Type.Shape[i].Symbol is { } symbol && !bindings.ContainsKey(symbol)) bindings[symbol] = result.Shape[i];
        var expected = Resolve(node, bindings);
        if (result.DType != node.Type.DType || !expected.SequenceEqual(result.Shape))
            throw new InvalidOperationException(
                $"{Describe(node)}: computed {result} but its type {node.Type} resolves to {node.Type.DType.ShortName()}[{RefTensor.FormatShape(expected)}]");
    }

    // ---- evaluation ----

    private static RefTensor Compute(Node node, RefTensor[] x, Dictionary<string, long> bindings, long? cachedPrefixLength)
    {
        CheckOperandKinds(node, x);
        RefTensor? Optional(int i) => x.Length > i ? x[i] : null;
        return node.Op switch
        {
            OpKind.Const => Const(node),
            var op when op.IsElementwiseBinary() => Elementwise.Binary(node, x[0], x[1]),
            var op when op.IsElementwiseUnary() => Elementwise.Unary(node, x[0]),
            OpKind.Linear => LinearAlgebra.Linear(node, x[0], x[1], Optional(2)),
            OpKind.MatMul => LinearAlgebra.MatMul(node, x[0], x[1]),
            OpKind.FusedLinear => LinearAlgebra.FusedLinear(node, x),
            OpKind.QuantizedLinear => LinearAlgebra.QuantizedLinear(node, x),
            OpKind.RmsNorm => Normalization.RmsNorm(node, x[0], Optional(1), Optional(2)),
            OpKind.LayerNorm => Normalization.LayerNorm(node, x[0], Optional(1), Optional(2)),
            OpKind.Softmax => Normalization.Softmax(node, x[0]),
            OpKind.ReduceMean => Normalization.ReduceMean(node, x[0]),
            OpKind.Reshape => ShapeOps.Reshape(node, x[0], Resolve(node, bindings)),
            OpKind.Transpose => ShapeOps.Transpose(node, x[0]),
            OpKind.Slice => ShapeOps.Slice(node, x[0]),
            OpKind.Concat => ShapeOps.Concat(node, x),
            OpKind.Cast => ShapeOps.Cast(node, x[0]),
            OpKind.Embedding => Positional.Embedding(node, x[0], x[1]),
            OpKind.GatherRows => ShapeOps.GatherRows(node, x[0], x[1]),
            OpKind.Positions => Positional.Positions(node, x[0], Optional(1)),
            OpKind.CacheAppend => ShapeOps.Concat(node, x),
            OpKind.SinusoidalPositions => Positional.SinusoidalPositions(node, x[0]),
            OpKind.Rope => Positional.Rope(node, x[0], x[1], cachedPrefixLength),
            OpKind.AlibiBias => Positional.AlibiBias(node, x[0], x[1]),
            OpKind.RelativePositionBias => Positional.RelativePositionBias(node, x[0], x[1], x[2]),
            OpKind.Attention => AttentionOps.Attention(node, x[0], x[1], x[2], Optional(3)),
            OpKind.MoeCombine => AttentionOps.MoeCombine(node, x[0], x[1..]),
            OpKind.Xpos => PositionVariants.Xpos(node, x[0], x[1]),
            OpKind.RelativeScores => PositionVariants.RelativeScores(node, x[0], x[1], x[2], x[3]),
            _ => throw new InvalidOperationException($"the reference interpreter has no implementation of {node.Op.Mnemonic()}"),
        };
    }

    /// <summary>
    /// Which operands must hold floats ('f') or integers ('i'); others may hold either. The typing rules do not
    /// check every operand (a linear's weight, an attention bias, router logits), so a graph can get here with
    /// an integer tensor where the op computes in floats.
    /// </summary>
    private static string? OperandKinds(Node node) => node.Op switch
    {
        var o when o.IsElementwiseUnary() => "f",
        OpKind.Linear or OpKind.FusedLinear or OpKind.RmsNorm or OpKind.LayerNorm or OpKind.Softmax or OpKind.ReduceMean
            or OpKind.Attention or OpKind.MoeCombine => "ffff", // every operand (MoeCombine's beyond 4 too)
        OpKind.Embedding => "i",
        OpKind.GatherRows => "fi",
        OpKind.QuantizedLinear => node.Attrs.Str("scheme") == "sparse24" ? "ffi" : "fif",   // sparse24: kept values, positions
        OpKind.SinusoidalPositions or OpKind.AlibiBias => "ii",
        OpKind.Rope or OpKind.Xpos => "fi",
        OpKind.RelativeScores => "ffii",
        OpKind.RelativePositionBias => "fii",
        _ => null,
    };

    private static void CheckOperandKinds(Node node, RefTensor[] x)
    {
        var kinds = OperandKinds(node);
        if (kinds is null) return;
        for (int i = 0; i < x.Length; i++)
        {
            char want = i < kinds.Length ? kinds[i] : kinds[^1] == 'f' && kinds.All(c => c == 'f') ? 'f' : ' ';
            if (want == 'f' && !x[i].IsFloat || want == 'i' && x[i].IsFloat)
                throw new McException($"{Describe(node)}: operand {i + 1} must hold {(want == 'f' ? "floats" : "integers")}, got {x[i]}");
        }
    }

    private static RefTensor Const(Node node)
    {
        double v = node.Attrs.Float("value");
        var dtype = node.Type.DType;
        if (dtype.IsFloat()) return new RefTensor(dtype, [], [v], null);
        return new RefTensor(dtype, [], null, [dtype == DType.Bool ? (v != 0 ? 1 : 0) : (long)Math.Truncate(v)]);
    }

    /// <summary>
    /// Brings a freshly computed result to its dtype's precision: float32 rounding in F32 mode, and integers
    /// wrapped to their width. A reshape shares its input's data, which is already in that form.
    /// </summary>
    private RefTensor Finish(Node node, RefTensor result)
    {
        if (node.Op == OpKind.Reshape) return result;
        if (result.F is { } f && _precision == Precision.F32) RoundToFloat32(f);
        if (result.I is { } l && result.DType != DType.I64)
            for (int e = 0; e < l.Length; e++) l[e] = WrapInteger(result.DType, l[e]);
        return result;
    }

    private static double[] RoundToFloat32(double[] data)
    {
        for (int e = 0; e < data.Length; e++) data[e] = (float)data[e];
        return data;
    }

    /// <summary>A long reduced to the range of a narrower integer dtype (two's complement wrap-around); bool is 0 or 1.</summary>
    private static long WrapInteger(DType dtype, long v) => dtype switch
    {
        DType.I32 => unchecked((int)v),
        DType.I8 => unchecked((sbyte)v),
        DType.U8 => unchecked((byte)v),
        DType.Bool => v != 0 ? 1 : 0,
        _ => v,
    };
}
