using ModelCompiler.IR;

namespace ModelCompiler.Passes;

/// <summary>
/// Magnitude pruning, the baseline Wanda is measured against: in each row of every linear's weight (not the LM head)
/// the weights of smallest |w| become zero (a fraction of the row, or M − N of every M).
/// <code>
/// before: %y = linear %x, %w        after: the same graph; the checkpoint's %w has the zeros
/// </code>
/// </summary>
public sealed class PruneMagnitude(QuantizationContext context, PruningSpec spec) : IPass
{
    public string Name => "prune-magnitude";

    public string Description => "zero the smallest |w| of each weight row";

    public bool Run(Graph graph) => Pruning.PruneAll(graph, context, spec, (_, w, _, _) => w.Select(MathF.Abs).ToArray());
}
