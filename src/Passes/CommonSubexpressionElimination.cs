using ModelCompiler.IR;

namespace ModelCompiler.Passes;

/// <summary>
/// Merges nodes that compute the same thing: same op, same inputs (in order, or sorted for commutative
/// ops), same attributes and type.
/// <code>
/// before: %1 = weight "c_attn.weight"; %2 = transpose %1 {perm=[1,0]}; %3 = transpose %1 {perm=[1,0]}
/// after:  %1 = weight "c_attn.weight"; %2 = transpose %1 {perm=[1,0]}      (users of %3 now use %2)
/// </code>
/// Inputs are never merged (each is part of the calling contract).
/// </summary>
public sealed class CommonSubexpressionElimination : IPass
{
    public string Name => "common-subexpression-elimination";

    public string Description => "merge nodes with the same op, inputs, attributes and type";

    public bool Run(Graph graph)
    {
        var seen = new Dictionary<string, Node>(StringComparer.Ordinal);
        var merged = new HashSet<Node>();
        foreach (var node in graph.Nodes.ToList())
        {
            if (node.Op == OpKind.Input) continue;
            var key = Key(node);
            if (seen.TryGetValue(key, out var first))
            {
                graph.ReplaceAllUses(node, first);
                merged.Add(node);
            }
            else seen[key] = node;
        }
        if (merged.Count == 0) return false;
        graph.RetainOnly(graph.Nodes.Where(n => !merged.Contains(n)).ToHashSet());
        return true;
    }

    /// <summary>Inputs by identity: earlier merges have already rewritten them, so one pass in graph order suffices.</summary>
    private static string Key(Node n)
    {
        var inputs = n.Inputs.Select(i => i.Id);
        if (n.Op.IsCommutative()) inputs = inputs.Order();
        return $"{n.Op}({string.Join(",", inputs)}){n.Attrs}:{n.Type}";
    }
}
