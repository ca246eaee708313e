using ModelCompiler.IR;

namespace ModelCompiler.Passes;

/// <summary>
/// Removes nodes that no output depends on (weights declared but unused, values computed and dropped).
/// <code>
/// before: %0 = input "x"; %1 = exp %0; %2 = neg %0; output "y" = %2
/// after:  %0 = input "x"; %1 = neg %0; output "y" = %1
/// </code>
/// Inputs are kept even when unused: they are part of the model's calling contract.
/// </summary>
public sealed class DeadCodeElimination : IPass
{
    public string Name => "dead-code-elimination";

    public string Description => "remove nodes that no output depends on (inputs are kept)";

    public bool Run(Graph graph)
    {
        var live = GraphAnalysis.Live(graph);
        foreach (var input in graph.Inputs) live.Add(input);
        if (live.Count == graph.Nodes.Count) return false;
        graph.RetainOnly(live);
        return true;
    }
}
