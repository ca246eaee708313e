using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Passes;

/// <summary>
/// Rewrites a graph into the program of one rank of a tensor-parallel group (Megatron-LM's sharding, derived
/// rather than pattern-matched). Every value is replicated, split along one axis into equal rank-ordered chunks,
/// or a partial sum. A linear on a replicated input whose split output survives to another linear (or to an
/// output) is column-parallel (q/k/v, gate/up, the LM head over the vocabulary); a linear whose input is split
/// along its features is row-parallel and yields a partial sum (o_proj, down_proj). Heads stay whole: attention
/// runs on this rank's query heads and the key/value heads they read (split when the KV heads divide by the rank
/// count, a replicated slice otherwise, as GQA/MQA need). Embedding tables split over the vocabulary give partial
/// sums. A partial sum meets a non-linear op through an all_reduce; a split value meets an op that needs it whole
/// through an all_gather; outputs are whole on every rank. Weights are sliced by static slices, which the CPU
/// target computes once at load, so each rank keeps only its shard.
/// </summary>
public sealed class TensorParallelShard : IPass
{
    /// <summary>The registry's instance: one rank of one, which changes nothing (the CLI's <c>--tp N</c> makes real ones).</summary>
    public TensorParallelShard() : this(1, 0) { }

    public TensorParallelShard(int ranks, int rank)
    {
        if (ranks < 1) throw new McException($"--tp needs at least 1 rank, got {ranks}");
        if (rank < 0 || rank >= ranks) throw new McException($"rank {rank} is outside a group of {ranks}");
        Ranks = ranks;
        Rank = rank;
    }

    public int Ranks { get; }

    public int Rank { get; }

    public string Name => "tensor-parallel";

    public string Description => "shards the graph for one rank of --tp N: column/row-parallel linears, whole heads per rank, vocab-parallel embeddings and head; all_reduce/all_gather where needed";

    public bool Run(Graph graph)
    {
        if (Ranks == 1) return false;
        new Sharder(graph, Ranks, Rank).Run();
        return true;
    }

    /// <summary>
    /// Checks that <paramref name="ranks"/> divides what it must (query heads, FFN widths): a linear whose output
    /// would be split but cannot be cut at whole heads or equal widths is an error naming it. Key/value projections
    /// are exempt (their heads are replicated when too few).
    /// </summary>
    public static void CheckDivisible(Graph graph, int ranks)
    {
        if (ranks > 1) new Sharder(graph, ranks, 0).CheckDivisible();
    }

    private enum Kind { Replicated, Split, Partial }

    /// <summary>How a value lies across the ranks; <see cref="Axis"/> is the split axis.</summary>
    private readonly record struct Placement(Kind Kind, int Axis = -1)
    {
        public static readonly Placement Replicated = new(Kind.Replicated);
        public static readonly Placement Partial = new(Kind.Partial);
        public static Placement SplitOn(int axis) => new(Kind.Split, axis);
        public bool IsSplit => Kind == Kind.Split;
    }

    private readonly record struct Value(Node Node, Placement Placement);

    private sealed class Sharder
    {
        private readonly Graph _graph;
        private readonly int _ranks, _rank;
        private readonly GraphBuilder _b;
        private readonly Dictionary<Node, List<(Node User, int Index)>> _users = new();
        private readonly HashSet<Node> _outputs;
        private readonly Dictionary<(Node, int, bool), bool> _survives = new();
        private readonly Dictionary<Node, Value> _map = new();
        private readonly Dictionary<Node, bool> _feedsLinear = new(), _feedsAttention = new();

        public Sharder(Graph graph, int ranks, int rank)
        {
            _graph = graph;
            _ranks = ranks;
            _rank = rank;
            _b = new GraphBuilder(graph);
            foreach (var n in graph.Nodes)
                for (int i = 0; i < n.Inputs.Length; i++)
                {
                    if (!_users.TryGetValue(n.Inputs[i], out var list)) _users[n.Inputs[i]] = list = new();
                    list.Add((n, i));
                }
            _outputs = graph.Outputs.Select(o => o.Value).ToHashSet();
        }

