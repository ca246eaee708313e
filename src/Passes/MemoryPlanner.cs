using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Passes;

/// <summary>
/// Places every intermediate tensor of a graph in one arena so that tensors whose lifetimes do not
/// overlap share memory. A tensor lives from the node that computes it to its last use; a reshape is a
/// view of its input (same bytes), so it extends its input's lifetime instead of taking memory. Inputs,
/// weights, constants and outputs are not in the arena (the caller owns them).
/// Placement is greedy by size, largest first, at the lowest offset that collides with no placed tensor
/// whose lifetime overlaps (the approach of TFLite's arena planner); offsets are 64-byte aligned.
/// </summary>
public static class MemoryPlanner
{
    public const long Alignment = 64;

    public sealed record Buffer(Node Node, long Bytes, int FirstUse, int LastUse, long Offset);

    public sealed record Plan(IReadOnlyList<Buffer> Buffers, long ArenaBytes, long TotalBytes)
    {
        /// <summary>The buffer a node's result lives in (a reshape maps to its input's buffer).</summary>
        public IReadOnlyDictionary<Node, Buffer> ByNode { get; init; } = new Dictionary<Node, Buffer>();
    }

    /// <param name="symbols">sizes of the symbolic dimensions (batch, seq, ...) for which to plan</param>
    public static Plan Compute(Graph graph, IReadOnlyDictionary<string, long> symbols)
    {
        var order = graph.Nodes.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => p.i);
        var outputs = graph.Outputs.Select(o => o.Value).ToHashSet();

        // A reshape is a view: follow it to the node that owns the bytes.
        Node Owner(Node n) => n.Op == OpKind.Reshape ? Owner(n.Input(0)) : n;

        var lastUse = new Dictionary<Node, int>();
        foreach (var n in graph.Nodes)
            foreach (var input in n.Inputs)
            {
                var owner = Owner(input);
                lastUse[owner] = Math.Max(lastUse.GetValueOrDefault(owner, order[owner]), order[n]);
            }

        var candidates = new List<(Node Node, long Bytes, int First, int Last)>();
        foreach (var n in graph.Nodes)
        {
            if (n.Op is OpKind.Input or OpKind.Weight or OpKind.Const or OpKind.Reshape) continue;
            if (outputs.Contains(n) || graph.Nodes.Any(u => u.Op == OpKind.Reshape && outputs.Contains(u) && Owner(u) == n)) continue;
            long bytes = Bytes(n.Type, symbols);
            candidates.Add((n, bytes, order[n], lastUse.GetValueOrDefault(n, order[n])));
        }

        var placed = new List<Buffer>();
        foreach (var c in candidates.OrderByDescending(c => c.Bytes).ThenBy(c => c.First))
        {
            long offset = 0;
            foreach (var other in placed.Where(p => p.FirstUse <= c.Last && c.First <= p.LastUse).OrderBy(p => p.Offset))
            {
                if (offset + c.Bytes <= other.Offset) break;                       // fits in the gap before it
                offset = Math.Max(offset, Align(other.Offset + other.Bytes));
            }
            placed.Add(new Buffer(c.Node, c.Bytes, c.First, c.Last, offset));
        }
        var byNode = placed.ToDictionary(b => b.Node);
        foreach (var n in graph.Nodes.Where(n => n.Op == OpKind.Reshape))
            if (byNode.TryGetValue(Owner(n), out var b)) byNode[n] = b;
        long arena = placed.Count == 0 ? 0 : placed.Max(b => Align(b.Offset + b.Bytes));
        return new Plan(placed.OrderBy(b => b.FirstUse).ToList(), arena, placed.Sum(b => Align(b.Bytes))) { ByNode = byNode };
    }

    private static long Align(long bytes) => (bytes + Alignment - 1) / Alignment * Alignment;

    private static long Bytes(TensorType type, IReadOnlyDictionary<string, long> symbols)
    {
        long n = type.DType.SizeInBytes();
        foreach (var d in type.Shape)
            n = checked(n * (d.IsKnown ? d.Size : symbols.TryGetValue(d.Symbol!, out var v) ? v
                : throw new McException($"memory plan: no size given for dimension '{d.Symbol}'")));
        return n;
    }
}
