using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Passes;

/// <summary>
/// Evaluates scalar arithmetic whose operands are all constants (hyperparameter arithmetic that
/// reached the IR as ops, e.g. a scale built from two constants).
/// <code>
/// before: %1 = const 2.0; %2 = const 0.5; %3 = mul %1, %2 : f32[]; %4 = mul %x, %3
/// after:  %5 = const 1.0 : f32[];  %4 = mul %x, %5
/// </code>
/// Float results are rounded to the constant's element type, as the op itself would.
/// </summary>
public sealed class ConstantFolding : IPass
{
    public string Name => "constant-folding";

    public string Description => "evaluate scalar ops whose operands are all constants";

    public bool Run(Graph graph)
    {
        bool changed = false;
        var builder = new GraphBuilder(graph);
        foreach (var node in graph.Nodes.ToList())
        {
            if (node.Type.Rank != 0 || node.Inputs.Length == 0 || node.Inputs.Any(i => i.Op != OpKind.Const)) continue;
            if (Evaluate(node) is not { } value) continue;
            builder.CurrentName = node.Name;
            builder.CurrentSpan = node.Span;
            graph.ReplaceAllUses(node, builder.Const(value, node.Type.DType));
            changed = true;
        }
        if (changed)
        {
            new DeadCodeElimination().Run(graph);
            graph.Reorder(GraphAnalysis.TopologicalOrder(graph));
        }
        return changed;
    }

    private static double? Evaluate(Node node)
    {
        double A(int i) => node.Input(i).Attrs.Float("value");
        bool integer = node.Type.DType.IsInteger();
        double? result = node.Op switch
        {
            OpKind.Add => A(0) + A(1),
            OpKind.Sub => A(0) - A(1),
            OpKind.Mul => A(0) * A(1),
            OpKind.Div when integer => A(1) == 0 ? null : Math.Truncate(A(0) / A(1)),
            OpKind.Div => A(0) / A(1),
            OpKind.Maximum => Math.Max(A(0), A(1)),
            OpKind.Minimum => Math.Min(A(0), A(1)),
            OpKind.Pow when !integer => Math.Pow(A(0), A(1)),
            OpKind.Neg => -A(0),
            OpKind.Exp when !integer => Math.Exp(A(0)),
            OpKind.Sqrt when !integer => Math.Sqrt(A(0)),
            OpKind.Rsqrt when !integer => 1 / Math.Sqrt(A(0)),
            OpKind.Abs => Math.Abs(A(0)),
            _ => null,
        };
        if (result is not { } r || double.IsNaN(r) || double.IsInfinity(r)) return null;
        return node.Type.DType == DType.F32 ? (float)r : r;
    }
}