        public void Run()
        {
            var original = _graph.Nodes.ToList();
            foreach (var n in original)
            {
                _b.CurrentName = n.Name;
                _b.CurrentSpan = n.Span;
                _map[n] = Shard(n);
            }
            foreach (var (name, value) in _graph.Outputs.ToList())
            {
                _b.CurrentName = value.Name;
                _b.CurrentSpan = value.Span;
                _graph.SetOutput(name, Whole(_map[value]));
            }
            var made = _graph.Nodes.Except(original).ToHashSet();
            _graph.RetainOnly(made);
        }

        public void CheckDivisible()
        {
            foreach (var n in _graph.Nodes.Where(n => n.Op == OpKind.Attention))
                if (n.Inputs[0].Type[2] is { IsKnown: true } heads && heads.Size % _ranks != 0)
                    throw new McException($"--tp {_ranks} does not divide the {heads.Size} query heads of {Describe(n)}");
            foreach (var n in _graph.Nodes.Where(n => n.Op == OpKind.Linear))
            {
                int last = n.Type.Rank - 1;
                // Projections into attention replicate what they cannot split (the heads were checked above), and a
                // linear that only produces an output (the LM head) may stay whole: only FFN widths must divide.
                if (WouldSplit(n) || !Survives(n, last, strict: false) || ReachesAttention(n) || !FeedsLinear(n)) continue;
                throw new McException($"--tp {_ranks} does not divide {Describe(n)}: its {n.Type[last]} outputs cannot be cut into {_ranks} equal parts");
            }
        }

        private bool WouldSplit(Node linear)
        {
            var w = linear.Inputs[1].Type;
            return w[0].IsKnown && w[0].Size % _ranks == 0 && Survives(linear, linear.Type.Rank - 1, strict: true);
        }

        // ---- the rewrite, op by op ----

        private Value Shard(Node n)
        {
            var x = n.Inputs.Select(i => _map[i]).ToArray();
            switch (n.Op)
            {
                case var op when op.IsLeaf():
                    return Copy(n, [], Placement.Replicated);
                case OpKind.Linear:
                    return Linear(n, x);
                case OpKind.Neg:
                    return Copy(n, [x[0].Node], x[0].Placement);   // linear: a partial sum stays one
                case var op when op.IsElementwiseUnary():
                case OpKind.Cast:
                {
                    var v = Reduced(x[0]);
                    return Copy(n, [v.Node], v.Placement);
                }
                case var op when op.IsElementwiseBinary():
                    return Binary(n, x);
                case OpKind.RmsNorm or OpKind.LayerNorm:
                    return KeepsAxis(n, x, n.Type.Rank - 1);
                case OpKind.Softmax or OpKind.ReduceMean:
                    return KeepsAxis(n, x, Axis(n.Inputs[0].Type, n.Attrs.Int("axis")));
                case OpKind.Slice:
                    return Linearly(n, x, Axis(n.Inputs[0].Type, n.Attrs.Int("axis")));
                case OpKind.Concat:
                    return Linearly(n, x, Axis(n.Type, n.Attrs.Int("axis")));
                case OpKind.Transpose:
                {
                    var perm = n.Attrs.Ints("perm");
                    var p = x[0].Placement;
                    if (p.IsSplit) return Copy(n, [x[0].Node], Placement.SplitOn(Array.IndexOf(perm, (long)p.Axis)));
                    return Copy(n, [x[0].Node], p);
                }
                case OpKind.Reshape:
                    return Reshape(n, x[0]);
                case OpKind.Embedding:
                    return Embedding(n, x);
                case OpKind.Positions:
                {
                    // Positions read only their operands' lengths along the axis, so any placement that keeps that axis whole will do.
                    int axis = Axis(n.Inputs[0].Type, n.Attrs.Int("axis"));
                    var ins = x.Select(v => v.Placement.IsSplit && v.Placement.Axis == axis ? Whole(v) : v.Node).ToArray();
                    return Copy(n, ins, Placement.Replicated);
                }
                case OpKind.Rope or OpKind.Xpos:
                {
                    var v = Reduced(x[0]);
                    if (v.Placement.IsSplit && v.Placement.Axis == 2)
                        return Copy(n, [v.Node, .. x.Skip(1).Select(Whole)], v.Placement);
                    return Copy(n, x.Select(Whole).ToArray(), Placement.Replicated);
                }
                case OpKind.Attention:
                    return Attention(n, x);
                case OpKind.MoeCombine:
                {
                    var experts = x.Skip(1).ToArray();
                    if (x[0].Placement.Kind == Kind.Replicated && experts.All(e => e.Placement.Kind == Kind.Partial))
                        return Copy(n, [x[0].Node, .. experts.Select(e => e.Node)], Placement.Partial);   // a weighted sum of partial sums
                    if (x[0].Placement.Kind == Kind.Replicated && experts.All(e => e.Placement.IsSplit && e.Placement.Axis == n.Type.Rank - 1))
                        return Copy(n, [x[0].Node, .. experts.Select(e => e.Node)], experts[0].Placement);
                    return Copy(n, x.Select(Whole).ToArray(), Placement.Replicated);
                }
                default:
                    return Copy(n, x.Select(Whole).ToArray(), Placement.Replicated);
            }
        }

