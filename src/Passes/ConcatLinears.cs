using ModelCompiler.IR;

namespace ModelCompiler.Passes;

/// <summary>
/// Linears that read the same input become one GEMM over their concatenated weights, followed by a
/// slice per original output (q/k/v; gate/up).
/// <code>
/// before: %q = linear %h, %wq; %k = linear %h, %wk; %v = linear %h, %wv
/// after:  %w = concat %wq, %wk, %wv {axis=0}; %qkv = linear %h, %w
///         %q = slice %qkv {axis=2, start=0, end=64}; %k = slice %qkv {..64..96}; %v = slice %qkv {..96..128}
/// </code>
/// Only weights known at load time are concatenated (the concat then folds into the packed weights),
/// and only linears that agree on having a bias.
/// </summary>
public sealed class ConcatLinears : IPass
{
    public string Name => "concat-linears";

    public string Description => "one GEMM for linears that share an input (q/k/v, gate/up), sliced back apart";

    public bool Run(Graph graph)
    {
        var groups = graph.Nodes
            .Where(n => n.Op == OpKind.Linear && FusionSupport.IsConstant(n.Input(1)) && (n.Inputs.Length < 3 || FusionSupport.IsConstant(n.Input(2))))
            .GroupBy(n => (n.Input(0), n.Inputs.Length == 3, n.Type.DType))
            .Where(g => g.Count() > 1)
            .Select(g => g.ToList())
            .ToList();
        if (groups.Count == 0) return false;
        var builder = new GraphBuilder(graph);
        foreach (var linears in groups)
        {
            var first = linears[0];
            builder.CurrentName = first.Name;
            builder.CurrentSpan = first.Span;
            var weight = builder.Add(OpKind.Concat, linears.Select(l => l.Input(1)).ToList(), Attrs.Empty.With("axis", 0L));
            Node? bias = linears[0].Inputs.Length == 3
                ? builder.Add(OpKind.Concat, linears.Select(l => l.Input(2)).ToList(), Attrs.Empty.With("axis", 0L))
                : null;
            var fused = builder.Linear(first.Input(0), weight, bias);
            long start = 0;
            int axis = fused.Type.Rank - 1;
            foreach (var linear in linears)
            {
                long width = linear.Type[-1].Size;
                builder.CurrentName = linear.Name;
                graph.ReplaceAllUses(linear, builder.Slice(fused, axis, start, start + width));
                start += width;
            }
        }
        FusionSupport.Finish(graph);
        return true;
    }
}
