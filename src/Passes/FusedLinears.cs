using ModelCompiler.IR;

namespace ModelCompiler.Passes;

/// <summary>Reading and building <see cref="OpKind.FusedLinear"/> nodes, shared by the fusion passes.</summary>
internal sealed record FusedLinearParts(Node X, Node Weight, string Prologue, double Eps, double Offset, IReadOnlyList<Node> NormInputs,
    Node? Bias, string Activation, bool Gate, Node? Residual)
{
    /// <summary>A plain linear or a fused one, as parts; null for anything else.</summary>
    public static FusedLinearParts? Of(Node n)
    {
        if (n.Op == OpKind.Linear)
            return new(n.Input(0), n.Input(1), "none", 0, 0, [], n.Inputs.Length > 2 ? n.Input(2) : null, "none", false, null);
        if (n.Op != OpKind.FusedLinear) return null;
        var a = n.Attrs;
        int normInputs = (int)a.Int("norm_inputs", 0), at = 2;
        var norm = n.Inputs.Skip(2).Take(normInputs).ToList();
        at += normInputs;
        Node? bias = a.Bool("bias", false) ? n.Input(at++) : null;
        Node? residual = a.Bool("residual", false) ? n.Input(at) : null;
        return new(n.Input(0), n.Input(1), a.Str("prologue", "none"), a.Float("eps", 0), a.Float("offset", 0), norm, bias,
            a.Str("activation", "none"), a.Bool("gate", false), residual);
    }

    public bool HasEpilogue => Activation != "none" || Gate || Residual is not null;

    public Node Build(GraphBuilder builder)
    {
        var inputs = new List<Node> { X, Weight };
        inputs.AddRange(NormInputs);
        if (Bias is not null) inputs.Add(Bias);
        if (Residual is not null) inputs.Add(Residual);
        var attrs = Attrs.Empty.With("prologue", Prologue).With("norm_inputs", (long)NormInputs.Count).With("bias", Bias is not null)
            .With("activation", Activation).With("gate", Gate).With("residual", Residual is not null);
        if (Prologue != "none") attrs = attrs.With("eps", Eps).With("offset", Offset);
        return builder.Add(OpKind.FusedLinear, inputs, attrs);
    }

    /// <summary>Replaces <paramref name="old"/> by these parts as one fused node.</summary>
    public void Replace(Graph graph, Node old)
    {
        var builder = new GraphBuilder(graph) { CurrentName = old.Name, CurrentSpan = old.Span };
        graph.ReplaceAllUses(old, Build(builder));
    }
}

internal static class FusionSupport
{
    /// <summary>A tensor known when the model loads: weights and views of them (so concatenating it costs nothing per run).</summary>
    public static bool IsConstant(Node n) =>
        n.Op is OpKind.Weight or OpKind.Const
        || (n.Op is OpKind.Transpose or OpKind.Slice or OpKind.Reshape or OpKind.Concat or OpKind.Cast && n.Inputs.All(IsConstant));

    public static void Finish(Graph graph)
    {
        new DeadCodeElimination().Run(graph);
        graph.Reorder(GraphAnalysis.TopologicalOrder(graph));
    }
}