        private Value Linear(Node n, Value[] x)
        {
            var input = Reduced(x[0]);
            var (w, bias) = (x[1], x.Length > 2 ? x[2] : (Value?)null);
            if (w.Placement.Kind != Kind.Replicated || bias is { Placement.Kind: not Kind.Replicated })
                return Copy(n, x.Select(Whole).ToArray(), Placement.Replicated);
            int features = n.Inputs[0].Type.Rank - 1;
            if (input.Placement.IsSplit && input.Placement.Axis == features)
            {
                // Row-parallel: each rank multiplies its slice of the features; the bias joins once, after the sum.
                var partial = _b.Add(OpKind.Linear, [input.Node, Local(w.Node, 1)]);
                if (bias is null) return new(partial, Placement.Partial);
                return new(_b.Add(OpKind.Add, [AllReduce(partial), bias.Value.Node]), Placement.Replicated);
            }
            if (input.Placement.IsSplit)   // split along rows: every rank multiplies its rows by the whole weight
                return Copy(n, [input.Node, w.Node, .. bias is null ? Array.Empty<Node>() : [bias.Value.Node]], input.Placement);
            if (WouldSplit(n))
            {
                var ins = new List<Node> { input.Node, Local(w.Node, 0) };
                if (bias is not null) ins.Add(Local(bias.Value.Node, 0));
                return new(_b.Add(OpKind.Linear, ins), Placement.SplitOn(n.Type.Rank - 1));
            }
            return Copy(n, [input.Node, w.Node, .. bias is null ? Array.Empty<Node>() : [bias.Value.Node]], Placement.Replicated);
        }

        private Value Binary(Node n, Value[] x)
        {
            var (a, c) = (x[0], x[1]);
            bool pa = a.Placement.Kind == Kind.Partial, pc = c.Placement.Kind == Kind.Partial;
            if (pa || pc)
            {
                // Sums of partial sums, and a partial sum scaled by a replicated value, stay partial sums.
                if (n.Op is OpKind.Add or OpKind.Sub && pa && pc) return Copy(n, [a.Node, c.Node], Placement.Partial);
                if (n.Op == OpKind.Mul && (pa ^ pc) && (pa ? c : a).Placement.Kind == Kind.Replicated) return Copy(n, [a.Node, c.Node], Placement.Partial);
                if (n.Op == OpKind.Div && pa && c.Placement.Kind == Kind.Replicated) return Copy(n, [a.Node, c.Node], Placement.Partial);
                (a, c) = (Reduced(a), Reduced(c));
            }
            int rank = n.Type.Rank;
            int? axis = null;
            foreach (var (v, i) in new[] { (a, 0), (c, 1) })
            {
                if (!v.Placement.IsSplit) continue;
                int aligned = v.Placement.Axis + rank - n.Inputs[i].Type.Rank;
                if (axis is not null && axis != aligned) return Copy(n, [Whole(a), Whole(c)], Placement.Replicated);
                axis = aligned;
            }
            if (axis is null) return Copy(n, [a.Node, c.Node], Placement.Replicated);
            var ins = new Node[2];
            foreach (var (v, i) in new[] { (a, 0), (c, 1) })
            {
                if (v.Placement.IsSplit) { ins[i] = v.Node; continue; }
                var t = n.Inputs[i].Type;
                int own = axis.Value - (rank - t.Rank);
                if (own < 0 || t[own] is { IsKnown: true, Size: 1 }) { ins[i] = v.Node; continue; }   // broadcast along the split axis
                if (!Divisible(t[own])) return Copy(n, [Whole(a), Whole(c)], Placement.Replicated);
                ins[i] = Local(v.Node, own);
            }
            return Copy(n, ins, Placement.SplitOn(axis.Value));
        }

