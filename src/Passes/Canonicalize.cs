using ModelCompiler.IR;

namespace ModelCompiler.Passes;

/// <summary>
/// Removes operations that change nothing, so later patterns see one form:
/// <code>
/// reshape %x to x's own type          -> %x
/// transpose %x {perm=[0,1,...]}       -> %x
/// transpose (transpose %x p) q        -> transpose %x (p∘q), or %x when that is the identity
/// slice %x over a whole known axis    -> %x
/// reshape (reshape %x)                -> reshape %x
/// mul %x, const 1 / add %x, const 0   -> %x   (when %x already has the result's type)
/// positions (rms_norm %x)              -> positions %x   (positions read only a length; this frees the norm to fuse)
/// </code>
/// </summary>
public sealed class Canonicalize : IPass
{
    public string Name => "canonicalize";

    public string Description => "drop no-op reshapes/transposes/slices, compose transposes and reshapes, fold x*1 and x+0";

    public bool Run(Graph graph)
    {
        var builder = new GraphBuilder(graph);
        bool changed = false;
        foreach (var node in graph.Nodes.ToList())
        {
            builder.CurrentName = node.Name;
            builder.CurrentSpan = node.Span;
            var replacement = Simplify(node, builder);
            if (replacement is null || replacement == node) continue;
            graph.ReplaceAllUses(node, replacement);
            changed = true;
        }
        if (changed)
        {
            new DeadCodeElimination().Run(graph);
            graph.Reorder(GraphAnalysis.TopologicalOrder(graph));
        }
        return changed;
    }

    private static Node? Simplify(Node n, GraphBuilder builder)
    {
        switch (n.Op)
        {
            case OpKind.Reshape when n.Input(0).Type.Equals(n.Type):
                return n.Input(0);
            case OpKind.Reshape when n.Input(0).Op == OpKind.Reshape:
                return builder.Add(OpKind.Reshape, [n.Input(0).Input(0)], null, n.Type);
            case OpKind.Transpose:
            {
                var perm = n.Attrs.Ints("perm");
                if (perm.Select((p, i) => p == i).All(x => x)) return n.Input(0);
                if (n.Input(0).Op != OpKind.Transpose) return null;
                var inner = n.Input(0).Attrs.Ints("perm");
                var composed = perm.Select(p => inner[p]).ToArray();
                return composed.Select((p, i) => p == i).All(x => x)
                    ? n.Input(0).Input(0)
                    : builder.Transpose(n.Input(0).Input(0), composed);
            }
            case OpKind.Slice:
            {
                var x = n.Input(0).Type;
                int axis = (int)(n.Attrs.Int("axis") < 0 ? n.Attrs.Int("axis") + x.Rank : n.Attrs.Int("axis"));
                return n.Attrs.Int("start") == 0 && x.Shape[axis].IsKnown && n.Attrs.Int("end") == x.Shape[axis].Size ? n.Input(0) : null;
            }
            case OpKind.Positions:
            {
                var source = n.Input(0);
                while (source.Op is OpKind.RmsNorm or OpKind.LayerNorm || source.Op.IsElementwiseUnary()) source = source.Input(0);
                if (source == n.Input(0)) return null;
                return builder.Add(OpKind.Positions, n.Inputs.SetItem(0, source), n.Attrs);
            }
            case OpKind.Mul or OpKind.Add:
            {
                double identity = n.Op == OpKind.Mul ? 1 : 0;
                for (int i = 0; i < 2; i++)
                {
                    var c = n.Input(i);
                    var other = n.Input(1 - i);
                    if (c.Op == OpKind.Const && c.Attrs.Float("value") == identity && other.Type.Equals(n.Type)) return other;
                }
                return null;
            }
            default:
                return null;
        }
    }
}
