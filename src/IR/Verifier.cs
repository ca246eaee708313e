namespace ModelCompiler.IR;

/// <summary>
/// Checks that a graph is well formed: every input defined before use and inside the graph, no cycles,
/// every node's type equal to what its op's typing rule gives, outputs present. Runs after every pass.
/// </summary>
public static class Verifier
{
    public static IReadOnlyList<string> Check(Graph graph)
    {
        var errors = new List<string>();
        var seen = new HashSet<Node>();
        var ids = new HashSet<int>();
        foreach (var n in graph.Nodes)
        {
            if (!ids.Add(n.Id)) errors.Add($"%{n.Id}: id used twice");
            foreach (var input in n.Inputs)
                if (!seen.Contains(input))
                    errors.Add($"%{n.Id} = {n.Op.Mnemonic()}: input %{input.Id} is not defined before it");
            try
            {
                var declared = n.Op is OpKind.Input or OpKind.Weight or OpKind.Const or OpKind.Reshape or OpKind.Cast ? n.Type : null;
                var expected = ShapeInference.Infer(n.Op, n.Inputs.Select(i => i.Type).ToArray(), n.Attrs, declared);
                if (!expected.Equals(n.Type))
                    errors.Add($"%{n.Id} = {n.Op.Mnemonic()}: has type {n.Type} but its inputs give {expected}");
            }
            catch (ShapeError e)
            {
                errors.Add($"%{n.Id} = {n.Op.Mnemonic()}: {e.Message}");
            }
            catch (InvalidOperationException e)
            {
                errors.Add($"%{n.Id} = {n.Op.Mnemonic()}: {e.Message}");
            }
            seen.Add(n);
        }
        foreach (var (name, value) in graph.Outputs)
            if (!seen.Contains(value)) errors.Add($"output '{name}' refers to %{value.Id}, which is not in the graph");
        if (graph.Outputs.Count == 0) errors.Add("graph has no outputs");
        if (errors.Count == 0 && !GraphAnalysis.IsAcyclic(graph)) errors.Add("graph has a cycle");
        return errors;
    }

    /// <summary>Throws <see cref="InvalidOperationException"/> listing every problem (an internal error: passes must keep graphs valid).</summary>
    public static void Verify(Graph graph, string after = "construction")
    {
        var errors = Check(graph);
        if (errors.Count > 0)
            throw new InvalidOperationException($"IR verification failed after {after}:\n  " + string.Join("\n  ", errors));
    }
}