        /// <summary>An op that works along <paramref name="reduced"/>: other operands whole, x split anywhere else.</summary>
        private Value KeepsAxis(Node n, Value[] x, int reduced)
        {
            var v = Reduced(x[0]);
            if (v.Placement.IsSplit && v.Placement.Axis != reduced)
                return Copy(n, [v.Node, .. x.Skip(1).Select(Whole)], v.Placement);
            return Copy(n, x.Select(Whole).ToArray(), Placement.Replicated);
        }

        /// <summary>Slice and concat: linear in their operands; fine on a value split along another axis.</summary>
        private Value Linearly(Node n, Value[] x, int axis)
        {
            if (x.All(v => v.Placement.Kind == Kind.Partial)) return Copy(n, x.Select(v => v.Node).ToArray(), Placement.Partial);
            var p = x[0].Placement;
            if (p.IsSplit && p.Axis != axis && x.All(v => v.Placement == p)) return Copy(n, x.Select(v => v.Node).ToArray(), p);
            return Copy(n, x.Select(Whole).ToArray(), Placement.Replicated);
        }

        private Value Reshape(Node n, Value x)
        {
            if (x.Placement.Kind == Kind.Partial) return Copy(n, [x.Node], Placement.Partial, n.Type);
            if (!x.Placement.IsSplit) return Copy(n, [x.Node], Placement.Replicated, n.Type);
            if (MapAxis(n.Inputs[0].Type, n.Type, x.Placement.Axis, strict: true) is { } to)
                return Copy(n, [x.Node], Placement.SplitOn(to), Shrink(n.Type, to));
            return Copy(n, [Whole(x)], Placement.Replicated, n.Type);
        }

        private Value Embedding(Node n, Value[] x)
        {
            var ids = Whole(x[0]);
            var table = n.Inputs[1].Type;
            if (x[1].Placement.Kind != Kind.Replicated || !Divisible(table[0]) || n.Attrs.Has("offset"))
                return Copy(n, [ids, Whole(x[1])], Placement.Replicated);
            // Vocab-parallel: each rank embeds the ids in its rows; the sum over ranks is the embedding.
            long rows = table[0].Size / _ranks;
            var attrs = n.Attrs.With("offset", _rank * rows).With("vocab", table[0].Size);
            return new(_b.Add(OpKind.Embedding, [ids, Local(x[1].Node, 0)], attrs), Placement.Partial);
        }

        private Value Attention(Node n, Value[] x)
        {
            var (q, k, v) = (Reduced(x[0]), Reduced(x[1]), Reduced(x[2]));
            var everyoneWhole = () => Copy(n, x.Select(Whole).ToArray(), Placement.Replicated);
            if (!q.Placement.IsSplit || q.Placement.Axis != 2) return everyoneWhole();
            long heads = n.Inputs[0].Type[2].Size, kvHeads = n.Inputs[1].Type[2].Size;
            long local = heads / _ranks, first = _rank * local, group = heads / kvHeads;
            Node Keys(Value kv)
            {
                if (kv.Placement.IsSplit && kv.Placement.Axis == 2 && kvHeads % _ranks == 0) return kv.Node;
                // Fewer KV heads than ranks: each rank keeps (a replica of) the KV heads its query heads read.
                long count = local % group == 0 ? local / group : 1;
                return _b.Slice(Whole(kv), 2, first / group, first / group + count);
            }
            if (local % group != 0 && group % local != 0) return everyoneWhole();
            var ins = new List<Node> { q.Node, Keys(k), Keys(v) };
            if (x.Length > 3)
            {
                var bias = Reduced(x[3]);
                var t = n.Inputs[3].Type;
                int headAxis = 1 - (4 - t.Rank);
                if (bias.Placement.IsSplit && bias.Placement.Axis == headAxis) ins.Add(bias.Node);
                else if (headAxis < 0 || t[headAxis] is { IsKnown: true, Size: 1 }) ins.Add(Whole(bias));
                else ins.Add(_b.Slice(Whole(bias), headAxis, first, first + local));
            }
            return new(_b.Add(OpKind.Attention, ins, n.Attrs), Placement.SplitOn(2));
        }

        // ---- placement helpers ----

        private Value Copy(Node n, IReadOnlyList<Node> inputs, Placement placement, TensorType? declared = null)
        {
            declared ??= n.Op is OpKind.Input or OpKind.Weight or OpKind.Const or OpKind.Reshape or OpKind.Cast ? Declared(n, inputs) : null;
            return new(_b.Add(n.Op, inputs, n.Attrs, declared), placement);
        }

        /// <summary>A cast keeps its operand's (possibly split) shape; leaves and reshapes keep theirs.</summary>
        private static TensorType Declared(Node n, IReadOnlyList<Node> inputs) =>
            n.Op == OpKind.Cast ? n.Type.WithShape(inputs[0].Type.Shape) : n.Type;

        /// <summary>The value whole on every rank.</summary>
        private Node Whole(Value v) => v.Placement.Kind switch
        {
            Kind.Partial => AllReduce(v.Node),
            Kind.Split => _b.Add(OpKind.AllGather, [v.Node], Attrs.Empty.With("axis", (long)v.Placement.Axis).With("ranks", (long)_ranks)),
            _ => v.Node,
        };

        private Value Reduced(Value v) => v.Placement.Kind == Kind.Partial ? new(AllReduce(v.Node), Placement.Replicated) : v;

        private Node AllReduce(Node x) => _b.Add(OpKind.AllReduce, [x], Attrs.Empty.With("ranks", (long)_ranks));

        /// <summary>This rank's chunk of a replicated value along <paramref name="axis"/> (a weight's chunk is computed once, at load).</summary>
        private Node Local(Node whole, int axis)
        {
            long size = whole.Type[axis].Size / _ranks;
            return _b.Slice(whole, axis, _rank * size, (_rank + 1) * size);
        }

        private bool Divisible(Dim d) => d.IsKnown && d.Size % _ranks == 0;

        private TensorType Shrink(TensorType t, int axis) => t.WithShape(t.Shape.SetItem(axis, t[axis].Size / _ranks));

        // ---- look-ahead: is splitting this value worth it? ----

        /// <summary>
        /// True when every use of <paramref name="n"/> split along <paramref name="axis"/> can stay split until a
        /// row-parallel linear or an output takes it; <paramref name="strict"/> also requires whole heads per rank.
        /// </summary>
        private bool Survives(Node n, int axis, bool strict)
        {
            if (_survives.TryGetValue((n, axis, strict), out var known)) return known;
            _survives[(n, axis, strict)] = false;   // a cycle cannot occur in a DAG; this only guards re-entry
            bool ok = (_users.TryGetValue(n, out var users) ? users : []).All(u => UseSurvives(n, axis, strict, u.User, u.Index));
            return _survives[(n, axis, strict)] = ok;
        }

        private bool UseSurvives(Node n, int axis, bool strict, Node u, int index)
        {
            int rank = n.Type.Rank;
            switch (u.Op)
            {
                case OpKind.Linear:
                    return index == 0 && (axis == rank - 1 || Survives(u, axis, strict));
                case var op when op.IsElementwiseUnary():
                case OpKind.Cast:
                    return Survives(u, axis, strict);
                case var op when op.IsElementwiseBinary():
                    return Survives(u, axis + u.Type.Rank - rank, strict);
                case OpKind.Reshape:
                    return MapAxis(n.Type, u.Type, axis, strict) is { } to && Survives(u, to, strict);
                case OpKind.Transpose:
                    return Survives(u, Array.IndexOf(u.Attrs.Ints("perm"), (long)axis), strict);
                case OpKind.Rope or OpKind.Xpos:
                    return index == 0 && axis == 2 && Survives(u, 2, strict);
                case OpKind.Attention:
                    return (index <= 2 && axis == 2 || index == 3 && axis == 1 - (4 - rank)) && Survives(u, 2, strict);
                case OpKind.RmsNorm or OpKind.LayerNorm:
                    return index == 0 && axis != rank - 1 && Survives(u, axis, strict);
                case OpKind.Softmax or OpKind.ReduceMean or OpKind.Slice:
                    return axis != Axis(n.Type, u.Attrs.Int("axis")) && Survives(u, axis, strict);
                case OpKind.Concat:
                    return axis != Axis(u.Type, u.Attrs.Int("axis")) && Survives(u, axis, strict);
                case OpKind.MoeCombine:
                    return index > 0 && Survives(u, axis, strict);
                default:
                    return false;
            }
        }

        /// <summary>Whether <paramref name="n"/> flows into an attention before any linear takes it.</summary>
        private bool ReachesAttention(Node n) => Memo(_feedsAttention, n, () =>
            (_users.TryGetValue(n, out var users) ? users : []).Any(u =>
                u.User.Op == OpKind.Attention || u.User.Op != OpKind.Linear && ReachesAttention(u.User)));

        private bool FeedsLinear(Node n) => Memo(_feedsLinear, n, () =>
            (_users.TryGetValue(n, out var users) ? users : []).Any(u => u.User.Op == OpKind.Linear || FeedsLinear(u.User)));

        private static bool Memo(Dictionary<Node, bool> memo, Node n, Func<bool> compute)
        {
            if (memo.TryGetValue(n, out var known)) return known;
            memo[n] = false;
            return memo[n] = compute();
        }

        /// <summary>
        /// Where a reshape puts a split axis: the output axis with the same extent before it whose chunks hold the
        /// same elements (so the split survives the view); null when no axis does. Strict: whole chunks per rank.
        /// </summary>
        private int? MapAxis(TensorType from, TensorType to, int axis, bool strict)
        {
            if (!from[axis].IsKnown || !Known(from.Shape.Skip(axis + 1), out long inner)) return null;
            long extent = from[axis].Size * inner;
            for (int b = 0; b < to.Rank; b++)
            {
                if (!SameProduct(from.Shape.Take(axis), to.Shape.Take(b)) || !to[b].IsKnown || !Known(to.Shape.Skip(b + 1), out long innerTo)) continue;
                if (to[b].Size * innerTo != extent || to[b].Size == 0) continue;
                if (strict ? to[b].Size % _ranks == 0 : to[b].Size > 1) return b;
            }
            return null;
        }

        private static bool Known(IEnumerable<Dim> dims, out long product)
        {
            product = 1;
            foreach (var d in dims)
            {
                if (!d.IsKnown) return false;
                product *= d.Size;
            }
            return true;
        }

        /// <summary>Products of two dim lists agree: the same known product and the same symbols.</summary>
        private static bool SameProduct(IEnumerable<Dim> a, IEnumerable<Dim> b)
        {
            static (long, string) Key(IEnumerable<Dim> dims) =>
                (dims.Where(d => d.IsKnown).Aggregate(1L, (p, d) => p * d.Size),
                 string.Join(",", dims.Where(d => !d.IsKnown).Select(d => d.Symbol).Order(StringComparer.Ordinal)));
            return Key(a) == Key(b);
        }

        private static int Axis(TensorType t, long axis) => (int)(axis < 0 ? axis + t.Rank : axis);

        private static string Describe(Node n) => $"{n.Op.Mnemonic()}{(n.Name is null ? "" : $" '{n.Name}'")}{(n.Span is null ? "" : $" ({n.Span})")}";
    }
}
